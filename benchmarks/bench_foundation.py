"""Foundation figures at 1M generated transactions: generation, import vs bare read_csv, features, peak RSS.

Run with `make bench` (or `.venv/bin/python benchmarks/bench_foundation.py [--rows N]`).
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

from application import datasets
from application.context import Context
from data.db import connect, sql_string
from data.synthetic import SyntheticConfig

TARGETS = {"generation_s": 60.0, "import_ratio": 1.5, "features_s": 15.0, "peak_rss_gb": 3.0}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="import and bare read_csv are each timed this many times")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

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
        "machine": machine(),
    }
    rows = [
        ("generation (generate + store in DuckDB)", f"{generation:.1f} s", f"<= {TARGETS['generation_s']:.0f} s", generation <= TARGETS["generation_s"]),
        (f"bare read_csv of the {size_mb:.0f} MB CSV (median of {args.repeats})", f"{bare:.2f} s", "", True),
        (f"import of the same CSV (median of {args.repeats})", f"{imported:.2f} s", "", True),
        ("import / bare read_csv", f"{imported / bare:.2f}x", f"<= {TARGETS['import_ratio']}x", imported / bare <= TARGETS["import_ratio"]),
        (f"features ({len(fs.computed)} computed)", f"{features:.1f} s", f"<= {TARGETS['features_s']:.0f} s", features <= TARGETS["features_s"]),
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
