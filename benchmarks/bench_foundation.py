"""Foundation figures at 1M generated transactions: generation, import vs bare read_csv, features, peak RSS,
and the import of a 1.75M-row CSV shaped like the fraud-detection handbook's simulated data.

Run with `make bench` (or `.venv/bin/python -m benchmarks.bench_foundation [--rows N] [--handbook-rows N]`;
`--only-handbook` times the handbook import alone, e.g. to compare two checkouts).
Prints one line per figure with its target; exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from application import datasets
from application.context import Context
from data.db import connect, sql_string
from data.synthetic import SyntheticConfig

TARGETS = {"generation_s": 60.0, "import_ratio": 1.5, "features_s": 15.0, "peak_rss_gb": 3.0}
HANDBOOK_COLUMNS = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_TIME_SECONDS",
                    "TX_TIME_DAYS", "TX_FRAUD", "TX_FRAUD_SCENARIO")


def write_handbook_csv(conn, path: Path, rows: int, seed: int = 1) -> None:
    """A CSV shaped like the handbook's simulated transactions (5,000 customers, 10,000 terminals,
    183 days from 2018-04-01, amounts with two decimals), generated with NumPy and written by DuckDB."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 183 * 86_400, rows))
    fraud = (rng.random(rows) < 0.008).astype(np.int8)
    frame = pd.DataFrame({
        "TRANSACTION_ID": np.arange(rows),
        "TX_SECONDS": seconds,
        "CUSTOMER_ID": rng.integers(0, 5_000, rows),
        "TERMINAL_ID": rng.integers(0, 10_000, rows),
        "TX_AMOUNT": np.round(rng.lognormal(3.6, 0.7, rows), 2),
        "TX_FRAUD": fraud,
        "TX_FRAUD_SCENARIO": np.where(fraud == 1, rng.integers(1, 4, rows), 0),
    })
    conn.register("_handbook", frame)
    conn.execute(
        "COPY (SELECT TRANSACTION_ID, strftime(TIMESTAMP '2018-04-01' + to_seconds(TX_SECONDS), '%Y-%m-%d %H:%M:%S') "
        "AS TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT, TX_SECONDS AS TX_TIME_SECONDS, TX_SECONDS // 86400 AS "
        f"TX_TIME_DAYS, TX_FRAUD, TX_FRAUD_SCENARIO FROM _handbook ORDER BY TRANSACTION_ID) TO {sql_string(str(path))} (HEADER)"
    )
    conn.unregister("_handbook")


