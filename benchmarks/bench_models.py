"""Models and KPI figures at 1M generated transactions: KPI queries (summary, by day, by merchant),
drift report, registry, and retraining from labels (analysts' plus the label column).

Run with `make bench-models`. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from application import datasets, labels, models, runs
from application.context import Context
from benchmarks.bench_foundation import machine
from benchmarks.bench_investigation import _median_time, _verdict
from data.db import connect
from data.kpi import confirmed_fraud_cases, kpi_summary, kpis
from data.synthetic import SyntheticConfig
from detectors.base import threshold_for
from detectors.runs import default_split, run_scores

KPI_TARGET_S, DRIFT_TARGET_S, RETRAIN_TARGET_S = 1.0, 10.0, 180.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    missed = 0
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="centinela-models-") as folder:
        conn = connect(Path(folder) / "models.duckdb")
        ctx = Context(conn, "bench")
        dataset = datasets.generate(ctx, "bench", SyntheticConfig(rows=args.rows, seed=1)).dataset
        run = runs.fit(ctx, dataset, ["isolation_forest"], train_until=default_split(dataset))
        threshold = threshold_for(run_scores(conn, run.id), run.contamination)
        # Analysts have worked through the top 2,000 alerts, and were right (the truth column).
        top = conn.execute(f"SELECT transaction_id, is_fraud FROM scores JOIN {dataset.table} USING (tx_row) "
                           "WHERE run_id = ? ORDER BY score DESC LIMIT 2000", [run.id]).df()
        for value, label in ((True, "fraud"), (False, "legitimate")):
            labels.label(ctx, dataset, list(top.loc[top["is_fraud"] == value, "transaction_id"]), label, close=True)
        print(f"{dataset.row_count:,} rows; run #{run.id}; 2,000 analyst labels ({int(top['is_fraud'].sum()):,} fraud)")

        for name, fn in (
            ("KPI summary", lambda: kpi_summary(conn, dataset, run.id, threshold)),
            ("KPI by day", lambda: kpis(conn, dataset, run.id, threshold, "day")),
            ("KPI by merchant (top 50)", lambda: kpis(conn, dataset, run.id, threshold, "merchant", limit=50)),
            ("confirmed fraud list", lambda: confirmed_fraud_cases(conn, dataset)),
            ("model registry", lambda: models.registry(ctx, dataset)),
        ):
            seconds = _median_time(fn)
            missed += seconds > KPI_TARGET_S
            print(f"{name:<28} {seconds:7.3f} s  (target <= {KPI_TARGET_S} s: {_verdict(seconds, KPI_TARGET_S)})")

        started = time.perf_counter()
        report = models.drift(ctx, dataset, run.id, recent_days=7)
        seconds = time.perf_counter() - started
        missed += seconds > DRIFT_TARGET_S
        print(f"{'drift report (7 days)':<28} {seconds:7.3f} s  (target <= {DRIFT_TARGET_S} s: "
              f"{_verdict(seconds, DRIFT_TARGET_S)}); {len(report.drifted)} of {len(report.table)} drifted")

        for use_truth in (False, True):
            started = time.perf_counter()
            version = models.retrain(ctx, dataset, base_run_id=run.id, use_truth=use_truth)
            seconds = time.perf_counter() - started
            missed += seconds > RETRAIN_TARGET_S
            source = "analyst labels + label column" if use_truth else "analyst labels only"
            print(f"retrain hgb on {version.label_counts['total']:,} labels ({source}): {seconds:.1f} s "
                  f"(target <= {RETRAIN_TARGET_S:.0f} s: {_verdict(seconds, RETRAIN_TARGET_S)}); "
                  f"validation AP {version.metrics['average_precision']:.3f} vs detector "
                  f"{version.metrics['baseline']['average_precision']:.3f}")
        started = time.perf_counter()
        models.promote(ctx, dataset, version.id)
        print(f"promote: {time.perf_counter() - started:.3f} s")
        conn.close()
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
