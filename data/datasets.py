"""The dataset registry: named transaction tables that coexist in one database.

Each dataset's rows live in their own table `tx_<id>` with canonical column names (see
`data.mapping.ROLES`) plus the extra columns it was imported with. Creating a dataset is one
transaction: either the table and its registry row both exist afterwards, or neither does.
Deleting moves a dataset to the trash (undoable) until it is purged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from data.db import checked_ident, fetch_one, fetch_records, quote_ident
from data.errors import Conflict, InvalidInput, NotFound

NAME_PATTERN = re.compile(r"^[\w][\w .\-()]{0,63}$", re.UNICODE)


@dataclass(frozen=True)
class StoredColumn:
    """A column of a dataset table: its stored name, role (or extra kind) and where it came from."""

    name: str
    role: str  # a role name from data.mapping.ROLES, or "categorical" / "numeric"
    source: str | None  # the file's column, or None when generated

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "source": self.source}


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str
    table_name: str
    source: str
    created_at: datetime
    row_count: int
    min_ts: datetime | None
    max_ts: datetime | None
    columns: tuple[StoredColumn, ...]
    import_report: dict[str, Any]
    timezone: str = "America/Lima"  # the zone its timestamps are wall time in

    @property
    def table(self) -> str:
        """The dataset table's name, quoted for SQL."""
        return checked_ident(self.table_name)

    def has_role(self, role: str) -> bool:
        return any(c.role == role for c in self.columns)

    def column_for(self, role: str) -> str | None:
        return next((c.name for c in self.columns if c.role == role), None)

    def extras(self, kind: str) -> list[str]:
        return [c.name for c in self.columns if c.role == kind]

    def has_column(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)

    def sql_column(self, name: str, sql_type: str = "VARCHAR", alias: str = "t") -> str:
        """`alias."name"` if the dataset stores that column, else a typed NULL, so one query fits
        files of any shape."""
        return f"{alias}.{quote_ident(name)}" if self.has_column(name) else f"CAST(NULL AS {sql_type})"

    @property
    def label_column(self) -> str | None:
        return self.column_for("label")


def validate_name(name: str) -> str:
    """Dataset names: 1-64 letters, digits, spaces and . - _ ( ); shown everywhere, so kept plain."""
    cleaned = (name or "").strip()
    if not NAME_PATTERN.match(cleaned):
        raise InvalidInput(
            f"dataset name {name!r} is not allowed.", field="name",
            hint="Use 1-64 letters, digits, spaces, dots, dashes, underscores or parentheses, "
            "starting with a letter or digit.",
        )
    return cleaned


_COLUMNS = "id, name, table_name, source, created_at, row_count, min_ts, max_ts, columns, import_report, timezone"


def _from_record(record: dict[str, Any]) -> Dataset:
    columns = tuple(StoredColumn(**c) for c in json.loads(record.pop("columns")))
    report = json.loads(record.pop("import_report"))
    record["timezone"] = record.get("timezone") or "America/Lima"
    return Dataset(**record, columns=columns, import_report=report)


def list_datasets(conn: duckdb.DuckDBPyConnection, *, deleted: bool = False) -> list[Dataset]:
    """Datasets in creation order; `deleted=True` lists the trash instead."""
    condition = "deleted_at IS NOT NULL" if deleted else "deleted_at IS NULL"
    return [_from_record(r) for r in fetch_records(conn, f"SELECT {_COLUMNS} FROM datasets WHERE {condition} ORDER BY id")]


def get_dataset(conn: duckdb.DuckDBPyConnection, name: str | int) -> Dataset:
    """A live dataset by name or id; NotFound naming the available ones if there is none."""
    key = "id" if isinstance(name, int) else "name"
    found = fetch_records(conn, f"SELECT {_COLUMNS} FROM datasets WHERE {key} = ? AND deleted_at IS NULL", [name])
    if not found:
        names = [d.name for d in list_datasets(conn)]
        raise NotFound(
            f"no dataset {'#' if key == 'id' else 'named '}{name!r}.",
            hint=f"Available: {', '.join(names)}." if names else "There are no datasets yet: generate or import one.",
        )
    return _from_record(found[0])


