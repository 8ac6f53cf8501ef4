"""The whole path beside the bare libraries, in one run, on one handbook-shaped CSV.

Bare libraries, in this process: DuckDB `read_csv` of the file into a table; nine window
features in one DuckDB query (per customer: count and mean amount over 1, 7 and 30 days; per
terminal: count over 1, 7 and 30 days); scikit-learn's IsolationForest with the default
detector's parameters, fitted on every row and `score_samples` over every row.
The product, as processes, as a data scientist runs it: `centinela import FILE --no-features`,
`centinela features`, `centinela fit` (the default detector; it also writes the scores, the run and
its evaluation). Each step's wall time and peak RSS, the two sums and their ratio (target ≤ 1.5x).

Run: `make bench-path` (`--customers 28600` makes about 10M rows; `--keep DIR` keeps the files).
Loops are bounded; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

from benchmarks.bench_foundation import machine
from benchmarks.handbook import write_handbook
from detectors.backends import SklearnIsolationForest

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
WINDOWS = (("1d", "1 DAY"), ("7d", "7 DAYS"), ("30d", "30 DAYS"))


def bare_features_sql() -> str:
    """Nine backwards-only window features in one query, as a notebook would write them."""
    columns = []
    for name, span in WINDOWS:
        customer = f"(PARTITION BY CUSTOMER_ID ORDER BY TX_DATETIME RANGE BETWEEN INTERVAL {span} PRECEDING AND CURRENT ROW)"
        terminal = f"(PARTITION BY TERMINAL_ID ORDER BY TX_DATETIME RANGE BETWEEN INTERVAL {span} PRECEDING AND CURRENT ROW)"
        columns += [f"count(*) OVER {customer} AS customer_count_{name}",
                    f"avg(TX_AMOUNT) OVER {customer} AS customer_mean_{name}",
                    f"count(*) OVER {terminal} AS terminal_count_{name}"]
    return f"CREATE TABLE features AS SELECT TRANSACTION_ID, TX_AMOUNT, {', '.join(columns)} FROM tx"


def bare(csv: Path, folder: Path) -> dict[str, float]:
    """Seconds per step of the bare libraries."""
    path = folder / "bare.duckdb"
    for leftover in (path, path.with_name(path.name + ".wal")):  # a kept folder's earlier run
        leftover.unlink(missing_ok=True)
    conn = duckdb.connect(str(path))
    times = {}
    started = time.perf_counter()
    conn.execute(f"CREATE TABLE tx AS SELECT * FROM read_csv('{csv}')")
    times["read"] = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute(bare_features_sql())
    times["features"] = time.perf_counter() - started
    X = np.column_stack(list(conn.execute("SELECT * EXCLUDE (TRANSACTION_ID) FROM features").fetchnumpy().values()))
    X = X.astype(np.float64)
    conn.close()
    from sklearn.ensemble import IsolationForest

    defaults = SklearnIsolationForest()  # the product's default detector's parameters
    forest = IsolationForest(n_estimators=defaults.n_estimators, max_samples=defaults.max_samples,
                             max_features=defaults.max_features, random_state=defaults.random_state, n_jobs=-1)
    started = time.perf_counter()
    forest.fit(X)
    times["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    forest.score_samples(X)
    times["score"] = time.perf_counter() - started
    return times


def product_step(args: list[str], db: Path, log: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of one `centinela` command (its output into `log`)."""
    started = time.perf_counter()
    with log.open("w") as out:
        # This checkout's command line (what `centinela` runs), so two checkouts can be compared.
        process = subprocess.Popen([sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())",
                                    "--quiet", *args], stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "CENTINELA_DB": str(db), "PYTHONPATH": str(ROOT)})
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"centinela {' '.join(args)} failed:\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000, help="5,000 gives about 1.75M rows (the handbook's size)")
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="a folder to keep the CSV and both databases in")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        csv = folder / "handbook.csv"
        if not csv.exists():
            write_handbook(csv, n_customers=args.customers, n_terminals=args.terminals)
        rows = int(duckdb.sql(f"SELECT count(*) FROM read_csv('{csv}')").fetchall()[0][0])
        bare_times = bare(csv, folder)
        db = folder / "product.duckdb"
        for leftover in (db, db.with_name(db.name + ".wal")):
            leftover.unlink(missing_ok=True)
        product = {}
        for step, command in (("import", ["import", str(csv), "--name", "hb", "--no-features"]),
                              ("features", ["features", "hb"]), ("fit", ["fit", "hb"])):
            product[step] = product_step(command, db, folder / f"{step}.log")
    bare_sum = sum(bare_times.values())
    product_sum = sum(seconds for seconds, _ in product.values())
    figures = {"rows": rows, "machine": machine(), "bare_s": {k: round(v, 2) for k, v in bare_times.items()},
               "bare_sum_s": round(bare_sum, 2),
               "product_s": {k: round(v[0], 2) for k, v in product.items()},
               "product_peak_rss_gb": {k: round(v[1], 2) for k, v in product.items()},
               "product_sum_s": round(product_sum, 2), "ratio": round(product_sum / bare_sum, 2)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"machine: {figures['machine']}")
    print(f"rows: {rows:,} (handbook-shaped CSV, {args.customers:,} customers, {args.terminals:,} terminals)")
    print(f"{'step':<10} {'bare':>8} {'product':>9} {'peak RSS':>9}")
    for step, bare_step in (("import", "read"), ("features", "features"), ("fit", "fit"), ("score", "score")):
        seconds, rss = product.get(step, (None, None))
        shown = f"{seconds:8.2f}s" if seconds is not None else "  (in fit)"
        print(f"{step:<10} {bare_times[bare_step]:7.2f}s {shown:>9} {f'{rss:.2f} GB' if rss else '':>9}")
    verdict = "ok" if product_sum <= TARGET_RATIO * bare_sum else "MISSED"
    print(f"{'sum':<10} {bare_sum:7.2f}s {product_sum:8.2f}s")
    print(f"product / bare: {product_sum / bare_sum:.2f}x  (target <= {TARGET_RATIO}x) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
