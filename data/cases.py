"""Analyst labels and the case workflow, both append-only.

- A label is a row in `labels` (analyst, time, optional note). The current label of a
  transaction is its latest label outside undone actions (view `current_labels`), so the full
  history stays and nothing an analyst wrote is ever overwritten.
- Every labelling action gets a batch id; undo appends the batch to `label_undos`.
- A case (any transaction; alerts in practice) has a status (open, in review, closed with a
  reason) and an assignee. Each change appends the case's full new state to `case_events`;
  the latest event is current (view `current_cases`), a case without events is open.

Writes only append, so analysts labelling at once never overwrite each other; DuckDB may still
refuse a transaction that conflicts with a concurrent one, so writes retry a few times.
"""

from __future__ import annotations

import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import duckdb
import pandas as pd

from data.audit import record
from data.datasets import Dataset
from data.db import fetch_one, transaction
from data.errors import DataError

LABELS = ("fraud", "legitimate", "unsure")
STATUSES = ("open", "in_review", "closed")
STATUS_TITLES = {"open": "Open", "in_review": "In review", "closed": "Closed"}
CLOSE_REASONS = ("confirmed fraud", "false positive", "duplicate", "not enough information", "other")
MAX_NOTE = 2_000
MAX_NAME = 64
MAX_IDS = 10_000  # one action labels at most this many transactions
KEEP = object()  # "leave the assignee as it is"

T = TypeVar("T")


def check_analyst(name: str | None) -> str:
    """An analyst name as stored: trimmed, printable, at most 64 characters."""
    name = (name or "").strip()
    if not name:
        raise DataError("an analyst name is required.", hint="Enter your name in the sidebar.")
    if len(name) > MAX_NAME or any(unicodedata.category(c).startswith("C") for c in name):
        raise DataError(f"analyst name {name[:MAX_NAME]!r} is not allowed.",
                        hint=f"Use at most {MAX_NAME} printable characters.")
    return name


def _check_note(note: str | None) -> str | None:
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise DataError(f"the note has {len(note):,} characters; at most {MAX_NOTE:,} are kept.")
    return note or None


def _checked_ids(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_ids: Iterable[Any]) -> list[str]:
    """The ids, deduplicated in order, each checked to be a transaction of the dataset."""
    ids = list(dict.fromkeys(str(i) for i in transaction_ids if i is not None))
    if not ids:
        raise DataError("no transactions selected.", hint="Select one or more alerts first.")
    if len(ids) > MAX_IDS:
        raise DataError(f"{len(ids):,} transactions selected; one action takes at most {MAX_IDS:,}.")
    missing = fetch_one(
        conn,
        f"SELECT u.i FROM unnest(CAST(? AS VARCHAR[])) AS u(i) "
        f"WHERE u.i NOT IN (SELECT transaction_id FROM {dataset.table} WHERE transaction_id IS NOT NULL) LIMIT 1",
        [ids],
    )
    if missing:
        raise DataError(f"transaction {missing[0]!r} is not in dataset {dataset.name!r}.")
    return ids


def _retrying(write: Callable[[], T], attempts: int = 6) -> T:
    """Run a write transaction, again after a short pause if DuckDB reports a write conflict."""
    for attempt in range(attempts):
        try:
            return write()
        except duckdb.TransactionException as exc:
            if "conflict" not in str(exc).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Labels


def add_labels(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    transaction_ids: Iterable[Any],
    label: str,
    analyst: str,
    note: str | None = None,
    *,
    close: bool = False,
) -> str:
    """Label transactions in one action; returns the action's batch id (for undo).

    With `close`, a fraud or legitimate label also closes the cases, in the same transaction.
    """
    if label not in LABELS:
        raise DataError(f"label must be one of {', '.join(LABELS)}, not {label!r}.")
    analyst, note = check_analyst(analyst), _check_note(note)
    ids = _checked_ids(conn, dataset, transaction_ids)
    batch = uuid.uuid4().hex

    def write() -> str:
        with transaction(conn):
            before = dict(conn.execute(
                "SELECT transaction_id, label FROM current_labels WHERE dataset_id = ? AND transaction_id IN "
                "(SELECT unnest(CAST(? AS VARCHAR[])))", [dataset.id, ids]).fetchall())
            conn.execute(
                "INSERT INTO labels (dataset_id, transaction_id, label, analyst, note, created_at, id, batch_id) "
                "SELECT ?, u.i, ?, ?, ?, current_timestamp::TIMESTAMP, nextval('label_ids'), ? "
                "FROM unnest(CAST(? AS VARCHAR[])) AS u(i)",
                [dataset.id, label, analyst, note, batch, ids],
            )
            if close and label != "unsure":
                reason = "confirmed fraud" if label == "fraud" else "false positive"
                _append_case_events(conn, dataset, ids, analyst, status="closed", reason=reason)
            record(conn, analyst, "label", dataset_id=dataset.id, target=_target(ids),
                   before={"labels": before} if before else None,
                   after={"label": label, "note": note, "batch": batch, "transactions": ids, "closed": close})
        return batch

    return _retrying(write)


