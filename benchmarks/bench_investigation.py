"""Investigation figures at 1M generated transactions: queue page query, SHAP per case, global
importance, pattern aggregates; and the attribution accuracy of every fast detector.

Run with `make bench-investigation`. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from application import datasets, labels, runs
from application.context import Context
from benchmarks.attribution import attribution_accuracy
from benchmarks.bench_foundation import machine
from data.alerts import QueueFilters, alert_page, count_alerts, daily_trend, hour_weekday, places
from data.db import connect
from data.synthetic import SyntheticConfig
from detectors.base import threshold_for
from detectors.explain import explain_case, explainer_for_run, global_importance
from detectors.runs import run_scores

QUEUE_TARGET_S, CASE_TARGET_S, GLOBAL_TARGET_S = 0.5, 1.0, 20.0
ACCURACY_DETECTORS = ("isolation_forest", "iforest", "ecod", "copod", "hbos", "pca", "loda")


def load_rows_for(conn, dataset, run, tx_rows):
    from data.features import load_feature_set
    from detectors.pipeline import load_rows

    return load_rows(conn, dataset, load_feature_set(conn, dataset), run.spec, tx_rows)


def _median_time(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _verdict(seconds: float, target: float) -> str:
    return "ok" if seconds <= target else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    ok = True
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="centinela-investigation-") as folder:
        conn = connect(Path(folder) / "bench.duckdb")
        ctx = Context(conn, "bench")
        dataset = datasets.generate(ctx, "bench", SyntheticConfig(rows=args.rows, seed=1)).dataset
        run = runs.fit(ctx, dataset, ["isolation_forest"])
        started = time.perf_counter()
        threshold = threshold_for(run_scores(conn, run.id), run.contamination)
        print(f"rows: {args.rows:,}; run #{run.id} isolation_forest, contamination {run.contamination}")
        print(f"threshold from the stored scores (once per run, then cached): {time.perf_counter() - started:.3f} s")
        # Some analyst activity, so the label and case joins have rows to join.
        first = alert_page(conn, dataset, run.id, threshold, page_size=500)
        labels.label(ctx, dataset, first["transaction_id"][:300], "fraud", close=True)

        city = first["city"].iloc[0]
        print("\nqueue page (count + 50 rows), median of 5:")
        for name, filters in (("no filter", QueueFilters()), (f"city = {city}", QueueFilters(cities=(city,))),
                              ("unlabelled, amount >= 100", QueueFilters(label_status="unlabelled", amount_min=100.0)),
                              ("search a customer id", QueueFilters(search=str(first["customer_id"].iloc[0])))):
            def page(f=filters) -> None:
                count_alerts(conn, dataset, run.id, threshold, f)
                alert_page(conn, dataset, run.id, threshold, f, page=1, page_size=50)

            seconds = _median_time(page)
            ok &= seconds <= QUEUE_TARGET_S
            print(f"  {name:<28} {seconds:.3f} s  (target <= {QUEUE_TARGET_S} s) {_verdict(seconds, QUEUE_TARGET_S)}")

        seconds = _median_time(lambda: (hour_weekday(conn, dataset, run.id, threshold),
                                        daily_trend(conn, dataset, run.id, threshold),
                                        places(conn, dataset, run.id, threshold)), repeat=3)
        print(f"\npattern aggregates (hour x weekday, daily trend, places), median of 3: {seconds:.3f} s")

        rows = [int(r) for r in alert_page(conn, dataset, run.id, threshold, page_size=12)["tx_row"]]
        started = time.perf_counter()
        explainer = explainer_for_run(conn, dataset, run)
        build = time.perf_counter() - started
        started = time.perf_counter()
        explain_case(conn, dataset, run, rows[0], lambda: explainer)
        first_case = time.perf_counter() - started
        warm = []
        for tx_row in rows[1:11]:
            started = time.perf_counter()
            explain_case(conn, dataset, run, tx_row, lambda: explainer)
            warm.append(time.perf_counter() - started)
        case = statistics.median(warm)
        stored = _median_time(lambda: explain_case(conn, dataset, run, rows[0], lambda: explainer))
        ok &= case <= CASE_TARGET_S
        print("\nSHAP for one IsolationForest case (TreeExplainer, 200 trees):")
        print(f"  load model + build explainer (once per run and process): {build:.2f} s")
        print(f"  explain a new case (load its row, explain, store), median of 10: {case:.3f} s "
              f"(target <= {CASE_TARGET_S} s) {_verdict(case, CASE_TARGET_S)}")
        print(f"  first case in a fresh process (build + explain): {build + first_case:.2f} s")
        print(f"  a case explained before (read from DuckDB): {stored:.3f} s")

        started = time.perf_counter()
        result = global_importance(conn, dataset, run, threshold, lambda: explainer)
        seconds = time.perf_counter() - started
        ok &= seconds <= GLOBAL_TARGET_S
        print(f"\nglobal importance over {result['alert_rows'] + result['normal_rows']:,} rows "
              f"({result['alert_rows']} alerts + {result['normal_rows']} normal): {seconds:.2f} s "
              f"(target <= {GLOBAL_TARGET_S:.0f} s) {_verdict(seconds, GLOBAL_TARGET_S)}")

        ecod = runs.fit(ctx, dataset, ["ecod"], activate=False)
        ecod_threshold = threshold_for(run_scores(conn, ecod.id), ecod.contamination)
        ecod_explainer = explainer_for_run(conn, dataset, ecod)
        case = _median_time(lambda: ecod_explainer.explain(load_rows_for(conn, dataset, ecod, rows[:1])))
        started = time.perf_counter()
        result = global_importance(conn, dataset, ecod, ecod_threshold, lambda: ecod_explainer)
        print(f"ECOD run (permutation explainer): one case {case:.3f} s (median of 5); global importance over "
              f"{result['alert_rows'] + result['normal_rows']:,} rows {time.perf_counter() - started:.2f} s")
        conn.close()

    if not args.skip_accuracy:
        print("\nattribution accuracy: 200 rows, 8 standard-normal features, one planted at +-6 sd, "
              "the others within +-2 sd; share whose top 'toward suspicious' feature is the planted one")
        for detector in ACCURACY_DETECTORS:
            started = time.perf_counter()
            share = attribution_accuracy(detector)
            ok &= share >= 0.95
            print(f"  {detector:<18} {share:.1%}  ({time.perf_counter() - started:.1f} s) "
                  f"{'ok' if share >= 0.95 else 'MISSED'} (target >= 95%)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