@dataclass
class NewDataset:
    """A dataset being created: its table exists only inside the open transaction."""

    id: int
    name: str
    table_name: str
    source: str
    timezone: str = "America/Lima"
    columns: list[StoredColumn] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return checked_ident(self.table_name)


def check_new_name(conn: duckdb.DuckDBPyConnection, name: str) -> str:
    """A valid name no live dataset has (checked again when the dataset is registered)."""
    name = validate_name(name)
    if fetch_one(conn, "SELECT 1 FROM datasets WHERE name = ? AND deleted_at IS NULL", [name]):
        raise Conflict(f"a dataset named {name!r} already exists.", field="name",
                       hint="Choose another name, or delete the existing dataset first.")
    return name


@contextmanager
def new_dataset(conn: duckdb.DuckDBPyConnection, name: str, source: str,
                timezone: str = "America/Lima") -> Iterator[NewDataset]:
    """Reserve an id for a new dataset; the block creates `table` and fills in `columns`, and the
    dataset is registered when the block ends.

    Runs inside the caller's transaction (the application layer's unit of work): if anything
    raises, the caller's rollback leaves the database exactly as before.
    """
    name = check_new_name(conn, name)
    trashed = fetch_one(conn, "SELECT id FROM datasets WHERE name = ? AND deleted_at IS NOT NULL", [name])
    if trashed:  # the name is in the trash: the user deleted it, so the new one takes its place
        purge(conn, trashed[0])
    dataset_id = fetch_one(conn, "SELECT nextval('dataset_ids')")[0]
    pending = NewDataset(dataset_id, name, f"tx_{dataset_id}", source, timezone)
    yield pending
    row_count, min_ts, max_ts = fetch_one(conn, f"SELECT count(*), min(ts), max(ts) FROM {pending.table}")
    if row_count == 0:
        raise InvalidInput("no rows to store.", hint="The source has no usable data rows.")
    conn.execute(
        "INSERT INTO datasets (id, name, table_name, source, created_at, row_count, min_ts, max_ts, columns, "
        "import_report, deleted_at, timezone) VALUES (?, ?, ?, ?, current_timestamp::TIMESTAMP, ?, ?, ?, ?, ?, NULL, ?)",
        [dataset_id, name, pending.table_name, source, row_count, min_ts, max_ts,
         json.dumps([c.as_dict() for c in pending.columns]), json.dumps(pending.report, default=str), pending.timezone],
    )


def mark_deleted(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> None:
    """Move a dataset to the trash (`restore` takes it back until it is purged)."""
    conn.execute("UPDATE datasets SET deleted_at = current_timestamp::TIMESTAMP WHERE id = ?", [dataset.id])


def restore(conn: duckdb.DuckDBPyConnection, dataset_id: int) -> Dataset:
    """Take a dataset back out of the trash."""
    found = conn.execute(
        "UPDATE datasets SET deleted_at = NULL WHERE id = ? AND deleted_at IS NOT NULL RETURNING name", [int(dataset_id)]
    ).fetchall()
    if not found:
        raise NotFound(f"dataset {dataset_id} is not in the trash.")
    return get_dataset(conn, int(dataset_id))


def purge(conn: duckdb.DuckDBPyConnection, dataset_id: int) -> None:
    """Drop a dataset for good, with its features, labels, cases, runs and scores."""
    table = conn.execute("SELECT table_name FROM datasets WHERE id = ?", [dataset_id]).fetchall()[0][0]
    feature_table = fetch_one(conn, "SELECT table_name FROM feature_sets WHERE dataset_id = ?", [dataset_id])
    if feature_table:
        conn.execute(f"DROP TABLE IF EXISTS {checked_ident(feature_table[0])}")
    conn.execute(f"DROP TABLE IF EXISTS {checked_ident(table)}")
    conn.execute("DELETE FROM feature_sets WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM label_undos WHERE batch_id IN (SELECT batch_id FROM labels WHERE dataset_id = ?)", [dataset_id])
    conn.execute("DELETE FROM labels WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM case_events WHERE dataset_id = ?", [dataset_id])
    for table in ("scores", "explanations", "global_importance", "run_figures"):
        conn.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT id FROM runs WHERE dataset_id = ?)", [dataset_id])
    conn.execute("DELETE FROM runs WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM active_runs WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM promotions WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM tuning_trials WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM kafka_consumers WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM database_sources WHERE dataset_id = ?", [dataset_id])
    # Its webhook events carry its data: gone with it, as are the webhooks that only took its events.
    conn.execute("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_outbox WHERE dataset_id = ?)",
                 [dataset_id])
    conn.execute("DELETE FROM webhook_outbox WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM webhooks WHERE dataset_id = ?", [dataset_id])
    for table in ("rule_versions", "rule_events"):
        conn.execute(f"DELETE FROM {table} WHERE rule_id IN (SELECT id FROM rules WHERE dataset_id = ?)", [dataset_id])
    conn.execute("DELETE FROM list_entry_events WHERE list_id IN (SELECT id FROM lists WHERE dataset_id = ?)", [dataset_id])
    for table in ("rules", "rule_hits", "lists"):
        conn.execute(f"DELETE FROM {table} WHERE dataset_id = ?", [dataset_id])
    conn.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])