def time_handbook_import(ctx: Context, folder: Path, rows: int, repeats: int) -> dict:
    """Median import time of the handbook-shaped CSV (guessed mapping, no features), beside bare read_csv."""
    csv = folder / "handbook.csv"
    write_handbook_csv(ctx.conn, csv, rows)
    assert csv.open().readline().strip() == ",".join(HANDBOOK_COLUMNS)
    bare_times, import_times = [], []
    for i in range(repeats):
        started = time.perf_counter()
        ctx.conn.execute("CREATE TABLE bare AS SELECT * FROM read_csv(?)", [str(csv)])
        bare_times.append(time.perf_counter() - started)
        ctx.conn.execute("DROP TABLE bare")
        started = time.perf_counter()
        result = datasets.import_dataset(ctx, csv, f"handbook-{i}", features=False).report
        import_times.append(time.perf_counter() - started)
        assert result.rows_stored == rows, result
        datasets.delete(ctx, result.dataset)
        datasets.empty_trash(ctx)
    return {"rows": rows, "csv_mb": round(csv.stat().st_size / 1e6, 1), "bare_read_csv_s": round(statistics.median(bare_times), 2),
            "import_s": round(statistics.median(import_times), 2), "import_runs_s": [round(t, 2) for t in import_times]}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="import and bare read_csv are each timed this many times")
    parser.add_argument("--handbook-rows", type=int, default=1_750_000, help="rows of the handbook-shaped CSV")
    parser.add_argument("--only-handbook", action="store_true", help="time the handbook-shaped import alone")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.only_handbook:
        with tempfile.TemporaryDirectory(prefix="centinela-bench-") as folder:
            conn = connect(Path(folder) / "bench.duckdb")
            print(f"machine: {machine()}")
            figures = time_handbook_import(Context(conn, "bench"), Path(folder), args.handbook_rows, args.repeats)
            conn.close()
        print(f"handbook-shaped CSV, {figures['rows']:,} rows ({figures['csv_mb']:.0f} MB): import {figures['import_s']:.2f} s "
              f"(median of {args.repeats}: {figures['import_runs_s']}), bare read_csv {figures['bare_read_csv_s']:.2f} s")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        return 0

    with tempfile.TemporaryDirectory(prefix="centinela-bench-") as folder:
        folder = Path(folder)
        conn = connect(folder / "bench.duckdb")
        ctx = Context(conn, "bench")
        print(f"machine: {machine()}")
        print(f"rows: {args.rows:,}")

        started = time.perf_counter()
        dataset = datasets.generate(ctx, "bench", SyntheticConfig(rows=args.rows, seed=1), features=False).dataset
        generation = time.perf_counter() - started

        csv = folder / "bench.csv"
        columns = ", ".join(f'"{c.name}"' for c in dataset.columns if c.name != "tx_row")
        conn.execute(f"COPY (SELECT {columns} FROM {dataset.table} ORDER BY tx_row) TO {sql_string(str(csv))} (HEADER)")
        size_mb = csv.stat().st_size / 1e6

        bare_times, import_times = [], []
        for i in range(args.repeats):  # alternate, so both see the same cache state
            started = time.perf_counter()
            conn.execute("CREATE TABLE bare AS SELECT * FROM read_csv(?)", [str(csv)])
            bare_times.append(time.perf_counter() - started)
            conn.execute("DROP TABLE bare")
            started = time.perf_counter()
            result = datasets.import_dataset(ctx, csv, f"imported-{i}", features=False).report
            import_times.append(time.perf_counter() - started)
            assert result.rows_stored == args.rows, result
        bare, imported = statistics.median(bare_times), statistics.median(import_times)

        started = time.perf_counter()
        fs = datasets.compute_features(ctx, dataset, label_delay_days=7)
        features = time.perf_counter() - started
        handbook = time_handbook_import(ctx, folder, args.handbook_rows, args.repeats)
        conn.close()

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # ru_maxrss is KiB on Linux
    figures = {
        "rows": args.rows,
        "generation_s": round(generation, 2),
        "csv_mb": round(size_mb, 1),
        "bare_read_csv_s": round(bare, 2),
        "import_s": round(imported, 2),
        "import_ratio": round(imported / bare, 2),
        "features_s": round(features, 2),
        "features_computed": len(fs.computed),
        "peak_rss_gb": round(peak_gb, 2),
        "handbook": handbook,
        "machine": machine(),
    }
    rows = [
        ("generation (generate + store in DuckDB)", f"{generation:.1f} s", f"<= {TARGETS['generation_s']:.0f} s", generation <= TARGETS["generation_s"]),
        (f"bare read_csv of the {size_mb:.0f} MB CSV (median of {args.repeats})", f"{bare:.2f} s", "", True),
        (f"import of the same CSV (median of {args.repeats})", f"{imported:.2f} s", "", True),
        ("import / bare read_csv", f"{imported / bare:.2f}x", f"<= {TARGETS['import_ratio']}x", imported / bare <= TARGETS["import_ratio"]),
        (f"features ({len(fs.computed)} computed)", f"{features:.1f} s", f"<= {TARGETS['features_s']:.0f} s", features <= TARGETS["features_s"]),
        (f"import of the {handbook['rows']:,}-row handbook-shaped CSV (median of {args.repeats})",
         f"{handbook['import_s']:.2f} s", "", True),
        ("peak RSS (whole run)", f"{peak_gb:.2f} GB", f"<= {TARGETS['peak_rss_gb']:.0f} GB", peak_gb <= TARGETS["peak_rss_gb"]),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value, target, ok in rows:
        verdict = ("ok" if ok else "MISSED") if target else ""
        print(f"{label:<{width}}  {value:>9}  {target:<9} {verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
