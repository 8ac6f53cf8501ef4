"""Block and allow lists: named sets of values of one of a dataset's columns (a customer, a
merchant, a device, a city, or any other stored column), each entry with a reason, who added it
and an optional expiry.

A block list raises an alert on every transaction whose column holds a listed value; an allow
list suppresses alerts on them; rules test membership with `column IN LIST name`. Entries are
append-only events (add, remove), so each entry's history is kept; an entry counts from when it
is added until it is removed or expires. Storage only: the actions with their audit rows are in
`application.lists`.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from data.cases import read_small_csv, rows_text
from data.datasets import Dataset
from data.db import checked_ident, fetch_one, fetch_records
from data.errors import Conflict, InvalidInput, NotFound
from data.rule_grammar import NAME

KINDS = ("block", "allow")
MAX_VALUE, MAX_REASON, MAX_ENTRIES = 256, 500, 100_000
# Columns a list cannot be about: bookkeeping and the answers (a list over the label would be a label).
NOT_KEYS = ("tx_row", "is_fraud", "fraud_scenario")
# The lists a case view's one-click buttons add to, created on first use.
DEFAULT_LISTS = {("block", "customer_id"): "blocked_customers", ("allow", "customer_id"): "allowed_customers",
                 ("block", "merchant_id"): "blocked_merchants", ("allow", "merchant_id"): "allowed_merchants",
                 ("block", "device_id"): "blocked_devices"}

# Entries in effect at $now: what every query that evaluates lists or rules reads, as `live_lists`.
LIVE_LISTS_SQL = ("SELECT list_id, value FROM current_list_entries "
                  "WHERE expires_at IS NULL OR expires_at > CAST($now AS TIMESTAMP)")


@dataclass(frozen=True)
class RuleList:
    id: int
    dataset_id: int
    name: str
    kind: str
    key_column: str
    description: str | None
    created_at: datetime
    created_by: str
    entries: int = 0  # in effect now

    @property
    def column_sql(self) -> str:
        """The key column of the transaction table `t`, as text, for membership tests."""
        return f"CAST(t.{checked_ident(self.key_column)} AS VARCHAR)"


def check_list_name(name: str) -> str:
    cleaned = (name or "").strip().lower()
    if not NAME.match(cleaned):
        raise InvalidInput(f"list name {name!r} is not allowed.", field="name",
                           hint="Use letters, digits and _ (up to 63), starting with a letter, e.g. vip_customers; "
                                "rules name lists this way (customer_id IN LIST vip_customers).")
    return cleaned


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"a list is 'block' or 'allow', not {kind!r}.", field="kind")
    return kind


def check_key(dataset: Dataset, column: str) -> str:
    """A stored column of the dataset a list can be about (a role name works for its column)."""
    name = dataset.column_for(column) or column
    if not dataset.has_column(name) or name in NOT_KEYS or name.startswith("_"):
        choices = [c.name for c in dataset.columns if c.name not in NOT_KEYS and not c.name.startswith("_")]
        raise InvalidInput(f"dataset {dataset.name!r} has no column {column!r} a list can be about.", field="key",
                           hint=f"Choose one of: {', '.join(choices)}.")
    return name


def check_value(value: Any, field: str = "value") -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise InvalidInput("the value is empty.", field=field)
    problem = _value_problem(text)
    if problem:
        raise InvalidInput(problem, field=field)
    return text


def _value_problem(text: str) -> str | None:
    if len(text) > MAX_VALUE:
        return f"a value is longer than {MAX_VALUE} characters"
    if any(unicodedata.category(c).startswith("C") for c in text):
        return "a value holds control characters"
    return None


def check_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("say why the entry is on the list (a reason is required).", field="reason")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"the reason has {len(text):,} characters; at most {MAX_REASON} are kept.", field="reason")
    return text


def _from_record(row: dict[str, Any]) -> RuleList:
    return RuleList(**row)


_COLUMNS = """l.id, l.dataset_id, l.name, l.kind, l.key_column, l.description, l.created_at, l.created_by,
              (SELECT count(*) FROM current_list_entries e WHERE e.list_id = l.id
               AND (e.expires_at IS NULL OR e.expires_at > CAST($now AS TIMESTAMP))) AS entries"""


def lists_of(conn: duckdb.DuckDBPyConnection, dataset: Dataset, now: datetime) -> list[RuleList]:
    return [_from_record(r) for r in fetch_records(
        conn, f"SELECT {_COLUMNS} FROM lists l WHERE l.dataset_id = $dataset ORDER BY l.name",
        {"dataset": dataset.id, "now": now})]


def get_list(conn: duckdb.DuckDBPyConnection, dataset: Dataset, name: str, now: datetime) -> RuleList:
    found = fetch_records(conn, f"SELECT {_COLUMNS} FROM lists l WHERE l.dataset_id = $dataset AND l.name = $name",
                          {"dataset": dataset.id, "name": str(name).strip().lower(), "now": now})
    if not found:
        names = [x.name for x in lists_of(conn, dataset, now)]
        raise NotFound(f"dataset {dataset.name!r} has no list named {name!r}.", field="list",
                       hint=f"Lists: {', '.join(names)}." if names else "Create one first (centinela lists create).")
    return _from_record(found[0])


def insert_list(conn: duckdb.DuckDBPyConnection, dataset: Dataset, name: str, kind: str, key_column: str,
                description: str | None, actor: str, now: datetime) -> RuleList:
    if fetch_one(conn, "SELECT 1 FROM lists WHERE dataset_id = ? AND name = ?", [dataset.id, name]):
        raise Conflict(f"dataset {dataset.name!r} already has a list named {name!r}.", field="name")
    list_id = fetch_one(conn, "SELECT nextval('list_ids')")[0]
    conn.execute("INSERT INTO lists VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 [list_id, dataset.id, name, kind, key_column, (description or "").strip()[:MAX_REASON] or None, now,
                  actor])
    return get_list(conn, dataset, name, now)


def current_entries(conn: duckdb.DuckDBPyConnection, rule_list: RuleList, now: datetime,
                    include_expired: bool = False) -> pd.DataFrame:
    """The list's entries (value, reason, added_by, added_at, expires_at, expired), newest first."""
    return conn.execute(
        """SELECT value, reason, added_by, added_at, expires_at,
                  coalesce(expires_at <= CAST($now AS TIMESTAMP), false) AS expired
           FROM current_list_entries WHERE list_id = $list
             AND ($all OR expires_at IS NULL OR expires_at > CAST($now AS TIMESTAMP))
           ORDER BY added_at DESC, value""",
        {"list": rule_list.id, "now": now, "all": bool(include_expired)}).df()


