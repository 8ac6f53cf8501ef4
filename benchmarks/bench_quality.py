"""Detection quality with the held-out protocol, repeated over several weeks.

For each week: every detector is fitted on everything before the training week's end (no labels
at all); the training week is labelled from the ground truth (as `centinela label --file`
does); models learn from those analyst labels only (`retrain --no-truth`); everything is judged
on the week after a gap of the label delay. Printed per model, as the mean over the weeks: ROC
AUC, average precision, the simple and the handbook card precision@100, and recall per fraud
scenario among the test week's top 1% of scores.

- detectors: each with its defaults, through `application.runs.fit` (what `centinela fit` does);
- learned models: every classifier x imbalance handling, fitted on the same labelled week and
  features (with the week's default-detector score), scoring the test week;
- the default learned model end to end, through `application.models.retrain` and
  `evaluate_run` (what `centinela retrain --no-truth` and `centinela evaluate` print).

Data: the product's own generator (`--rows`, default 1,000,000 over 90 days), and with
`--handbook` transactions in the fraud-detection handbook's shape (benchmarks/handbook.py),
imported through the same import path as a bank's file. Run: `make bench-quality`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from application import datasets, labels, models, runs
from application.context import Context
from benchmarks.bench_foundation import machine
from benchmarks.handbook import write_handbook
from data.datasets import Dataset
from data.db import connect
from data.errors import UserError
from data.features import DEFAULT_LABEL_DELAY_DAYS, load_feature_set
from data.synthetic import SyntheticConfig
from detectors.base import DEFAULT_DETECTOR
from detectors.classifiers import CLASSIFIERS, IMBALANCE
from detectors.evaluation import card_precision_at_k, card_precision_at_k_handbook, known_compromised_cards
from detectors.pipeline import ANOMALY_SCORE, FeatureSpec, load_frame
from detectors.runs import evaluate_run
from detectors.supervised import DEFAULT_IMBALANCE, DEFAULT_MODEL, LearnedModel

DETECTORS = (DEFAULT_DETECTOR, "ecod", "copod", "hbos", "pca", "loda", "isolation_forest+ecod:rank",
             "isolation_forest+ecod:mean", "isolation_forest+ecod+copod:rank")
K = 100
TOP_SHARE = 0.01


@dataclass(frozen=True)
class Week:
    train_from: datetime
    train_until: datetime
    test_from: datetime
    test_until: datetime


def weeks(dataset: Dataset, n: int, delay: int) -> list[Week]:
    """The last `n` weekly splits that fit in the dataset: training week, delay, test week."""
    end = pd.Timestamp(dataset.max_ts).floor("D").to_pydatetime()
    out = []
    for i in range(n):
        test_until = end - timedelta(days=7 * i)
        test_from = test_until - timedelta(days=7)
        train_until = test_from - timedelta(days=delay)
        out.append(Week(train_until - timedelta(days=7), train_until, test_from, test_until))
    return out[::-1]


def scores_report(frame: pd.DataFrame, known: list[str]) -> dict[str, float | None]:
    """Metrics of `score` against `y` on the test week (card, day and scenario columns too)."""
    y, s = frame["y"].to_numpy(dtype=int), frame["score"].to_numpy(dtype=float)
    top = s >= np.quantile(s, 1 - TOP_SHARE, method="higher")
    out: dict[str, float | None] = {
        "auc": roc_auc_score(y, s), "ap": average_precision_score(y, s),
        "cp": card_precision_at_k(frame, K), "cp_handbook": card_precision_at_k_handbook(frame, K, known)}
    for scenario in sorted(frame.loc[frame["y"] == 1, "scenario"].dropna().unique()):
        rows = (frame["scenario"] == scenario).to_numpy()
        out[f"recall {scenario}"] = float((top & rows).sum() / rows.sum())
    return out


def metrics_report(m: dict) -> dict[str, float | None]:
    """The same figures from `evaluate_run`'s metrics (recall at the run's own threshold)."""
    out = {"auc": m["roc_auc"], "ap": m["average_precision"], "cp": m["card_precision_at_k"],
           "cp_handbook": m["card_precision_at_k_handbook"]}
    out.update({f"recall {s}": r["recall"] for s, r in m["recall_by_scenario"].items()})
    return out


def parse_variant(text: str) -> tuple[str, str, dict]:
    """`model:imbalance[:param=value...]`, e.g. `lgbm:smote:n_estimators=200:learning_rate=0.1`."""
    model, imbalance, *pairs = text.split(":")
    params = {}
    for pair in pairs:
        key, value = pair.split("=")
        params[key] = float(value) if "." in value else int(value) if value.lstrip("-").isdigit() else value
    return model, imbalance, params


def evaluate_dataset(ctx: Context, dataset: Dataset, n_weeks: int, grid: bool, variants: list[str] | None = None,
                     detectors: list[str] | None = None) -> dict[str, list[dict]]:
    conn = ctx.conn
    feature_set = load_feature_set(conn, dataset)
    delay = feature_set.params.get("label_delay_days", DEFAULT_LABEL_DELAY_DAYS)
    results: dict[str, list[dict]] = {}
    truth = conn.execute(f"SELECT tx_row, CAST(is_fraud AS INTEGER) AS y, fraud_scenario AS scenario, customer_id AS card, "
                         f"CAST(ts AS DATE) AS day_ FROM {dataset.table}").df().rename(columns={"day_": "day"})
    for week in weeks(dataset, n_weeks, delay):
        print(f"  week: train {week.train_from:%Y-%m-%d}..{week.train_until:%Y-%m-%d}, "
              f"test {week.test_from:%Y-%m-%d}..{week.test_until:%Y-%m-%d}", flush=True)
        base = None
        chosen_detectors = detectors if detectors is not None else DETECTORS
        for name in [DEFAULT_DETECTOR, *(d for d in chosen_detectors if d != DEFAULT_DETECTOR)]:
            started = time.perf_counter()
            members, _, combine = name.partition(":")
            try:
                run = runs.fit(ctx, dataset, members.split("+"), combine=combine or "mean", train_until=week.train_until,
                               activate=name == DEFAULT_DETECTOR)
            except UserError as exc:
                print(f"    {name}: refused ({exc.problem})")
                continue
            base = run if name == DEFAULT_DETECTOR else base
            report = metrics_report(evaluate_run(conn, dataset, run, start=week.test_from, end=week.test_until, k=K))
            results.setdefault(f"detector {name}", []).append({**report, "seconds": time.perf_counter() - started})
        # The training week, labelled by analysts from the ground truth, as one action.
        week_rows = conn.execute(
            f"SELECT transaction_id, CASE WHEN is_fraud THEN 'fraud' ELSE 'legitimate' END AS label FROM {dataset.table} "
            "WHERE ts >= ? AND ts < ?", [week.train_from, week.train_until]).df()
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as handle:
            week_rows.to_csv(handle, index=False)
        labelled = labels.label_file(Context(conn, "analysts"), dataset, handle.name)
        Path(handle.name).unlink()
        known = known_compromised_cards(conn, dataset, week.test_from)
        spec = FeatureSpec([*feature_set.computed, ANOMALY_SCORE], [], base_run_id=base.id)
        frame = load_frame(conn, dataset, feature_set, spec).merge(truth, on="tx_row")
        train = frame[(frame["ts"] >= week.train_from) & (frame["ts"] < week.train_until)]
        test = frame[(frame["ts"] >= week.test_from) & (frame["ts"] < week.test_until)].reset_index(drop=True)
        chosen = [parse_variant(v) for v in variants] if variants else \
            [(m, i, {}) for m in CLASSIFIERS for i in IMBALANCE] if grid else \
            [(DEFAULT_MODEL, DEFAULT_IMBALANCE, {}), ("rf", DEFAULT_IMBALANCE, {})]
        for model_name, imbalance, params in chosen:
            started = time.perf_counter()
            model = LearnedModel(model_name, spec, 0, params, imbalance).fit(train, train["y"])
            report = scores_report(test.assign(score=model.decision_function(test)), known)
            label = " ".join(["learned", model_name, imbalance, *(f"{k}={v}" for k, v in params.items())])
            results.setdefault(label, []).append({**report, "seconds": time.perf_counter() - started})
        started = time.perf_counter()
        version = models.retrain(ctx, dataset, use_truth=False, train_until=week.train_until)
        seconds = time.perf_counter() - started
        report = metrics_report(evaluate_run(conn, dataset, version, start=week.test_from, end=week.test_until, k=K))
        results.setdefault(f"retrain (default: {DEFAULT_MODEL} {DEFAULT_IMBALANCE})", []).append(
            {**report, "seconds": seconds})
        labels.undo(Context(conn, "analysts"), labelled.batch_id)  # the next week learns from its own week only
    return results


def time_retrain_on_the_label_column(ctx: Context, dataset: Dataset) -> None:
    """`centinela retrain` with the label column's whole history: validate, refit, score every row."""
    split = weeks(dataset, 1, DEFAULT_LABEL_DELAY_DAYS)[0].train_until
    started = time.perf_counter()
    version = models.retrain(ctx, dataset, use_truth=True, train_until=split)
    print(f"\n  retrain ({DEFAULT_MODEL} {DEFAULT_IMBALANCE}) on {version.label_counts['total']:,} labels (the label "
          f"column before {split:%Y-%m-%d}), then scoring all {dataset.row_count:,} rows: "
          f"{time.perf_counter() - started:.1f} s (target <= 30 s)")


