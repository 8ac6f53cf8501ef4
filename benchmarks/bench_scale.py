"""Ten million rows on one machine: every step a user takes, its time and its peak memory.

As processes, the way a data scientist runs them: `centinela generate --rows N` (with its
features), `centinela export` to CSV and to Parquet, `centinela import` of each file (with
features) into a second database, `centinela fit` of the default detector; then the server
as `make run` starts it, timed page by page in headless Chromium (`bench_pages.time_pages`),
with the server's own peak memory. Targets (issue 15): peak memory <= 8 GB for every command
and for the server, generate <= 10 minutes, import + features <= 2 minutes, pages <= 1 s.

Run: `make bench-scale` (`--rows 1000000` for a quicker look; `--keep DIR` keeps the files).
Loops are bounded; nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.bench_foundation import machine
from benchmarks.bench_pages import time_pages
from benchmarks.bench_path import product_step

TARGETS = {"peak_gb": 8.0, "generate_s": 600.0, "import_s": 120.0, "page_s": 1.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, help="a folder to keep the databases and files in")
    parser.add_argument("--no-pages", action="store_true", help="the commands only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="centinela-scale-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        main_db, import_db = folder / "scale.duckdb", folder / "imports.duckdb"
        for db in (main_db, import_db):
            for leftover in (db, db.with_name(db.name + ".wal")):
                leftover.unlink(missing_ok=True)
        csv, parquet = folder / "scale.csv", folder / "scale.parquet"
        steps = [("generate (with features)", ["generate", "--rows", str(args.rows), "--name", "scale", "--seed", "7"], main_db),
                 ("export CSV", ["export", "scale", "--out", str(csv)], main_db),
                 ("export Parquet", ["export", "scale", "--out", str(parquet)], main_db),
                 ("import CSV + features", ["import", str(csv), "--name", "from_csv"], import_db),
                 ("import Parquet + features", ["import", str(parquet), "--name", "from_parquet"], import_db),
                 ("fit the default detector + score", ["fit", "scale"], main_db)]
        figures = []
        for label, command, db in steps:
            seconds, peak = product_step(command, db, folder / f"{command[0]}-{len(figures)}.log")
            figures.append((label, seconds, peak))
            print(f"{label}: {seconds:.1f} s, peak RSS {peak:.2f} GB", flush=True)
        pages, server_peak = ([], None) if args.no_pages else time_pages(main_db, "scale")
    print(f"\nmachine: {machine()}")
    print(f"rows: {args.rows:,}")
    print(f"{'step':<36} {'seconds':>8} {'peak RSS':>9}  target")
    for label, seconds, peak in figures:
        limit = TARGETS["generate_s"] if label.startswith("generate") else TARGETS["import_s"] if label.startswith("import") else None
        verdicts = [] if limit is None else [f"<= {limit:.0f} s {'ok' if seconds <= limit else 'MISSED'}"]
        verdicts.append(f"memory {'ok' if peak <= TARGETS['peak_gb'] else 'MISSED'}")
        print(f"{label:<36} {seconds:8.1f} {peak:8.2f}G  {'; '.join(verdicts)}")
    if pages:
        print(f"\npages at {pages[0][1]:,} rows (target <= {TARGETS['page_s']:.0f} s each); server peak RSS "
              f"{server_peak:.2f} GB ({'ok' if server_peak <= TARGETS['peak_gb'] else 'MISSED'})")
        for label, seconds in pages[1:]:
            print(f"{label}: {seconds:.2f} s{'' if seconds <= TARGETS['page_s'] else '  (over)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