def entry_state(conn: duckdb.DuckDBPyConnection, rule_list: RuleList, value: str) -> dict[str, Any] | None:
    found = fetch_records(conn, "SELECT value, reason, expires_at, added_by FROM current_list_entries "
                          "WHERE list_id = ? AND value = ?", [rule_list.id, value])
    return found[0] if found else None


def append_entries(conn: duckdb.DuckDBPyConnection, rule_list: RuleList, rows: pd.DataFrame, action: str,
                   actor: str, now: datetime) -> None:
    """Append add or remove events for rows (value, reason, expires_at)."""
    frame = pd.DataFrame({"value": rows["value"].astype(str),
                          "reason": rows.get("reason", None),
                          "expires_at": pd.to_datetime(rows["expires_at"]) if "expires_at" in rows else pd.NaT})
    conn.register("_centinela_entries", frame)
    try:
        conn.execute(
            """INSERT INTO list_entry_events
               SELECT nextval('list_entry_ids'), $list, value, $action, reason, CAST(expires_at AS TIMESTAMP), $actor,
                      CAST($now AS TIMESTAMP)
               FROM _centinela_entries""",
            {"list": rule_list.id, "action": action, "actor": actor, "now": now})
    finally:
        conn.unregister("_centinela_entries")


def entry_history(conn: duckdb.DuckDBPyConnection, rule_list: RuleList, value: str | None = None) -> pd.DataFrame:
    """Every add and remove of the list's entries (or of one value), newest first."""
    return conn.execute(
        """SELECT value, action, reason, expires_at, actor, created_at FROM list_entry_events
           WHERE list_id = $list AND (CAST($value AS VARCHAR) IS NULL OR value = $value) ORDER BY id DESC""",
        {"list": rule_list.id, "value": value}).df()


