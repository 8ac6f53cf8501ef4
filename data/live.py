"""Transactions arriving one at a time or in batches (the HTTP API): checked with the import's
limits, stored in the dataset table, their features computed online, their decisions kept.

Online features equal batch features by construction: the feature catalogue's SQL
(`data.features.feature_query`) runs over the rows of the customers and merchants the new
transactions involve, a restriction that keeps every window partition whole, so each new row
gets exactly the value the whole-table computation gives it. The windows look only backwards,
so rows stored earlier keep theirs as long as new transactions arrive in time order (a late
one, older than a customer's latest stored row, is scored exactly, but that customer's later
rows keep their stored features until the next recomputation).

Everything here runs inside the caller's transaction (`application.live`).
"""

from __future__ import annotations

import json
import math
import unicodedata
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from data.conventions import MAX_AMOUNT, MAX_YEAR, MIN_YEAR
from data.datasets import Dataset
from data.db import fetch_one, fetch_records, quote_ident
from data.errors import Conflict, InvalidInput
from data.features import FeatureSet, catalogue_features, feature_query, query_params
from data.geography import lookup_frame, place_key_sql
from data.mapping import ROLE_BY_NAME

MAX_BATCH = 10_000
MAX_ID = 128  # characters in a transaction id
MAX_TEXT = 512  # characters in any other text value
REQUIRED = ("transaction_id", "timestamp", "amount")
# Values compared when a transaction id arrives again: a retry must carry the same transaction.
# What a retry must repeat to be the same transaction; the other fields of a retry are not
# compared (the stored transaction stands), as the README says.
IDENTITY = ("timestamp", "amount", "customer_id", "merchant_id", "device_id")
FEW_ROWS = 20  # rows inserted as one VALUES statement


def request_fields(dataset: Dataset) -> dict[str, tuple[str, str]]:
    """What a request item may carry for this dataset: field -> (stored column, SQL type).
    Roles go by their import names (`timestamp`, `amount`, `customer_id`, ...; the ground truth is
    `label`), extra columns by their stored names."""
    fields: dict[str, tuple[str, str]] = {}
    for column in dataset.columns:
        if column.name == "tx_row":
            continue
        role = ROLE_BY_NAME.get(column.role)
        if role is not None:
            fields[role.name] = (column.name, role.sql_type)
        else:
            fields[column.name] = (column.name, "DOUBLE" if column.role == "numeric" else "VARCHAR")
    return fields


