"""Analyst labels and the case workflow, both append-only.

- A label is a row in `labels` (analyst, time, optional note). The current label of a
  transaction is its latest label outside undone actions (view `current_labels`), so the full
  history stays and nothing an analyst wrote is ever overwritten.
- Every labelling action gets a batch id; undo appends the batch to `label_undos`.
- A case (any transaction; alerts in practice) has a status (open, in review, closed with a
  reason) and an assignee. Each change appends the case's full new state to `case_events`;
  the latest event is current (view `current_cases`), a case without events is open.

Writes only append, so analysts labelling at once never overwrite each other. These are storage
functions: they run inside the caller's transaction and write no audit row; the actions that
label, undo and change cases (`application.labels`, `application.cases`) do both.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

import duckdb
import pandas as pd

from data.datasets import Dataset
from data.db import fetch_one
from data.errors import InvalidInput, NotFound

LABELS = ("fraud", "legitimate", "unsure")
STATUSES = ("open", "in_review", "closed")
STATUS_TITLES = {"open": "Open", "in_review": "In review", "closed": "Closed"}
CLOSE_REASONS = ("confirmed fraud", "false positive", "duplicate", "not enough information", "other")
MAX_NOTE = 2_000
MAX_NAME = 64
MAX_IDS = 10_000  # one action labels at most this many transactions
KEEP = object()  # "leave the assignee as it is"


def check_analyst(name: str | None) -> str:
    """An analyst name as stored: trimmed, printable, at most 64 characters."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("an analyst name is required.", field="analyst", hint="Sign in first.")
    if len(name) > MAX_NAME or any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidInput(f"analyst name {name[:MAX_NAME]!r} is not allowed.", field="analyst",
                           hint=f"Use at most {MAX_NAME} printable characters.")
    return name


def check_note(note: str | None) -> str | None:
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"the note has {len(note):,} characters; at most {MAX_NOTE:,} are kept.", field="note")
    return note or None


def check_label(label: str) -> str:
    if label not in LABELS:
        raise InvalidInput(f"label must be one of {', '.join(LABELS)}, not {label!r}.", field="label")
    return label


def checked_ids(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_ids: Iterable[Any]) -> list[str]:
    """The ids, deduplicated in order, each checked to be a transaction of the dataset."""
    ids = list(dict.fromkeys(str(i) for i in transaction_ids if i is not None))
    if not ids:
        raise InvalidInput("no transactions selected.", field="transaction_ids", hint="Select one or more alerts first.")
    if len(ids) > MAX_IDS:
        raise InvalidInput(f"{len(ids):,} transactions selected; one action takes at most {MAX_IDS:,}.",
                           field="transaction_ids")
    missing = fetch_one(
        conn,
        f"SELECT u.i FROM unnest(CAST(? AS VARCHAR[])) AS u(i) "
        f"WHERE u.i NOT IN (SELECT transaction_id FROM {dataset.table} WHERE transaction_id IS NOT NULL) LIMIT 1",
        [ids],
    )
    if missing:
        raise NotFound(f"transaction {missing[0]!r} is not in dataset {dataset.name!r}.", field="transaction_ids")
    return ids


# ---------------------------------------------------------------------------------------------
# Labels


def insert_labels(conn: duckdb.DuckDBPyConnection, dataset: Dataset, ids: list[str], label: str, analyst: str,
                  note: str | None, batch: str) -> dict[str, str]:
    """Append one label per transaction as action `batch`; returns the labels they replace."""
    before = current_labels(conn, dataset, ids)
    conn.execute(
        "INSERT INTO labels (dataset_id, transaction_id, label, analyst, note, created_at, id, batch_id) "
        "SELECT ?, u.i, ?, ?, ?, current_timestamp::TIMESTAMP, nextval('label_ids'), ? "
        "FROM unnest(CAST(? AS VARCHAR[])) AS u(i)",
        [dataset.id, label, analyst, note, batch, ids],
    )
    return before


def insert_label_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, rows: pd.DataFrame, batch: str) -> None:
    """Append labels from a checked frame (transaction_id, label, analyst, note, line) as action `batch`."""
    conn.register("_new_labels", rows)
    try:
        conn.execute(
            "INSERT INTO labels (dataset_id, transaction_id, label, analyst, note, created_at, id, batch_id) "
            "SELECT ?, transaction_id, label, analyst, note, current_timestamp::TIMESTAMP, nextval('label_ids'), ? "
            "FROM _new_labels ORDER BY line",
            [dataset.id, batch],
        )
    finally:
        conn.unregister("_new_labels")


def labelling_action(conn: duckdb.DuckDBPyConnection, batch_id: str) -> dict[str, Any]:
    """A labelling action by its batch id: dataset, size and whether it was undone."""
    row = fetch_one(conn, "SELECT any_value(dataset_id), count(*), bool_or(batch_id IN (SELECT batch_id FROM label_undos)) "
                    "FROM labels WHERE batch_id = ?", [str(batch_id)])
    if not row or not row[1]:
        raise NotFound("there is no such labelling action to undo.", field="batch_id")
    return {"dataset_id": row[0], "count": int(row[1]), "undone": bool(row[2])}


def mark_undone(conn: duckdb.DuckDBPyConnection, batch_id: str, analyst: str) -> None:
    """Record that a labelling action was undone (its labels stay in the history)."""
    conn.execute("INSERT INTO label_undos VALUES (?, ?, current_timestamp::TIMESTAMP)", [batch_id, analyst])


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