def _target(ids: list[str]) -> str:
    """An audit target: the transaction, or how many."""
    return ids[0] if len(ids) == 1 else f"{len(ids):,} transactions"


def undo_labels(conn: duckdb.DuckDBPyConnection, batch_id: str, analyst: str) -> int:
    """Undo one labelling action (the labels stay in the history, marked undone); returns its size."""
    analyst = check_analyst(analyst)
    count = fetch_one(conn, "SELECT count(*) FROM labels WHERE batch_id = ?", [batch_id])[0]
    if not count:
        raise DataError("there is no such labelling action to undo.")
    if fetch_one(conn, "SELECT 1 FROM label_undos WHERE batch_id = ?", [batch_id]):
        raise DataError("that labelling action was already undone.")

    def write() -> int:
        with transaction(conn):
            conn.execute("INSERT INTO label_undos VALUES (?, ?, current_timestamp::TIMESTAMP)", [batch_id, analyst])
            dataset_id = fetch_one(conn, "SELECT any_value(dataset_id) FROM labels WHERE batch_id = ?", [batch_id])[0]
            record(conn, analyst, "undo_labels", dataset_id=dataset_id, target=batch_id, after={"labels": int(count)})
        return int(count)

    return _retrying(write)


def current_labels(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_ids: Iterable[Any]) -> dict[str, str]:
    """The current label of each of the given transactions that has one."""
    rows = conn.execute(
        "SELECT transaction_id, label FROM current_labels WHERE dataset_id = ? "
        "AND transaction_id IN (SELECT unnest(CAST(? AS VARCHAR[])))",
        [dataset.id, [str(i) for i in transaction_ids]],
    ).fetchall()
    return dict(rows)


def label_history(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_id: str) -> pd.DataFrame:
    """Every label a transaction received, newest first, with whether its action was undone."""
    return conn.execute(
        """SELECT l.created_at AS "when", l.label, l.analyst, l.note,
                  u.batch_id IS NOT NULL AS undone, u.analyst AS undone_by
           FROM labels l LEFT JOIN label_undos u USING (batch_id)
           WHERE l.dataset_id = ? AND l.transaction_id = ?
           ORDER BY coalesce(l.id, 0) DESC, l.created_at DESC""",
        [dataset.id, str(transaction_id)],
    ).df()


def last_action(conn: duckdb.DuckDBPyConnection, dataset: Dataset, analyst: str) -> dict[str, Any] | None:
    """The analyst's latest labelling action that is not undone: what Undo would take back."""
    row = fetch_one(
        conn,
        """SELECT batch_id, any_value(label), count(*), max(created_at) FROM labels
           WHERE dataset_id = ? AND analyst = ? AND batch_id IS NOT NULL
             AND batch_id NOT IN (SELECT batch_id FROM label_undos)
           GROUP BY batch_id ORDER BY max(id) DESC LIMIT 1""",
        [dataset.id, analyst],
    )
    if row is None:
        return None
    return {"batch_id": row[0], "label": row[1], "count": int(row[2]), "at": row[3]}


# ---------------------------------------------------------------------------------------------
# Case workflow


