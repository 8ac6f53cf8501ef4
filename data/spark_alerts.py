"""Alerts scored on Spark (`centinela spark score`'s `alerts/` folder) brought into a dataset.

The alerted rows are appended to the dataset's table with the features and scores Spark wrote,
so the queue ranks them, a case explains them and a label on them trains the next version as
for any other row. Only alerts are brought in, never every scored row; a transaction id the
dataset already holds is left as it is, so importing the same output again adds nothing.
Everything is checked before the first write, and the caller's one transaction writes it all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from data.datasets import Dataset
from data.db import fetch_one, fetch_records, quote_ident
from data.errors import InvalidInput
from data.features import FeatureSet

STAGED = "_spark_alerts"  # the checked new rows, a temporary table of the caller's transaction
READ = "_spark_alerts_read"  # the files' rows as read, once
REQUIRED = ("transaction_id", "ts", "amount", "score", "alert", "run_id")


@dataclass(frozen=True)
class AlertFiles:
    display: str  # the path as given, for messages
    files: list[str]


def alert_files(path: str | Path, confine: Path | None = None) -> AlertFiles:
    """The Parquet files of a `spark score` output folder (its `alerts/`), an alerts folder or a
    file; with `confine`, each file must lie inside that folder once links are followed. An
    output with no alert holds no file, only Spark's `_SUCCESS` mark: no files, no error."""
    root = Path(path)
    if root.is_dir() and (root / "alerts").is_dir():
        root = root / "alerts"
    files = [root] if root.is_file() else sorted(root.rglob("*.parquet")) if root.is_dir() else []
    if confine is not None:
        outside = next((f for f in files if not f.resolve().is_relative_to(confine.resolve())), None)
        if outside is not None:
            raise InvalidInput(f"{outside.name!r} leads outside the import folder {confine}.", file=str(path))
    if not files and not (root / "_SUCCESS").is_file():
        raise InvalidInput("no Parquet files here.", file=str(path),
                           hint="Give the --output folder of `centinela spark score`, or its alerts/ folder.")
    return AlertFiles(str(path), [str(f) for f in files])