def append_case_events(conn: duckdb.DuckDBPyConnection, dataset: Dataset, ids: list[str], actor: str, *,
                       status: str | None = None, assignee: Any = KEEP, reason: str | None = None) -> None:
    """Append each case's new state, computed from its current one in the same statement."""
    change_assignee = assignee is not KEEP
    conn.execute(
        """INSERT INTO case_events (id, dataset_id, transaction_id, status, assignee, reason, actor, created_at)
           SELECT nextval('case_event_ids'), $dataset, u.i, s.status,
                  CASE WHEN $change_assignee THEN $assignee ELSE c.assignee END,
                  CASE WHEN s.status = 'closed' THEN coalesce($reason, c.reason) END,
                  $actor, current_timestamp::TIMESTAMP
           FROM unnest(CAST($ids AS VARCHAR[])) AS u(i)
           LEFT JOIN (SELECT * FROM current_cases WHERE dataset_id = $dataset) c ON c.transaction_id = u.i
           CROSS JOIN LATERAL (SELECT coalesce($status, c.status, 'open') AS status) s""",
        {"dataset": dataset.id, "change_assignee": change_assignee, "assignee": assignee if change_assignee else None,
         "reason": reason, "actor": actor, "ids": ids, "status": status},
    )


def check_case_change(status: str | None, assignee: Any, reason: str | None) -> tuple[str | None, Any, str | None]:
    """A case change's status, assignee and reason, checked: closing needs a reason."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}.", field="status")
    if status == "closed" and not (reason or "").strip():
        raise InvalidInput("closing a case needs a reason.", field="reason", hint=f"For example: {', '.join(CLOSE_REASONS)}.")
    if assignee is not KEEP and assignee is not None:
        assignee = check_analyst(assignee)
    return status, assignee, (reason or "").strip()[:200] or None


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
        "SELECT analyst FROM labels WHERE dataset_id = $dataset UNION SELECT actor FROM case_events WHERE dataset_id = $dataset "
        "UNION SELECT assignee FROM case_events WHERE dataset_id = $dataset AND assignee IS NOT NULL ORDER BY 1",
        {"dataset": dataset.id},
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


def rows_text(rows: pd.Series) -> str:
    shown = ", ".join(str(r) for r in rows[:5])
    return f"{len(rows):,} such row{'s' if len(rows) != 1 else ''} in all; first rows: {shown}"


def read_small_csv(path: str) -> tuple[str, pd.DataFrame]:
    """A small UTF-8 CSV file of text cells (labels, list entries), its header trimmed and lower-cased;
    the file's name for messages. Unreadable files are refused naming the file."""
    from pathlib import Path

    name = Path(path).name
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    except FileNotFoundError:
        raise NotFound("no such file.", file=name) from None
    except pd.errors.EmptyDataError:
        raise InvalidInput("the file is empty.", file=name) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"not a readable UTF-8 CSV file ({str(exc).splitlines()[0]}).", file=name) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return name, frame


def read_label_file(conn: duckdb.DuckDBPyConnection, dataset: Dataset, path: str, analyst: str) -> pd.DataFrame:
    """Labels from a CSV file with columns transaction_id, label and optionally analyst and note,
    every row checked first: one bad row rejects the file, naming its row and column.

    Rows are numbered as a spreadsheet shows them (the header is row 1). Returns the checked rows
    (transaction_id, label, analyst, note, line) for `insert_label_rows`.
    """
    name, frame = read_small_csv(path)
    missing = [c for c in ("transaction_id", "label") if c not in frame.columns]
    if missing:
        raise InvalidInput(f"no {missing[0]!r} column.", file=name,
                           hint="The columns are transaction_id, label and optionally analyst and note.")
    if frame.empty:
        raise InvalidInput("the file has a header but no labels.", file=name)
    row_numbers = pd.Series(range(2, len(frame) + 2), index=frame.index)
    ids = frame["transaction_id"].str.strip()
    labels = frame["label"].str.strip().str.lower()
    analysts_ = frame["analyst"].str.strip() if "analyst" in frame.columns else pd.Series("", index=frame.index)
    analysts_ = analysts_.where(analysts_ != "", analyst)
    notes = frame["note"].str.strip() if "note" in frame.columns else pd.Series("", index=frame.index)

    def reject(mask: pd.Series, column: str, problem: str, hint: str | None = None, kind: type = InvalidInput) -> None:
        if mask.any():
            first = row_numbers[mask].iloc[0]
            raise kind(f"{problem} ({rows_text(row_numbers[mask])}).", file=name, row=int(first), column=column,
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
        except InvalidInput as exc:
            reject(analysts_ == value, "analyst", exc.problem)
    known = {r[0] for r in conn.execute(
        f"SELECT transaction_id FROM {dataset.table} WHERE transaction_id IN (SELECT unnest(CAST(? AS VARCHAR[])))",
        [list(ids)]).fetchall()}
    unknown = ~ids.isin(known)
    if unknown.any():
        reject(unknown, "transaction_id", f"transaction {ids[unknown].iloc[0]!r} is not in dataset {dataset.name!r}",
               kind=NotFound)
    return pd.DataFrame({"transaction_id": ids, "label": labels, "analyst": analysts_,
                         "note": notes.where(notes != "", None), "line": row_numbers})