def _text(value: Any, item: int, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(f"must be text, not {type(value).__name__}.", item=item, field=name)
    text = str(value).strip()
    if len(text) > limit:
        raise InvalidInput(f"has {len(text):,} characters; at most {limit:,} are allowed.", item=item, field=name)
    # isprintable() is False for every control or surrogate character (and for a few allowed
    # ones): one C call for the usual text, the per-character check only when it says no.
    if not text.isprintable() and any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise InvalidInput("contains control characters.", item=item, field=name)
    return text or None


def _number(value: Any, item: int, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"must be a number, not {type(value).__name__}.", item=item, field=name)
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise InvalidInput("is too large a number.", item=item, field=name) from None
    if not math.isfinite(number):
        raise InvalidInput("must be a finite number (no NaN or Infinity).", item=item, field=name)
    return number


def _timestamp(value: Any, item: int, zone: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{value[:40]!r} is not an ISO 8601 date-time.", item=item, field="timestamp",
                               hint="Write it like 2024-05-01T13:45:00-05:00 (or without an offset, in the dataset's "
                                    f"time zone {zone}).") from None
    if not isinstance(value, datetime):
        raise InvalidInput("must be an ISO 8601 date-time text.", item=item, field="timestamp")
    _check_year(value, item)  # before the conversion too: converting year 1 or 9999 overflows
    if value.tzinfo is not None:  # an instant: converted to the dataset's wall time, as imports do
        value = value.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        _check_year(value, item)
    return value


def _check_year(value: datetime, item: int) -> None:
    if not (MIN_YEAR <= value.year <= MAX_YEAR):
        raise InvalidInput(f"the year {value.year} is outside {MIN_YEAR}-{MAX_YEAR}.", item=item, field="timestamp")


def check_items(dataset: Dataset, items: list[dict[str, Any]]) -> pd.DataFrame:
    """Request items as a frame of stored columns (one row per item, in order); the first bad
    value refuses the batch, naming its item and field. The import's limits apply."""
    if not isinstance(items, list) or not items:
        raise InvalidInput("no transactions sent.", field="transactions")
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"{len(items):,} transactions in one request; at most {MAX_BATCH:,}.", field="transactions")
    fields = request_fields(dataset)
    rows: dict[str, list[Any]] = {column: [] for column, _ in fields.values()}
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput("must be an object of fields.", item=i)
        unknown = [k for k in item if k not in fields]
        if unknown:
            raise InvalidInput(f"dataset {dataset.name!r} has no such field.", item=i, field=str(unknown[0])[:64],
                               hint=f"Fields: {', '.join(fields)}.")
        for name in REQUIRED:
            if item.get(name) is None:
                raise InvalidInput("is required.", item=i, field=name)
        for name, (column, sql_type) in fields.items():
            value = item.get(name)
            if name == "transaction_id":
                value = _text(value, i, name, MAX_ID)
                if value is None:
                    raise InvalidInput("is required.", item=i, field=name)
                if value in seen:
                    raise InvalidInput(f"transaction id {value!r} appears twice in this request (items {seen[value]} and {i}).",
                                       item=i, field=name)
                seen[value] = i
            elif name == "timestamp":
                value = _timestamp(value, i, dataset.timezone)
            elif sql_type == "DOUBLE":
                value = _number(value, i, name)
                if value is not None:
                    if name == "amount" and not abs(value) < MAX_AMOUNT:
                        raise InvalidInput(f"{value:g} is outside the import limit (±{MAX_AMOUNT:.0e} soles).", item=i,
                                           field=name)
                    if name in ("lat", "lon") and not abs(value) <= (90 if name == "lat" else 180):
                        raise InvalidInput(f"{value:g} is not a {'latitude' if name == 'lat' else 'longitude'}.",
                                           item=i, field=name)
            elif sql_type == "BOOLEAN":
                if value is not None and not isinstance(value, bool):
                    raise InvalidInput("must be true or false.", item=i, field=name)
            else:
                value = _text(value, i, name, MAX_TEXT)
            rows[column].append(value)
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"])
    return frame


def stored_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, ids: list[str]) -> pd.DataFrame:
    """The stored transactions among `ids` (identity columns, tx_row) with their decisions."""
    fields = request_fields(dataset)
    columns = [f"t.{quote_ident(fields[n][0])} AS {quote_ident(n)}" for n in IDENTITY if n in fields]
    return conn.execute(
        f"SELECT t.tx_row, t.transaction_id, {', '.join(columns)}, d.tx_row IS NOT NULL AS decided "
        f"FROM {dataset.table} t LEFT JOIN decisions d ON d.dataset_id = $dataset AND d.transaction_id = t.transaction_id "
        f"WHERE t.transaction_id IN (SELECT unnest(CAST($ids AS VARCHAR[])))",
        {"dataset": dataset.id, "ids": ids},
    ).df()


def check_retries(dataset: Dataset, frame: pd.DataFrame, stored: pd.DataFrame) -> None:
    """A transaction id already stored must come again with the same values (a retry), and must
    have been scored live; anything else is a conflict naming the item and field."""
    if stored.empty:
        return
    position = {tx: i for i, tx in enumerate(frame["transaction_id"])}
    fields = request_fields(dataset)
    for _, old in stored.iterrows():
        i = position[old["transaction_id"]]
        if not old["decided"]:
            raise Conflict(f"transaction {old['transaction_id']!r} was stored by an import, not scored live.", item=i,
                           field="transaction_id", hint="Send new transactions only.")
        for name in IDENTITY:
            if name not in fields:
                continue
            new, was = frame.iloc[i][fields[name][0]], old[name]
            if pd.isna(new) and pd.isna(was):
                continue
            same = (pd.Timestamp(new) == pd.Timestamp(was)) if name == "timestamp" else (
                not pd.isna(new) and not pd.isna(was) and new == was)
            if not same:
                raise Conflict(f"transaction {old['transaction_id']!r} is already stored with another {name} ({was}).",
                               item=i, field=name, hint="A retry must send the same transaction; new ones need new ids.")