def stage(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, source: AlertFiles,
          ranked: set[int], active_run: int) -> dict[str, Any]:
    """Read and check the alerts; stage the ones the dataset does not hold yet in `STAGED`.
    `ranked`: the runs whose scores the queue reads (the active run, and the detector run a
    learned version reads); alerts of any other run are refused. Returns what was read."""
    conn.execute(f"DROP TABLE IF EXISTS {STAGED}")
    if not source.files:
        return {"alerts": 0, "new": 0, "already_stored": 0, "runs": [], "feature_set_versions": []}
    reader = "read_parquet($files, hive_partitioning = true, union_by_name = true)"
    files = {"files": source.files}
    try:
        described = conn.execute(f"DESCRIBE SELECT * FROM {reader}", files).fetchall()
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot be read as Parquet ({exc}).", file=source.display) from None
    present = {row[0]: row[1] for row in described}
    for column in (*REQUIRED, *feature_set.computed):
        if column not in present:
            raise InvalidInput("has no such column: the alerts must come from `centinela spark score` with this "
                               "dataset's feature set.", file=source.display, column=column)
    # One read of the files; every check and the staging below query this copy.
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {READ} AS SELECT * FROM {reader}", files)
    top = fetch_records(conn, f"SELECT DISTINCT run_id FROM {READ}")
    run_ids = sorted(int(r["run_id"]) for r in top if r["run_id"] is not None)
    if run_ids != [active_run]:
        other = next((r for r in run_ids if r != active_run), None)
        raise InvalidInput(f"scored by run #{other}, but dataset {dataset.name!r} ranks its queue by run "
                           f"#{active_run}: alerts of another run would be stored and never shown.",
                           file=source.display, column="run_id",
                           hint=f"Score with the active model, or activate run #{other} first (if it is this dataset's).")
    if "base_run_id" in present:
        bases = fetch_records(conn, f"SELECT DISTINCT base_run_id FROM {READ} WHERE base_run_id IS NOT NULL")
        stray = [int(r["base_run_id"]) for r in bases if int(r["base_run_id"]) not in ranked]
        if stray:
            raise InvalidInput(f"carries the scores of run #{stray[0]}, which the active version does not read.",
                               file=source.display, column="base_run_id")
    duplicate = fetch_one(conn, f"SELECT transaction_id FROM {READ} WHERE alert GROUP BY 1 HAVING count(*) > 1 LIMIT 1")
    if duplicate:
        raise InvalidInput(f"transaction {duplicate[0]!r} is in the alerts more than once.", file=source.display,
                           column="transaction_id")
    missing = fetch_one(conn, f"SELECT count(*) FROM {READ} WHERE alert AND (transaction_id IS NULL OR ts IS NULL "
                              "OR amount IS NULL OR score IS NULL)")[0]
    if missing:
        raise InvalidInput(f"{missing:,} alerted rows lack a transaction id, time, amount or score.", file=source.display)
    types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
                              [dataset.table_name]).fetchall())
    stored = [c.name for c in dataset.columns if c.name != "tx_row"]
    wanted = {**{c: types[c] for c in stored if c in present}, **{f: "DOUBLE" for f in feature_set.computed}}
    # A value that does not convert to the stored type is refused, naming the column, not made NULL.
    lost = fetch_one(conn, "SELECT " + ", ".join(
        f"count(*) FILTER (WHERE {quote_ident(c)} IS NOT NULL AND TRY_CAST({quote_ident(c)} AS {t}) IS NULL)"
        for c, t in wanted.items()) + f" FROM {READ} WHERE alert")
    bad = next(((c, n) for (c, _), n in zip(wanted.items(), lost, strict=True) if n), None)
    if bad:
        raise InvalidInput(f"{bad[1]:,} alerted rows hold values that are not {wanted[bad[0]]} ({present[bad[0]]} in "
                           "the file).", file=source.display, column=bad[0])
    columns = [f"CAST({quote_ident(c)} AS {types[c]}) AS {quote_ident(c)}" if c in present
               else f"CAST(NULL AS {types[c]}) AS {quote_ident(c)}" for c in stored]
    features = [f"CAST({quote_ident(f)} AS DOUBLE) AS {quote_ident('f_' + f)}" for f in feature_set.computed]
    base = ", base_score, base_run_id" if "base_run_id" in present else ", NULL::DOUBLE AS base_score, NULL::INTEGER AS base_run_id"
    conn.execute(
        f"CREATE TEMP TABLE {STAGED} AS SELECT {', '.join(columns)}, {', '.join(features)}, score, run_id{base} "
        f"FROM {READ} a WHERE alert AND NOT EXISTS (SELECT 1 FROM {dataset.table} t "
        f"WHERE t.transaction_id = CAST(a.transaction_id AS VARCHAR))")
    total = fetch_one(conn, f"SELECT count(*) FROM {READ} WHERE alert")[0]
    new = fetch_one(conn, f"SELECT count(*) FROM {STAGED}")[0]
    versions = []
    if "feature_set_version" in present:
        versions = [r["v"] for r in fetch_records(conn, f"SELECT DISTINCT feature_set_version AS v FROM {READ}")]
    conn.execute(f"DROP TABLE {READ}")
    return {"alerts": int(total), "new": int(new), "already_stored": int(total - new), "runs": run_ids,
            "feature_set_versions": sorted(v for v in versions if v)}


def append_staged(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet) -> tuple[Any, Any]:
    """Append the staged rows to the dataset (numbered after its rows, in time order), their
    features and scores; returns the earliest and latest time appended."""
    first = int(fetch_one(conn, f"SELECT coalesce(max(tx_row), -1) + 1 FROM {dataset.table}")[0])
    stored = [quote_ident(c.name) for c in dataset.columns if c.name != "tx_row"]
    numbered = f"(SELECT *, {first} + row_number() OVER (ORDER BY ts, transaction_id) - 1 AS _tx_row FROM {STAGED})"
    conn.execute(f"CREATE OR REPLACE TEMP TABLE _spark_numbered AS SELECT * FROM {numbered}")
    conn.execute(f"INSERT INTO {dataset.table} (tx_row, {', '.join(stored)}) SELECT _tx_row, {', '.join(stored)} "
                 "FROM _spark_numbered")
    names = [quote_ident(f) for f in feature_set.computed]
    conn.execute(f"INSERT INTO {feature_set.table} (tx_row, {', '.join(names)}) SELECT _tx_row, "
                 f"{', '.join(quote_ident('f_' + f) for f in feature_set.computed)} FROM _spark_numbered")
    conn.execute("INSERT INTO scores (run_id, tx_row, score) SELECT run_id, _tx_row, score FROM _spark_numbered")
    conn.execute("INSERT INTO scores (run_id, tx_row, score) SELECT base_run_id, _tx_row, base_score "
                 "FROM _spark_numbered WHERE base_run_id IS NOT NULL")
    bounds = fetch_one(conn, "SELECT min(ts), max(ts) FROM _spark_numbered")
    conn.execute("DROP TABLE _spark_numbered")
    return bounds[0], bounds[1]
