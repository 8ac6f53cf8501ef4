"""What managers see: KPIs of the active run over a period, overall, as a trend, broken down,
and the confirmed-fraud list with masked customers (definitions in data.kpi)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from application.context import Context
from application.datasets import DatasetRef
from application.runs import ActiveRun, require_active
from data import kpi


@dataclass(frozen=True)
class Overview:
    active: ActiveRun
    summary: dict[str, Any]
    trend: pd.DataFrame  # one row per day or week


def overview(ctx: Context, dataset: DatasetRef, start: date | None = None, end: date | None = None,
             step: str = "day", totals_reader: kpi.TotalsReader | None = None) -> Overview:
    """The KPIs overall and per day or week. `totals_reader`: what reads the per-group totals
    (`data.kpi.totals`; the page passes a cached copy)."""
    target = ctx.dataset(dataset)
    active = require_active(ctx, target)
    trend, summary = kpi.kpis_with_total(ctx.conn, target, active.run.id, active.threshold, step, start, end,
                                         ctx.clock(), totals_reader)
    return Overview(active, summary, trend)


def breakdown(ctx: Context, dataset: DatasetRef, by: str, start: date | None = None, end: date | None = None,
              limit: int | None = None, totals_reader: kpi.TotalsReader | None = None) -> pd.DataFrame:
    target = ctx.dataset(dataset)
    active = require_active(ctx, target)
    return kpi.kpis(ctx.conn, target, active.run.id, active.threshold, by, start, end, ctx.clock(), limit,
                    totals_reader)


def confirmed_fraud(ctx: Context, dataset: DatasetRef, start: date | None = None, end: date | None = None,
                    limit: int = 200) -> pd.DataFrame:
    return kpi.confirmed_fraud_cases(ctx.conn, ctx.dataset(dataset), start, end, limit)
