"""Block and allow lists: create one, add an entry (from the case view in one click), import a
CSV of entries (all or nothing), remove one; and read lists, entries and each entry's history.

Analysts, data scientists and admins change lists; managers read them. Each change is one unit
of work with its audit row; entries are append-only events, so nothing is overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from application.context import Context
from application.datasets import DatasetRef
from application.rules import EDITORS, require_role
from data import lists as store
from data.alerts import transaction_detail
from data.audit import record
from data.datasets import Dataset
from data.errors import Conflict, InvalidInput, NotFound
from data.lists import RuleList


def create(ctx: Context, dataset: DatasetRef, name: str, kind: str, key: str, description: str | None = None) -> RuleList:
    """A new, empty list of values of one of the dataset's columns."""
    require_role(ctx, EDITORS, "create lists")
    target = ctx.dataset(dataset)
    name, kind, key = store.check_list_name(name), store.check_kind(kind), store.check_key(target, key)
    with ctx.unit_of_work() as conn:
        created = store.insert_list(conn, target, name, kind, key, description, ctx.actor, ctx.clock())
        record(conn, ctx.actor, "list_create", dataset_id=target.id, target=f"list {name}",
               after={"kind": kind, "key": key, "description": created.description})
    return created


def _expiry(ctx: Context, expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at <= ctx.clock():
        raise InvalidInput(f"the expiry {expires_at:%Y-%m-%d %H:%M} is in the past.", field="expires_at")
    return expires_at


def add_entry(ctx: Context, dataset: DatasetRef, list_name: str, value: Any, reason: str,
              expires_at: datetime | None = None) -> RuleList:
    """Put a value on a list (again, if it was removed or expired), with why and until when."""
    require_role(ctx, EDITORS, "add list entries")
    target = ctx.dataset(dataset)
    rule_list = store.get_list(ctx.conn, target, list_name, ctx.clock())
    return _add(ctx, target, rule_list, store.check_value(value), store.check_reason(reason), _expiry(ctx, expires_at))


def _add(ctx: Context, target: Dataset, rule_list: RuleList, value: str, reason: str, expires_at: datetime | None,
         created: bool = False) -> RuleList:
    before = store.entry_state(ctx.conn, rule_list, value)
    now = ctx.clock()
    if before and (before["expires_at"] is None or before["expires_at"] > now) and before["reason"] == reason \
            and before["expires_at"] == expires_at:
        raise Conflict(f"{value!r} is already on list {rule_list.name!r} for that reason.", field="value")
    with ctx.unit_of_work() as conn:
        if created:
            rule_list = store.insert_list(conn, target, rule_list.name, rule_list.kind, rule_list.key_column,
                                          rule_list.description, ctx.actor, now)
        store.append_entries(conn, rule_list, pd.DataFrame({"value": [value], "reason": [reason],
                                                            "expires_at": [expires_at]}), "add", ctx.actor, now)
        record(conn, ctx.actor, "list_add", dataset_id=target.id, target=f"list {rule_list.name}: {value}",
               before=before, after={"value": value, "reason": reason, "expires_at": expires_at,
                                     **({"created_list": rule_list.kind + " " + rule_list.key_column} if created else {})})
    return store.get_list(ctx.conn, target, rule_list.name, now)


def add_from_case(ctx: Context, dataset: DatasetRef, transaction_id: str, *, kind: str, key: str, reason: str,
                  expires_at: datetime | None = None) -> tuple[RuleList, str]:
    """One click on a case: put the transaction's customer (merchant, device...) on the dataset's
    default block or allow list for that column, creating the list the first time."""
    require_role(ctx, EDITORS, "add list entries")
    target = ctx.dataset(dataset)
    kind, key = store.check_kind(kind), store.check_key(target, key)
    detail = transaction_detail(ctx.conn, target, str(transaction_id))
    if detail is None:
        raise NotFound(f"transaction {transaction_id!r} is not in dataset {target.name!r}.", field="transaction_id")
    value = store.check_value(detail.get(key), field=key)
    name = store.DEFAULT_LISTS.get((kind, key), f"{kind}ed_{key}"[:63])
    now = ctx.clock()
    try:
        rule_list, created = store.get_list(ctx.conn, target, name, now), False
    except NotFound:
        rule_list = RuleList(0, target.id, name, kind, key, f"{kind.title()}ed from cases", now, ctx.actor)
        created = True
    if rule_list.kind != kind or rule_list.key_column != key:
        raise Conflict(f"list {name!r} exists but is a {rule_list.kind} list of {rule_list.key_column}.", field="list")
    return _add(ctx, target, rule_list, value, store.check_reason(reason), _expiry(ctx, expires_at), created), value


def import_entries(ctx: Context, dataset: DatasetRef, list_name: str, path: str) -> int:
    """Entries from a CSV file (value, reason[, expires_at]); one bad row rejects the whole file."""
    require_role(ctx, EDITORS, "import list entries")
    target = ctx.dataset(dataset)
    rule_list = store.get_list(ctx.conn, target, list_name, ctx.clock())
    now = ctx.clock()
    rows = store.read_entry_file(path, now)
    with ctx.unit_of_work() as conn:
        store.append_entries(conn, rule_list, rows, "add", ctx.actor, now)
        record(conn, ctx.actor, "list_import", dataset_id=target.id, target=f"list {rule_list.name}",
               after={"file": Path(path).name, "entries": len(rows)})
    return len(rows)


def remove_entry(ctx: Context, dataset: DatasetRef, list_name: str, value: Any, reason: str | None = None) -> RuleList:
    """Take a value off a list (its history stays)."""
    require_role(ctx, EDITORS, "remove list entries")
    target = ctx.dataset(dataset)
    rule_list = store.get_list(ctx.conn, target, list_name, ctx.clock())
    value = store.check_value(value)
    before = store.entry_state(ctx.conn, rule_list, value)
    if before is None:
        raise NotFound(f"{value!r} is not on list {rule_list.name!r}.", field="value")
    now = ctx.clock()
    with ctx.unit_of_work() as conn:
        store.append_entries(conn, rule_list, pd.DataFrame({"value": [value], "reason": [(reason or "").strip() or None],
                                                            "expires_at": [None]}), "remove", ctx.actor, now)
        record(conn, ctx.actor, "list_remove", dataset_id=target.id, target=f"list {rule_list.name}: {value}",
               before=before, after={"reason": reason})
    return store.get_list(ctx.conn, target, rule_list.name, now)


def lists(ctx: Context, dataset: DatasetRef) -> list[RuleList]:
    return store.lists_of(ctx.conn, ctx.dataset(dataset), ctx.clock())


@dataclass(frozen=True)
class ListView:
    rule_list: RuleList
    entries: pd.DataFrame  # value, reason, added_by, added_at, expires_at, expired
    history: pd.DataFrame  # every add and remove, newest first


def show(ctx: Context, dataset: DatasetRef, list_name: str, *, include_expired: bool = True,
         value: str | None = None) -> ListView:
    target = ctx.dataset(dataset)
    rule_list = store.get_list(ctx.conn, target, list_name, ctx.clock())
    return ListView(rule_list, store.current_entries(ctx.conn, rule_list, ctx.clock(), include_expired),
                    store.entry_history(ctx.conn, rule_list, value))