def matching_entries(conn: duckdb.DuckDBPyConnection, dataset: Dataset, tx_row: int, now: datetime) -> pd.DataFrame:
    """The list entries in effect that one transaction matches: list, kind, column, value, reason, who, expiry."""
    lists = lists_of(conn, dataset, now)
    if not lists:
        return pd.DataFrame(columns=["list", "kind", "column", "value", "reason", "added_by", "expires_at"])
    parts = [f"SELECT {int(rl.id)} AS list_id, {rl.column_sql} AS value FROM {dataset.table} t WHERE t.tx_row = $row"
             for rl in lists]
    return conn.execute(
        f"""SELECT l.name AS list, l.kind, l.key_column AS column, e.value, e.reason, e.added_by, e.expires_at
            FROM ({' UNION ALL '.join(parts)}) x
            JOIN current_list_entries e ON e.list_id = x.list_id AND e.value = x.value
            JOIN lists l ON l.id = e.list_id
            WHERE e.expires_at IS NULL OR e.expires_at > CAST($now AS TIMESTAMP)
            ORDER BY l.name""",
        {"row": int(tx_row), "now": now}).df()


def read_entry_file(path: str, now: datetime) -> pd.DataFrame:
    """Entries from a CSV file (value, reason, optional expires_at), every row checked first: one bad
    row rejects the file, naming its row (as a spreadsheet numbers them) and column."""
    name, frame = read_small_csv(path)
    for column in ("value", "reason"):
        if column not in frame.columns:
            raise InvalidInput(f"no {column!r} column.", file=name,
                               hint="The columns are value, reason and optionally expires_at (YYYY-MM-DD).")
    if frame.empty:
        raise InvalidInput("the file has a header but no entries.", file=name)
    if len(frame) > MAX_ENTRIES:
        raise InvalidInput(f"the file has {len(frame):,} entries; one import takes at most {MAX_ENTRIES:,}.", file=name)
    rows = pd.Series(range(2, len(frame) + 2), index=frame.index)
    values, reasons = frame["value"].str.strip(), frame["reason"].str.strip()
    expiry_text = frame["expires_at"].str.strip() if "expires_at" in frame.columns else pd.Series("", index=frame.index)

    def reject(mask: pd.Series, column: str, problem: str, hint: str | None = None) -> None:
        if mask.any():
            raise InvalidInput(f"{problem} ({rows_text(rows[mask])}).", file=name, row=int(rows[mask].iloc[0]),
                               column=column, hint=hint)

    reject(values == "", "value", "the value is empty")
    problems = values.map(_value_problem)
    reject(problems.notna(), "value", str(problems.dropna().iloc[0]) if problems.notna().any() else "")
    twice = values.duplicated(keep=False)
    reject(twice, "value", f"{values[twice].iloc[0] if twice.any() else ''!r} is listed twice", "Keep one row per value.")
    reject(reasons == "", "reason", "the reason is empty", "Say why each entry is on the list.")
    reject(reasons.str.len() > MAX_REASON, "reason", f"a reason is longer than {MAX_REASON} characters")
    expires = pd.to_datetime(expiry_text.where(expiry_text != "", None), errors="coerce", format="ISO8601")
    reject((expiry_text != "") & expires.isna(), "expires_at", "not a date (YYYY-MM-DD or YYYY-MM-DD HH:MM)")
    reject(expires.notna() & (expires <= pd.Timestamp(now)), "expires_at", "the expiry is in the past")
    return pd.DataFrame({"value": values, "reason": reasons, "expires_at": expires, "line": rows})
