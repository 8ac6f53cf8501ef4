"""The alert queue: one page of the active run's alerts, filtered and ordered, with the count
of all that match. The rules live here once: "least certain first" lists unlabelled alerts
only, nearest the run's decision point (`ActiveRun.pivot`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from application.context import Context
from application.datasets import DatasetRef
from application.runs import ActiveRun, require_active
from data import alerts
from data.alerts import NO_FILTERS, ORDERS, QueueFilters
from data.cases import labelled_cases
from data.errors import InvalidInput
from data.rules import AlertSources, alert_sources

MAX_PAGE_SIZE = 10_000


@dataclass(frozen=True)
class QueuePage:
    active: ActiveRun
    filters: QueueFilters  # as applied (the order may add one)
    order: str
    rows: pd.DataFrame  # one page: transaction_id, ts, amount, extras, score, label, labelled_by, status, assignee,
    # by_model, rules, lists (what raised it), why (the same in words), tx_row
    total: int  # alerts matching the filters in all
    page: int  # 0 is the first
    page_size: int
    sources: AlertSources | None = None  # the rules and lists in force besides the model

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def applied_filters(filters: QueueFilters, order: str) -> QueueFilters:
    """The filters an order implies: 'least certain first' is about unlabelled alerts only."""
    return filters.with_(label_status="unlabelled") if order == "uncertain" else filters


def queue_page(ctx: Context, dataset: DatasetRef, filters: QueueFilters = NO_FILTERS, *, order: str = "score",
               page: int = 0, page_size: int = 50, sources: AlertSources | None = None) -> QueuePage:
    """One page of alerts (page 0 is the first) and how many match in all. `sources`: the rules and
    lists in force, when the caller has just read them (`application.rules.sources`)."""
    if order not in ORDERS:
        raise InvalidInput(f"order must be one of {', '.join(ORDERS)}, not {order!r}.", field="order")
    if not 1 <= int(page_size) <= MAX_PAGE_SIZE:
        raise InvalidInput(f"a page holds 1 to {MAX_PAGE_SIZE:,} alerts, not {page_size}.", field="page_size")
    target = ctx.dataset(dataset)
    active = require_active(ctx, target)
    shown = applied_filters(filters, order)
    sources = sources if sources is not None else alert_sources(ctx.conn, target, ctx.clock())
    total = alerts.count_alerts(ctx.conn, target, active.run.id, active.threshold, shown, sources)
    rows = alerts.alert_page(ctx.conn, target, active.run.id, active.threshold, shown, page=max(0, int(page)),
                             page_size=int(page_size), order=order, pivot=active.pivot, sources=sources)
    rows.insert(len(rows.columns) - 1, "why", [why(r) for r in rows.itertuples(index=False)])
    return QueuePage(active, shown, order, rows, total, max(0, int(page)), int(page_size), sources)


def why(row) -> str:
    """Why an alert is in the queue, in words: the model's score, the rules, the lists."""
    parts = [f"model score {row.score:.4f}"] if row.by_model else []
    if len(row.rules):
        parts.append("rule " + ", ".join(row.rules))
    if len(row.lists):
        parts.append("list " + ", ".join(row.lists))
    return " · ".join(parts)


def filter_choices(ctx: Context, dataset: DatasetRef, column: str, limit: int = 200) -> list[str]:
    """Values of a column among the active run's alerts, most frequent first (filter pickers)."""
    target = ctx.dataset(dataset)
    active = require_active(ctx, target)
    return alerts.filter_choices(ctx.conn, target, active.run.id, active.threshold, column, limit)


def labelled(ctx: Context, dataset: DatasetRef) -> pd.DataFrame:
    """Every labelled transaction with its label, case state and active-run score (a download)."""
    target = ctx.dataset(dataset)
    return labelled_cases(ctx.conn, target, require_active(ctx, target).run.id)