def print_table(results: dict[str, list[dict]]) -> None:
    keys = sorted({k for rows in results.values() for r in rows for k in r if k.startswith("recall ")})
    print(f"  {'model':<40} {'ROC AUC':>7} {'AP':>6} {'CP@100':>6} {'hb CP@100':>9} " +
          " ".join(f"{k.removeprefix('recall ')[:12]:>12}" for k in keys) + f" {'s/week':>7}")
    for name, rows in results.items():
        mean = {k: np.nanmean([np.nan if r.get(k) is None else r[k] for r in rows]) for k in
                ("auc", "ap", "cp", "cp_handbook", "seconds", *keys)}
        print(f"  {name:<40} {mean['auc']:>7.3f} {mean['ap']:>6.3f} {mean['cp']:>6.3f} {mean['cp_handbook']:>9.3f} " +
              " ".join(f"{mean[k]:>12.3f}" for k in keys) + f" {mean['seconds']:>7.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated transactions (default 1,000,000)")
    parser.add_argument("--weeks", type=int, default=3, help="weekly splits to average over (default 3)")
    parser.add_argument("--handbook", action="store_true", help="also transactions in the handbook's shape (1.8M)")
    parser.add_argument("--no-generated", action="store_true", help="skip the product's own generated data")
    parser.add_argument("--grid", action="store_true", help="every classifier x imbalance handling (slower)")
    parser.add_argument("--learned", nargs="*", metavar="MODEL:IMBALANCE[:K=V...]",
                        help="these learned models instead (e.g. lgbm:smote:n_estimators=200)")
    parser.add_argument("--only-default-detector", action="store_true", help="skip the other detectors")
    parser.add_argument("--detectors", nargs="*", metavar="NAME[+NAME...][:COMBINE]",
                        help="these detectors instead (an ensemble: isolation_forest+ecod:rank)")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="centinela-quality-") as folder:
        conn = connect(Path(folder) / "quality.duckdb")
        ctx = Context(conn, "bench")
        if not args.no_generated:
            dataset = datasets.generate(ctx, "generated", SyntheticConfig(rows=args.rows, seed=42)).dataset
            print(f"\ngenerated data: {dataset.row_count:,} rows, {dataset.min_ts:%Y-%m-%d} to {dataset.max_ts:%Y-%m-%d}")
            print_table(evaluate_dataset(ctx, dataset, args.weeks, args.grid, args.learned,
                                         [DEFAULT_DETECTOR] if args.only_default_detector else args.detectors))
        if args.handbook:
            csv = Path(folder) / "handbook.csv"
            write_handbook(csv, seed=1)
            dataset = datasets.import_dataset(ctx, csv, "handbook").dataset
            print(f"\nhandbook-shaped data: {dataset.row_count:,} rows, {dataset.min_ts:%Y-%m-%d} to {dataset.max_ts:%Y-%m-%d}")
            print_table(evaluate_dataset(ctx, dataset, args.weeks, args.grid, args.learned,
                                         [DEFAULT_DETECTOR] if args.only_default_detector else args.detectors))
            time_retrain_on_the_label_column(ctx, dataset)
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
