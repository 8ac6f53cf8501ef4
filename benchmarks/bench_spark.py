"""Spark in local mode beside DuckDB on the same work: the features and the default detector's
scores of every row, at 1M and 10M rows.

As processes, the way a data scientist runs them: `centinela generate --rows N` (with its
features) and `centinela fit` build the workbench's dataset and model; `centinela export` writes
the lake (one Parquet file). DuckDB's time for the work is `centinela features` plus `centinela
score` (the saved model over every row); Spark's is `centinela spark score --master local[C]`
(features on Spark, every row scored, decisions and alerts written). Peak memory is sampled every
0.2 s over the whole process tree: the driver (the Python process and its JVM, which in local mode
also runs the executors' threads) and, apart, Spark's Python workers (where the model scores).
Rows per second per core is what one executor core does here: a cluster of E cores runs about E
times that on the scoring, less the shuffle the features' windows need.

Run: `make bench-spark` (`--rows 1000000` for one size; `--keep DIR` keeps the files).
Loops are bounded; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench_foundation import machine
from benchmarks.bench_path import product_step

ROOT = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(root: int) -> dict[int, tuple[int, str]]:
    """pid -> (RSS bytes, command name) of `root` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    info: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            parents[int(entry.name)] = int(fields[1])
            info[int(entry.name)] = (int(fields[21]) * PAGE, name)
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                frontier.append(child)
    return {pid: info[pid] for pid in found if pid in info}


def timed_tree(args: list[str], db: Path, log: Path, limit_s: float) -> tuple[float, float, float]:
    """Wall seconds, the driver's peak RSS (GB: the command's process and its JVM) and the Python
    workers' peak (GB, all of them together) of one `centinela` command."""
    env = {**os.environ, "CENTINELA_DB": str(db), "PYTHONPATH": str(ROOT), "PYSPARK_PYTHON": sys.executable}
    started = time.perf_counter()
    peaks = {"driver": 0, "workers": 0}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())",
                                    "--quiet", *args], stdout=out, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                tree = _tree(process.pid)
                driver = sum(rss for pid, (rss, name) in tree.items() if pid == process.pid or name == "java")
                workers = sum(rss for pid, (rss, name) in tree.items() if pid != process.pid and name != "java")
                peaks["driver"], peaks["workers"] = max(peaks["driver"], driver), max(peaks["workers"], workers)
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            code = process.wait(timeout=limit_s)
        finally:
            done.set()
            sampler.join()
            if process.poll() is None:
                process.kill()
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"centinela {' '.join(args)} failed:\n{log.read_text()[-3000:]}")
    return seconds, peaks["driver"] / 2**30, peaks["workers"] / 2**30


def one_size(rows: int, folder: Path, cores: int, limit_s: float) -> dict[str, float]:
    db, lake = folder / f"lake-{rows}.duckdb", folder / f"lake-{rows}.parquet"
    for leftover in (db, db.with_name(db.name + ".wal")):
        leftover.unlink(missing_ok=True)
    for command in (["generate", "--rows", str(rows), "--name", "lake", "--seed", "7"], ["fit", "lake"],
                    ["export", "lake", "--out", str(lake)]):
        seconds, _ = product_step(command, db, folder / f"{command[0]}-{rows}.log")
        print(f"  {rows:,} rows, centinela {command[0]}: {seconds:.1f} s", flush=True)
    features_s, features_gb = product_step(["features", "lake"], db, folder / f"features-{rows}.log")
    score_s, score_gb = product_step(["score", "lake"], db, folder / f"score-{rows}.log")
    print(f"  DuckDB: features {features_s:.1f} s, scoring {score_s:.1f} s", flush=True)
    out = folder / f"scored-{rows}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    spark_s, driver_gb, workers_gb = timed_tree(["spark", "score", "--input", str(lake), "--dataset", "lake", "--output",
                                                 str(out), "--master", f"local[{cores}]"], db,
                                                folder / f"spark-{rows}.log", limit_s)
    print(f"  Spark local[{cores}]: features + scoring {spark_s:.1f} s", flush=True)
    return {"rows": rows, "duckdb_s": features_s + score_s, "duckdb_features_s": features_s, "duckdb_score_s": score_s,
            "duckdb_peak_gb": max(features_gb, score_gb), "spark_s": spark_s, "driver_gb": driver_gb,
            "workers_gb": workers_gb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="repeatable (default 1,000,000 and 10,000,000)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="Spark's local[C] (default: all)")
    parser.add_argument("--limit-s", type=float, default=3 * 3600, help="stop a Spark run after this long")
    parser.add_argument("--keep", type=Path, help="a folder to keep the databases and files in")
    args = parser.parse_args()
    sizes = args.rows or [1_000_000, 10_000_000]
    results = []
    with tempfile.TemporaryDirectory(prefix="centinela-spark-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for rows in sizes:
            results.append(one_size(rows, folder, args.cores, args.limit_s))
    print(f"\nmachine: {machine()}; Spark local[{args.cores}]")
    print(f"{'rows':>11} {'DuckDB s':>9} {'rows/s':>9} {'Spark s':>8} {'rows/s':>8} {'per core':>9} "
          f"{'driver GB':>9} {'workers GB':>10} {'DuckDB GB':>9}")
    for r in results:
        per_core = r["rows"] / r["spark_s"] / args.cores
        print(f"{r['rows']:>11,} {r['duckdb_s']:9.1f} {r['rows'] / r['duckdb_s']:9,.0f} {r['spark_s']:8.1f} "
              f"{r['rows'] / r['spark_s']:8,.0f} {per_core:9,.0f} {r['driver_gb']:9.2f} {r['workers_gb']:10.2f} "
              f"{r['duckdb_peak_gb']:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
