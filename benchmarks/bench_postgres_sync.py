"""`make bench-postgres`: a PostgreSQL source synced into a dataset (a throwaway local cluster,
tests/postgres.py): the first sync of ROWS rows, then an incremental sync after 2,000 inserts and
200 corrected amounts, then a sync with nothing new. Prints where the time goes."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from application import database_sources as sources
from application.context import Context
from data.db import connect
from tests.postgres import READER_PASSWORD, cluster

START = "timestamptz '2026-09-01 05:00:00+00'"


def rows_sql(first: int, last: int) -> str:
    return (f"INSERT INTO card_tx SELECT 'T' || lpad(g::text, 9, '0'), {START} + g * interval '20 seconds', "
            "round(((g * 7919) % 50000) / 100.0 + 1, 2), 'C' || (g % 9973), 'M' || (g % 613), "
            "CASE WHEN g % 3 = 0 THEN 'pos' ELSE 'web' END, 'D' || (g % 20011), "
            f"{START} + g * interval '20 seconds' FROM generate_series({first}, {last}) g")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    os.environ["CENTINELA_PG_BENCH_PASSWORD"] = READER_PASSWORD
    with cluster() as pg, tempfile.TemporaryDirectory() as folder:
        pg.execute("CREATE TABLE card_tx (tx_id text PRIMARY KEY, created_at timestamptz NOT NULL, amount numeric(12,2), "
                   "customer_id text, merchant_id text, channel text, device_id text, updated_at timestamptz NOT NULL)",
                   rows_sql(1, args.rows), "CREATE INDEX ON card_tx (updated_at)", "ANALYZE card_tx")
        conn = connect(Path(folder) / "bench.duckdb")
        ctx = Context(conn, "cli:bench")
        url = f"postgresql://reader:${{CENTINELA_PG_BENCH_PASSWORD}}@127.0.0.1:{pg.port}/core"
        sources.add_source(ctx, "core", url, table="card_tx", watermark="updated_at", overlap="10m",
                           maps=["timestamp=created_at"])

        def timed(label: str) -> None:
            before = conn.execute("SELECT computed_at FROM feature_sets").fetchall()
            started = time.perf_counter()
            report = sources.sync(ctx, "core")
            seconds = time.perf_counter() - started
            after, features = conn.execute("SELECT computed_at, seconds FROM feature_sets").fetchall()[0]
            features = features if [(after,)] != before else 0.0  # recomputed only when rows changed
            print(f"{label}: {report.rows_read:,} rows read ({report.new:,} new, {report.updated:,} updated, "
                  f"{report.skipped:,} unchanged) in {seconds:.2f} s = {report.rows_read / seconds:,.0f} rows/s; "
                  f"PostgreSQL read to Arrow {report.read_seconds:.2f} s; features over the whole dataset "
                  f"{features:.2f} s; the rest (Parquet, import checks, merge, commit) "
                  f"{seconds - report.read_seconds - features:.2f} s")

        timed(f"first sync of {args.rows:,} rows")
        pg.execute(rows_sql(args.rows + 1, args.rows + 2_000),
                   "UPDATE card_tx SET amount = amount + 1, updated_at = now() WHERE tx_id IN "
                   f"(SELECT 'T' || lpad(g::text, 9, '0') FROM generate_series(1, {args.rows}, {args.rows // 200}) g)")
        timed("incremental sync (2,000 inserted, 200 corrected)")
        timed("sync with nothing new")
        conn.close()


if __name__ == "__main__":
    main()
