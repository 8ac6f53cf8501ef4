"""Detection quality on the demo data: average precision and recall per fraud scenario, per detector.

The demo dataset is the one a new database starts with (200,000 generated transactions, seed
42). Each detector is fitted with its defaults on the first 70% of the period and evaluated on
the rest at contamination 0.01, exactly as the app's demo run (the default detector) is. Run:
`make bench-quality`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from application import datasets, runs
from application.context import Context
from data.db import connect
from data.demo import DEMO_NAME, demo_rows
from data.errors import UserError
from data.synthetic import SyntheticConfig
from detectors.base import DEFAULT_DETECTOR, REGISTRY
from detectors.runs import default_split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="detectors (default: all, the default detector first)")
    args = parser.parse_args()
    names = args.only or [DEFAULT_DETECTOR, *sorted(n for n in REGISTRY if n != DEFAULT_DETECTOR)]
    with tempfile.TemporaryDirectory(prefix="centinela-quality-") as folder:
        conn = connect(Path(folder) / "quality.duckdb")
        ctx = Context(conn, "bench")
        # The demo dataset and its features, as a new database gets them (without its demo run:
        # the default detector is fitted below like every other).
        dataset = datasets.generate(Context(conn, "demo"), DEMO_NAME, SyntheticConfig(rows=demo_rows())).dataset
        split = default_split(dataset)
        print(f"demo data: {dataset.row_count:,} rows; trained before {split:%Y-%m-%d}, evaluated from then on; "
              "contamination 0.01")
        rows = []
        for name in names:
            try:
                run = runs.fit(ctx, dataset, [name], train_until=split)
            except UserError as exc:
                print(f"{name}: refused ({exc.problem})")
                continue
            rows.append((name, run.metrics))
        scenarios = sorted({s for _, m in rows for s in m["recall_by_scenario"]})
        header = f"{'detector':<18} {'AP':>6} {'ROC AUC':>8} {'P@100':>6} {'prec':>6} {'recall':>6}  " + " ".join(
            f"{s[:14]:>14}" for s in scenarios)
        print(header)
        for name, m in rows:
            recall = " ".join(f"{m['recall_by_scenario'].get(s, {}).get('recall', float('nan')):>14.3f}" for s in scenarios)
            print(f"{name:<18} {m['average_precision']:>6.3f} {m['roc_auc']:>8.3f} {m['precision_at_k']:>6.2f} "
                  f"{m['precision']:>6.3f} {m['recall']:>6.3f}  {recall}")
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