def _append_case_events(conn: duckdb.DuckDBPyConnection, dataset: Dataset, ids: list[str], actor: str, *,
                        status: str | None = None, assignee: Any = KEEP, reason: str | None = None) -> None:
    """Append each case's new state, computed from its current one in the same statement."""
    change_assignee = assignee is not KEEP
    conn.execute(
        """INSERT INTO case_events (id, dataset_id, transaction_id, status, assignee, reason, actor, created_at)
           SELECT nextval('case_event_ids'), ?, u.i, s.status,
                  CASE WHEN ? THEN ? ELSE c.assignee END,
                  CASE WHEN s.status = 'closed' THEN coalesce(?, c.reason) END,
                  ?, current_timestamp::TIMESTAMP
           FROM unnest(CAST(? AS VARCHAR[])) AS u(i)
           LEFT JOIN (SELECT * FROM current_cases WHERE dataset_id = ?) c ON c.transaction_id = u.i
           CROSS JOIN LATERAL (SELECT coalesce(?, c.status, 'open') AS status) s""",
        [dataset.id, change_assignee, None if not change_assignee else assignee, reason, actor, ids, dataset.id, status],
    )


def update_cases(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    transaction_ids: Iterable[Any],
    actor: str,
    *,
    status: str | None = None,
    assignee: Any = KEEP,
    reason: str | None = None,
) -> int:
    """Change the status and/or assignee of cases; closing needs a reason. Returns the case count."""
    actor = check_analyst(actor)
    if status is not None and status not in STATUSES:
        raise DataError(f"status must be one of {', '.join(STATUSES)}, not {status!r}.")
    if status == "closed" and not (reason or "").strip():
        raise DataError("closing a case needs a reason.", hint=f"For example: {', '.join(CLOSE_REASONS)}.")
    if assignee is not KEEP and assignee is not None:
        assignee = check_analyst(assignee)
    reason = (reason or "").strip()[:200] or None
    ids = _checked_ids(conn, dataset, transaction_ids)

    def write() -> int:
        with transaction(conn):
            _append_case_events(conn, dataset, ids, actor, status=status, assignee=assignee, reason=reason)
            after = {"transactions": ids, **({"status": status} if status else {}), **({"reason": reason} if reason else {}),
                     **({"assignee": assignee} if assignee is not KEEP else {})}
            record(conn, actor, "case", dataset_id=dataset.id, target=_target(ids), after=after)
        return len(ids)

    return _retrying(write)


def take_cases(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_ids: Iterable[Any], analyst: str) -> int:
    """An analyst takes cases: assigned to them and in review."""
    return update_cases(conn, dataset, transaction_ids, analyst, status="in_review", assignee=analyst)


def case_state(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_id: str) -> dict[str, Any]:
    """A case's current status, assignee and closing reason (open and unassigned if never touched)."""
    row = fetch_one(conn, "SELECT status, assignee, reason, actor, updated_at FROM current_cases "
                    "WHERE dataset_id = ? AND transaction_id = ?", [dataset.id, str(transaction_id)])
    if row is None:
        return {"status": "open", "assignee": None, "reason": None, "actor": None, "updated_at": None}
    return dict(zip(("status", "assignee", "reason", "actor", "updated_at"), row, strict=True))


def case_history(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_id: str) -> pd.DataFrame:
    return conn.execute(
        """SELECT created_at AS "when", status, assignee, reason, actor AS "by" FROM case_events
           WHERE dataset_id = ? AND transaction_id = ? ORDER BY id DESC""",
        [dataset.id, str(transaction_id)],
    ).df()


