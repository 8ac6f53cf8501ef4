"""Labels: an analyst labels transactions (one or many, from a page or a file), and undoes it.

Labels are append-only (data.cases); each action is one batch with its audit row, and undo
appends the batch to the undone ones, so nothing an analyst wrote is ever lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from application.context import Context, retry_on_conflict
from application.datasets import DatasetRef
from data import cases as store
from data import webhooks
from data.audit import record
from data.errors import Conflict


@dataclass(frozen=True)
class Labelled:
    batch_id: str  # what Undo takes back
    count: int
    label: str | None  # None for a file with several labels
    closed: bool = False


@retry_on_conflict
def label(ctx: Context, dataset: DatasetRef, transaction_ids: Iterable[Any], label: str, *, note: str | None = None,
          close: bool = False) -> Labelled:
    """Label transactions as fraud, legitimate or unsure, as the context's analyst, in one
    undoable action. With `close`, a fraud or legitimate label also closes the cases."""
    analyst = store.check_analyst(ctx.actor)
    label, note = store.check_label(label), store.check_note(note)
    target = ctx.dataset(dataset)
    ids = store.checked_ids(ctx.conn, target, transaction_ids)
    batch = uuid.uuid4().hex
    closes = close and label != "unsure"
    with ctx.unit_of_work() as conn:
        before = store.insert_labels(conn, target, ids, label, analyst, note, batch)
        events = [{"label": label, "note": note, "analyst": analyst, "batch": batch, "closed": closes,
                   **webhooks.capped_ids(ids)}]
        webhooks.enqueue(conn, "label.added", target.id, target.name, events, ctx.clock())
        if closes:
            reason = "confirmed fraud" if label == "fraud" else "false positive"
            store.append_case_events(conn, target, ids, analyst, status="closed", reason=reason)
            webhooks.enqueue(conn, "case.changed", target.id, target.name,
                             [{"status": "closed", "reason": reason, "by": analyst, **webhooks.capped_ids(ids)}],
                             ctx.clock())
        record(conn, analyst, "label", dataset_id=target.id, target=audit_target(ids),
               before={"labels": before} if before else None,
               after={"label": label, "note": note, "batch": batch, "transactions": ids, "closed": closes})
    return Labelled(batch, len(ids), label, closes)


@retry_on_conflict
def label_file(ctx: Context, dataset: DatasetRef, path: str, default_analyst: str | None = None) -> Labelled:
    """Labels from a CSV file (transaction_id, label[, analyst][, note]), every row checked first:
    one bad row rejects the file. Rows without an analyst are the context's (or `default_analyst`)."""
    target = ctx.dataset(dataset)
    rows = store.read_label_file(ctx.conn, target, path, store.check_analyst(default_analyst or ctx.actor))
    batch = uuid.uuid4().hex
    with ctx.unit_of_work() as conn:
        store.insert_label_rows(conn, target, rows, batch)
        webhooks.enqueue(conn, "label.added", target.id, target.name,  # one event per label the file gives
                         [{"label": value, "note": None, "analyst": None, "batch": batch, "closed": False,
                           "file": Path(path).name, **webhooks.capped_ids(group["transaction_id"].astype(str).tolist())}
                          for value, group in rows.groupby("label", sort=True)], ctx.clock())
        record(conn, ctx.actor, "label", dataset_id=target.id, target=f"{len(rows):,} transactions",
               after={"file": Path(path).name, "batch": batch, "labels": rows["label"].value_counts().to_dict(),
                      "analysts": sorted(rows["analyst"].unique())})
    return Labelled(batch, len(rows), None)


@retry_on_conflict
def undo(ctx: Context, batch_id: str) -> int:
    """Undo one labelling action (its labels stay in the history, marked undone); returns its size."""
    analyst = store.check_analyst(ctx.actor)
    action = store.labelling_action(ctx.conn, batch_id)
    if action["undone"]:
        raise Conflict("that labelling action was already undone.", field="batch_id")
    with ctx.unit_of_work() as conn:
        store.mark_undone(conn, batch_id, analyst)
        record(conn, analyst, "undo_labels", dataset_id=action["dataset_id"], target=batch_id,
               after={"labels": action["count"]})
    return action["count"]


def last_action(ctx: Context, dataset: DatasetRef) -> dict[str, Any] | None:
    """The context analyst's latest labelling action still in effect: what Undo would take back."""
    return store.last_action(ctx.conn, ctx.dataset(dataset), ctx.actor) if ctx.actor else None


def audit_target(ids: list[str]) -> str:
    """An audit target: the transaction, or how many."""
    return ids[0] if len(ids) == 1 else f"{len(ids):,} transactions"