def _python_values(values: Any, sql_type: str) -> list[Any]:
    """A column as Python values for a parameter: NULL for NaN, NaT and None. (NumPy, not
    pandas, per column: this runs for every column of every live request.)"""
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if sql_type == "TIMESTAMP":
        return [None if v is None else v for v in array.astype("datetime64[us]").tolist()]
    if array.dtype.kind == "f":
        return [None if v != v else v for v in array.tolist()]  # v != v: NaN
    if array.dtype.kind in "iub":
        return array.tolist()
    return [None if v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT else v
            for v in array.tolist()]


def _arrow_values(values: Any, sql_type: str) -> pa.Array:
    """A column as an Arrow array: NULL for NaN, NaT and None, timestamps as zoneless microseconds
    (what `_python_values` gives the VALUES statement)."""
    array = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if sql_type == "TIMESTAMP":
        array = array.astype("datetime64[us]")
    return pa.array(array, from_pandas=True)


def insert_columns(conn: duckdb.DuckDBPyConnection, table: str, columns: dict[str, tuple[str, Any]]) -> None:
    """INSERT rows given column by column (name -> (SQL type, values)). A few rows go as one
    parameterized VALUES statement; more, as an Arrow table DuckDB scans in place (measured
    with 20 columns: 2 ms at 150 and at 1,000 rows, where list parameters cost 6-9 and 29-43 ms:
    every value of a list parameter is converted one by one). Either way no SQL is built from
    values."""
    names = ", ".join(quote_ident(n) for n in columns)
    n_rows = len(next(iter(columns.values()))[1]) if columns else 0
    if n_rows <= FEW_ROWS:
        values = [_python_values(v, sql_type) for sql_type, v in columns.values()]
        # Bare parameters: the column's type converts them (a CAST per value costs 40% more).
        row = "(" + ", ".join("?" for _ in columns) + ")"
        conn.execute(f"INSERT INTO {table} ({names}) VALUES {', '.join([row] * n_rows)}",
                     [v for r in zip(*values, strict=True) for v in r])
        return
    # `_live_insert_rows` is read by name (no table is named so): DuckDB's replacement scan finds
    # this local Arrow table (registering it as a view costs 1-2 ms more a request).
    _live_insert_rows = pa.table({f"c{i}": _arrow_values(v, sql_type)  # noqa: F841
                                  for i, (sql_type, v) in enumerate(columns.values())})
    casts = ", ".join(f"CAST(c{i} AS {sql_type})" for i, (sql_type, _) in enumerate(columns.values()))
    conn.execute(f"INSERT INTO {table} ({names}) SELECT {casts} FROM _live_insert_rows")


def insert_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, frame: pd.DataFrame,
                first: int | None = None) -> np.ndarray:
    """Append checked rows to the dataset table, numbered after the stored ones (from `first`
    when the caller knows the next number); returns their tx_rows. Coordinates the dataset
    derives from the place name are filled in as the import fills them."""
    if first is None:
        first = int(fetch_one(conn, f"SELECT coalesce(max(tx_row), -1) + 1 FROM {dataset.table}")[0])
    tx_rows = np.arange(first, first + len(frame), dtype=np.int64)
    types = {c: t for c, t in request_fields(dataset).values()}
    insert_columns(conn, dataset.table, {"tx_row": ("BIGINT", tx_rows),
                                         **{c: (types.get(c, "BIGINT"), frame[c]) for c in frame.columns}})
    derived = [c.name for c in dataset.columns if c.name in ("lat", "lon") and c.source is None]
    if dataset.has_role("city") and derived:
        conn.register("_places", lookup_frame())
        try:
            conn.execute(f"UPDATE {dataset.table} t SET {', '.join(f'{a} = p.{a}' for a in derived)} FROM _places p "
                         f"WHERE t.tx_row >= ? AND p.place_key = {place_key_sql('t.city')} AND t.{derived[0]} IS NULL",
                         [first])
        finally:
            conn.unregister("_places")
    return tx_rows