def analysts(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> list[str]:
    """Everyone who has labelled or handled a case in the dataset (for the assignee picker)."""
    rows = conn.execute(
        "SELECT analyst FROM labels WHERE dataset_id = ? UNION SELECT actor FROM case_events WHERE dataset_id = ? "
        "UNION SELECT assignee FROM case_events WHERE dataset_id = ? AND assignee IS NOT NULL ORDER BY 1",
        [dataset.id, dataset.id, dataset.id],
    ).fetchall()
    return [r[0] for r in rows]


def labelled_cases(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int | None = None) -> pd.DataFrame:
    """Every transaction with a current label: the transaction, its label, case state and score."""
    shown = [c for c in ("customer_id", "merchant_id", "merchant_name", "city", "payment_method", "channel")
             if dataset.has_column(c)]
    extra_sql = "".join(f", t.{c}" for c in shown)
    return conn.execute(
        f"""SELECT l.transaction_id, t.ts, t.amount{extra_sql},
                   l.label, l.analyst, l.note, l.labelled_at,
                   coalesce(c.status, 'open') AS status, c.assignee, c.reason AS close_reason, s.score
            FROM current_labels l
            JOIN {dataset.table} t ON t.transaction_id = l.transaction_id
            LEFT JOIN current_cases c ON c.dataset_id = l.dataset_id AND c.transaction_id = l.transaction_id
            LEFT JOIN scores s ON s.run_id = ? AND s.tx_row = t.tx_row
            WHERE l.dataset_id = ?
            ORDER BY l.labelled_at DESC""",
        [run_id, dataset.id],
    ).df()


# ---------------------------------------------------------------------------------------------
# Labels from a file (`centinela label`)


def _rows_text(rows: pd.Series) -> str:
    shown = ", ".join(str(r) for r in rows[:5])
    return f"{len(rows):,} such row{'s' if len(rows) != 1 else ''} in all; first rows: {shown}"


def import_labels(conn: duckdb.DuckDBPyConnection, dataset: Dataset, path: str, analyst: str) -> tuple[str, int]:
    """Labels from a CSV file with columns transaction_id, label and optionally analyst and note,
    as one undoable action; every row is checked first, and one bad row rejects the file.

    Rows are numbered as a spreadsheet shows them (the header is row 1). Returns (batch id, count).
    """
    from pathlib import Path

    name = Path(path).name
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except FileNotFoundError:
        raise DataError("no such file.", file=name) from None
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty.", file=name) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"not a readable UTF-8 CSV file ({str(exc).splitlines()[0]}).", file=name) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("transaction_id", "label") if c not in frame.columns]
    if missing:
        raise DataError(f"no {missing[0]!r} column.", file=name,
                        hint="The columns are transaction_id, label and optionally analyst and note.")
    if frame.empty:
        raise DataError("the file has a header but no labels.", file=name)
    row_numbers = pd.Series(range(2, len(frame) + 2), index=frame.index)
    ids = frame["transaction_id"].str.strip()
    labels = frame["label"].str.strip().str.lower()
    analysts_ = frame["analyst"].str.strip() if "analyst" in frame.columns else pd.Series("", index=frame.index)
    analysts_ = analysts_.where(analysts_ != "", analyst)
    notes = frame["note"].str.strip() if "note" in frame.columns else pd.Series("", index=frame.index)

    def reject(mask: pd.Series, column: str, problem: str, hint: str | None = None) -> None:
        if mask.any():
            first = row_numbers[mask].iloc[0]
            raise DataError(f"{problem} ({_rows_text(row_numbers[mask])}).", file=name, row=int(first), column=column,
                            hint=hint)

    reject(ids == "", "transaction_id", "the transaction id is empty")
    bad = ~labels.isin(LABELS)
    if bad.any():
        reject(bad, "label", f"{frame['label'][bad].iloc[0]!r} is not a label", hint=f"Use one of: {', '.join(LABELS)}.")
    twice = ids.duplicated(keep=False)
    if twice.any():
        reject(twice, "transaction_id", f"transaction {ids[twice].iloc[0]!r} is labelled twice",
               hint="Keep one row per transaction.")
    reject(notes.str.len() > MAX_NOTE, "note", f"a note is longer than {MAX_NOTE:,} characters")
    for value in analysts_.unique():
        try:
            check_analyst(value)
        except DataError as exc:
            reject(analysts_ == value, "analyst", exc.problem)
    known = {r[0] for r in conn.execute(
        f"SELECT transaction_id FROM {dataset.table} WHERE transaction_id IN (SELECT unnest(CAST(? AS VARCHAR[])))",
        [list(ids)]).fetchall()}
    unknown = ~ids.isin(known)
    if unknown.any():
        reject(unknown, "transaction_id", f"transaction {ids[unknown].iloc[0]!r} is not in dataset {dataset.name!r}")

    batch = uuid.uuid4().hex
    rows = pd.DataFrame({"transaction_id": ids, "label": labels, "analyst": analysts_,
                         "note": notes.where(notes != "", None), "line": row_numbers})

    def write() -> tuple[str, int]:
        conn.register("_new_labels", rows)
        try:
            with transaction(conn):
                conn.execute(
                    "INSERT INTO labels (dataset_id, transaction_id, label, analyst, note, created_at, id, batch_id) "
                    "SELECT ?, transaction_id, label, analyst, note, current_timestamp::TIMESTAMP, nextval('label_ids'), ? "
                    "FROM _new_labels ORDER BY line",
                    [dataset.id, batch],
                )
        finally:
            conn.unregister("_new_labels")
        return batch, len(rows)

    return _retrying(write)
