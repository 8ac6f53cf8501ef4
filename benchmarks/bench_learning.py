"""Label efficiency: how fast do analysts' labels make the queue better than the detector alone?

Simulation on the demo data (200,000 generated transactions, seed 42, with ground truth):
- an IsolationForest (defaults, contamination 0.01) is fitted on the first 30 days and ranks the queue;
- every following day, analysts label the top k alerts of that day's queue, ranked by the version
  the queue uses, with the truth (they are always right); the last 14 days are never labelled;
- after each day, a model is retrained on the analysts' labels only (the label column is not
  used), through the same `retrain` the app and CLI use, and promoted once it can be trained;
- each day's promoted version is scored on the last 14 days (held out, later than every label):
  average precision and precision@100, beside the detector on the same days.
Run: `make bench-learning` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from application import datasets, labels, models, queue, runs
from application.context import Context
from data.alerts import QueueFilters
from data.db import connect
from data.errors import UserError
from data.synthetic import SyntheticConfig
from detectors.base import DEFAULT_DETECTOR
from detectors.runs import Run, evaluate_run


def _test_metrics(conn, dataset, run: Run, test_start: datetime) -> tuple[float, float]:
    metrics = evaluate_run(conn, dataset, run, start=test_start)
    return metrics["average_precision"], metrics["precision_at_k"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--k", type=int, default=20, help="alerts each day's analysts label")
    parser.add_argument("--detector-days", type=int, default=30, help="days the detector is fitted on")
    parser.add_argument("--test-days", type=int, default=14, help="last days kept for the held-out check")
    parser.add_argument("--model", default="hgb", choices=["hgb", "rf"])
    parser.add_argument("--plot", type=Path, help="also draw the curve into this PNG (the README's is docs/label-efficiency.png)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="centinela-learning-") as folder:
        conn = connect(Path(folder) / "learning.duckdb")
        ctx, analysts = Context(conn, "bench"), Context(conn, "analysts")
        dataset = datasets.generate(ctx, "demo", SyntheticConfig(rows=args.rows, seed=args.seed)).dataset
        first_day = pd.Timestamp(dataset.min_ts).normalize().to_pydatetime()
        detector_until = first_day + timedelta(days=args.detector_days)
        test_start = pd.Timestamp(dataset.max_ts).normalize().to_pydatetime() - timedelta(days=args.test_days - 1)
        detector = runs.fit(ctx, dataset, [DEFAULT_DETECTOR], train_until=detector_until)
        base_ap, base_p100 = _test_metrics(conn, dataset, detector, test_start)
        print(f"demo data: {dataset.row_count:,} rows, seed {args.seed}; detector {DEFAULT_DETECTOR} fitted before "
              f"{detector_until:%Y-%m-%d}; analysts label the top {args.k} alerts a day until {test_start:%Y-%m-%d}; "
              f"held out: {test_start:%Y-%m-%d} to {dataset.max_ts:%Y-%m-%d}; model {args.model}")
        print(f"unsupervised baseline on the held-out days: AP {base_ap:.3f}, precision@100 {base_p100:.2f}")
        print(f"{'day':<11} {'labels':>7} {'fraud':>6} {'version':>8} {'AP':>6} {'P@100':>6} {'detector AP':>12} "
              f"{'detector P@100':>15} {'retrain s':>10}")
        day, labelled, fraud = detector_until, 0, 0
        last = None
        curve = []  # (labels so far, AP, P@100) of the version ranking the queue after each day
        while day < test_start:
            # That day's queue, ranked by the active version, as the analysts see it.
            page = queue.queue_page(ctx, dataset, QueueFilters(start=day.date(), end=day.date(),
                                                               label_status="unlabelled"), page_size=args.k)
            truth = conn.execute(
                f"SELECT transaction_id, is_fraud FROM {dataset.table} WHERE transaction_id IN "
                "(SELECT unnest(CAST(? AS VARCHAR[])))", [list(page.rows["transaction_id"])]).df()
            for value, label in ((True, "fraud"), (False, "legitimate")):
                ids = list(truth.loc[truth["is_fraud"] == value, "transaction_id"])
                if ids:
                    labels.label(analysts, dataset, ids, label)
            labelled += len(truth)
            fraud += int(truth["is_fraud"].sum())
            day += timedelta(days=1)
            started = time.perf_counter()
            try:
                version = models.retrain(ctx, dataset, model=args.model, base_run_id=detector.id, use_truth=False,
                                         train_until=day)
            except UserError as exc:
                # Not enough labels (overall, or in the newest period to validate on): the queue
                # keeps the version it had.
                kept = f"kept #{last[4]}" if last else "—"
                ap, p100 = (last[2], last[3]) if last else (base_ap, base_p100)
                print(f"{day - timedelta(days=1):%Y-%m-%d} {labelled:>7,} {fraud:>6,} {kept:>8} {ap:>6.3f} {p100:>6.2f} "
                      f"{base_ap:>12.3f} {base_p100:>15.2f}   {exc.problem.split(':')[0]}")
                last = (labelled, fraud, ap, p100, last[4]) if last else None
                curve.append((labelled, ap, p100))
                continue
            seconds = time.perf_counter() - started
            models.promote(ctx, dataset, version.id)
            ap, p100 = _test_metrics(conn, dataset, version, test_start)
            last = (labelled, fraud, ap, p100, version.id)
            curve.append((labelled, ap, p100))
            print(f"{day - timedelta(days=1):%Y-%m-%d} {labelled:>7,} {fraud:>6,} {'#' + str(version.id):>8} {ap:>6.3f} "
                  f"{p100:>6.2f} {base_ap:>12.3f} {base_p100:>15.2f} {seconds:>10.1f}")
        if last:
            labelled, fraud, ap, p100, _ = last
            print(f"after {labelled:,} labels ({fraud:,} fraud), precision@100 goes from {base_p100:.2f} to {p100:.2f} "
                  f"and average precision from {base_ap:.3f} to {ap:.3f} on the held-out {args.test_days} days")
        conn.close()
    if args.plot:
        _plot(curve, base_ap, base_p100, args.plot)
        print(f"curve written to {args.plot}")
    return 0


def _plot(curve: list[tuple[int, float, float]], base_ap: float, base_p100: float, path: Path) -> None:
    """The README's curve; matplotlib (installed with PyOD) writes a static PNG without a browser."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, ap, p100 = zip(*curve, strict=True)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ax.plot(labels, p100, color="#b3261e", marker=".", label="precision@100, learned from labels")
    ax.plot(labels, ap, color="#4a6fa5", marker=".", label="average precision, learned from labels")
    ax.axhline(base_p100, color="#b3261e", linestyle=":", label="precision@100, detector alone")
    ax.axhline(base_ap, color="#4a6fa5", linestyle=":", label="average precision, detector alone")
    ax.set(xlabel="analyst labels so far (top 20 alerts a day)", ylabel="on the 14 held-out days", ylim=(0, 1.02),
           title="Label efficiency: demo data, IsolationForest + HistGradientBoosting")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