def features_by_sql(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, frame: pd.DataFrame,
                    tx_rows: np.ndarray) -> pd.DataFrame:
    """The stored feature set's features for the new rows (`frame`, numbered `tx_rows`, already
    inserted) by the catalogue's own SQL over their customers' and merchants' history (tx_row and
    one column per feature, in tx_row order). The reference the in-memory path is held to, and
    its fallback.

    Features over merchant windows are computed over the merchants' rows, the others over the
    customers' rows: each query reads whole partitions of the windows it uses, and the
    merchant-window query, whose rows are many, computes only its few windows."""
    chosen = catalogue_features(feature_set.computed)
    delay = int(feature_set.params.get("label_delay_days", 7))
    new = [int(r) for r in tx_rows]
    groups = {"merchant_id": [f for f in chosen if "OVER merch" in f.sql]}
    groups["customer_id"] = [f for f in chosen if f not in groups["merchant_id"]]
    features = pd.DataFrame({"tx_row": np.asarray(new, dtype=np.int64)})
    for role, members in groups.items():
        if not members:
            continue
        keep = ["t.tx_row IN (SELECT unnest(CAST($new AS BIGINT[])))"]
        params = {**query_params(dataset, delay), "new": new}
        values = sorted({v for v in frame[role] if v is not None and not pd.isna(v)}) if dataset.has_role(role) else []
        if values:
            keep.append(f"t.{role} IN (SELECT unnest(CAST($ids AS VARCHAR[])))")
            params["ids"] = values
        sql = feature_query(dataset, members, restrict=" OR ".join(keep))
        part = conn.execute(f"SELECT * FROM ({sql}) WHERE tx_row IN (SELECT unnest(CAST($new AS BIGINT[]))) "
                            "ORDER BY tx_row", params).df()
        for f in members:
            features[f.name] = part[f.name].to_numpy()
    return features[["tx_row", *[f.name for f in chosen]]]


def insert_features(conn: duckdb.DuckDBPyConnection, feature_set: FeatureSet,
                    features: pd.DataFrame | dict[str, np.ndarray]) -> None:
    """Append computed feature rows (tx_row and the set's features, as a frame or arrays by name)
    to the feature table."""
    chosen = catalogue_features(feature_set.computed)
    insert_columns(conn, feature_set.table, {"tx_row": ("BIGINT", features["tx_row"]),
                                             **{f.name: ("DOUBLE", features[f.name]) for f in chosen}})


def derived_coordinates(conn: duckdb.DuckDBPyConnection, dataset: Dataset, tx_rows: np.ndarray) -> pd.DataFrame | None:
    """The coordinates `insert_rows` filled in from place names for these rows (None when the
    dataset's coordinates are not derived)."""
    derived = [c.name for c in dataset.columns if c.name in ("lat", "lon") and c.source is None]
    if not (dataset.has_role("city") and derived):
        return None
    return conn.execute(f"SELECT lat, lon FROM {dataset.table} WHERE tx_row BETWEEN ? AND ? ORDER BY tx_row",
                        [int(tx_rows.min()), int(tx_rows.max())]).df()


def model_frame(features: pd.DataFrame | dict[str, np.ndarray], frame: pd.DataFrame, tx_rows: np.ndarray, spec: Any,
                base_scores: np.ndarray | None = None) -> pd.DataFrame:
    """The rows a model scores, as `detectors.pipeline.load_rows` reads them from the tables:
    tx_row, ts, the spec's features, its categorical columns and (for a learned version) the
    base run's score, built from what was just computed instead of read back."""
    columns: dict[str, Any] = {"tx_row": np.asarray(tx_rows, dtype=np.int64), "ts": frame["ts"].to_numpy()}
    for name in spec.numeric:
        columns[name] = base_scores if name == "anomaly_score" and spec.base_run_id is not None else np.asarray(
            features[name])
    for name in spec.categorical:
        columns[name] = frame[name].to_numpy(dtype=object)
    return pd.DataFrame(columns)


def insert_scores(conn: duckdb.DuckDBPyConnection, run_id: int, tx_rows: np.ndarray, scores: np.ndarray) -> None:
    insert_columns(conn, "scores", {"run_id": ("INTEGER", [int(run_id)] * len(tx_rows)),
                                    "tx_row": ("BIGINT", np.asarray(tx_rows)), "score": ("DOUBLE", np.asarray(scores))})