def missing_values(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    """Missing values per stored column, in one scan."""
    names = [c.name for c in dataset.columns]
    counts = ", ".join(f"count({quote_ident(n)})" for n in names)
    filled = conn.execute(f"SELECT {counts} FROM {dataset.table}").fetchall()[0]
    roles = {c.name: c.role for c in dataset.columns}
    frame = pd.DataFrame({"column": names, "role": [roles[n] for n in names], "filled": filled})
    frame["missing"] = dataset.row_count - frame["filled"]
    frame["missing_pct"] = frame["missing"] / max(dataset.row_count, 1) * 100
    return frame[["column", "role", "missing", "missing_pct"]]


def sample_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, limit: int = 100, offset: int = 0) -> pd.DataFrame:
    """One page of rows in time order."""
    names = ", ".join(quote_ident(c.name) for c in dataset.columns)
    return conn.execute(
        f"SELECT {names} FROM {dataset.table} ORDER BY ts, tx_row LIMIT ? OFFSET ?", [int(limit), int(offset)]
    ).df()


def profile(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    """Distinct customers, merchants, devices and places, and the amount distribution, in one scan."""
    parts = [("Amount min (PEN)", "min(amount)"), ("Amount median (PEN)", "median(amount)"),
             ("Amount 99th percentile (PEN)", "quantile_cont(amount, 0.99)"), ("Amount max (PEN)", "max(amount)"),
             ("Refunds (negative amounts)", "count(*) FILTER (amount < 0)")]
    for role, label in (("customer_id", "Customers / cards"), ("merchant_id", "Merchants / terminals"),
                        ("device_id", "Devices"), ("city", "Places")):
        column = dataset.column_for(role)
        if column:
            parts.insert(0, (label, f"count(DISTINCT {quote_ident(column)})"))
    values = fetch_one(conn, f"SELECT {', '.join(sql for _, sql in parts)} FROM {dataset.table}")
    return pd.DataFrame({"measure": [label for label, _ in parts], "value": [float(v) if v is not None else None for v in values]})


def labels_version(conn: duckdb.DuckDBPyConnection, dataset_id: int) -> tuple:
    """Changes whenever an analyst label is added to the dataset or an action undone (both append-only)."""
    count, latest, undone = fetch_one(
        conn, "SELECT count(*), max(id), count(*) FILTER (batch_id IN (SELECT batch_id FROM label_undos)) "
        "FROM labels WHERE dataset_id = ?", [dataset_id])
    return int(count), latest, int(undone)


def label_summary(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> dict[str, Any]:
    """Ground-truth label counts, if the dataset has a label column."""
    if not dataset.has_role("label"):
        return {}
    fraud, known = conn.execute(f"SELECT count(*) FILTER (is_fraud), count(is_fraud) FROM {dataset.table}").fetchall()[0]
    return {"fraud": fraud, "labelled": known, "fraud_rate": fraud / known if known else None}