def insert_decisions(conn: duckdb.DuckDBPyConnection, dataset: Dataset, decisions: list[dict[str, Any]], api_key: str,
                     request_id: str, received_at: datetime) -> None:
    n = len(decisions)
    models: dict[int, str] = {}  # a request's decisions share one model dict: written out once
    for d in decisions:
        if id(d["model"]) not in models:
            models[id(d["model"])] = json.dumps(d["model"])
    insert_columns(conn, "decisions", {
        "dataset_id": ("INTEGER", [dataset.id] * n),
        "transaction_id": ("VARCHAR", [d["transaction_id"] for d in decisions]),
        "tx_row": ("BIGINT", [d["tx_row"] for d in decisions]),
        "run_id": ("INTEGER", [d["model"]["run"] for d in decisions]),
        "score": ("DOUBLE", [d["score"] for d in decisions]),
        "alert": ("BOOLEAN", [d["alert"] for d in decisions]),
        "threshold": ("DOUBLE", [d["threshold"] for d in decisions]),
        "model": ("JSON", [models[id(d["model"])] for d in decisions]),
        "reasons": ("JSON", [json.dumps(d["reasons"]) for d in decisions]),
        "api_key": ("VARCHAR", [api_key] * n),
        "request_id": ("VARCHAR", [request_id] * n),
        "received_at": ("TIMESTAMP", [received_at] * n),
    })


def time_bounds(frame: pd.DataFrame) -> tuple[datetime, datetime]:
    """The earliest and latest `ts` of checked rows, as Python datetimes."""
    ts = frame["ts"].to_numpy()
    return pd.Timestamp(ts.min()).to_pydatetime(), pd.Timestamp(ts.max()).to_pydatetime()


def update_counts(conn: duckdb.DuckDBPyConnection, dataset: Dataset, rows: int, bounds: tuple[datetime, datetime]) -> None:
    """Keep the registry's row count and period in step with the `rows` just stored (`bounds`:
    their earliest and latest time)."""
    conn.execute("UPDATE datasets SET row_count = row_count + ?, min_ts = least(min_ts, ?), max_ts = greatest(max_ts, ?) "
                 "WHERE id = ?", [rows, bounds[0], bounds[1], dataset.id])


def decisions_of(conn: duckdb.DuckDBPyConnection, dataset: Dataset, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Stored decisions by transaction id, as the API answers them."""
    found = fetch_records(conn, "SELECT transaction_id, score, alert, threshold, model, reasons, api_key, received_at, "
                                "request_id FROM decisions WHERE dataset_id = ? AND transaction_id IN "
                                "(SELECT unnest(CAST(? AS VARCHAR[])))", [dataset.id, ids])
    return {r["transaction_id"]: decision_record(r) for r in found}


def decision_record(r: dict[str, Any]) -> dict[str, Any]:
    return {"transaction_id": r["transaction_id"], "score": r["score"], "alert": bool(r["alert"]),
            "threshold": r["threshold"], "model": json.loads(r["model"]), "reasons": json.loads(r["reasons"]),
            "api_key": r["api_key"], "received_at": r["received_at"]}


def transaction_record(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_id: str) -> dict[str, Any] | None:
    """A stored transaction by id (request field names), or None."""
    fields = request_fields(dataset)
    columns = ", ".join(f"{quote_ident(c)} AS {quote_ident(n)}" for n, (c, _) in fields.items())
    found = fetch_records(conn, f"SELECT {columns} FROM {dataset.table} WHERE transaction_id = ?", [transaction_id])
    return found[0] if found else None


def arrival(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_id: str) -> dict[str, Any] | None:
    """How a transaction arrived through the API (key name, time), or None for imported ones."""
    found = fetch_records(conn, "SELECT api_key, received_at, request_id FROM decisions WHERE dataset_id = ? AND "
                                "transaction_id = ?", [dataset.id, transaction_id])
    return found[0] if found else None


def new_alerts(conn: duckdb.DuckDBPyConnection, dataset: Dataset, since: datetime | None) -> int:
    """Alerts that arrived through the API after `since` (all of them when None)."""
    return int(fetch_one(conn, "SELECT count(*) FROM decisions WHERE dataset_id = ? AND alert AND "
                               "(CAST(? AS TIMESTAMP) IS NULL OR received_at > ?)", [dataset.id, since, since])[0])


def latest_arrival(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> datetime | None:
    return fetch_one(conn, "SELECT max(received_at) FROM decisions WHERE dataset_id = ?", [dataset.id])[0]


