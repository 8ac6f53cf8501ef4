"""Where and when the active run's alerts happen, and which features set them apart."""

from __future__ import annotations

from typing import Any

import pandas as pd

from application.context import Context
from application.datasets import DatasetRef
from application.runs import ActiveRun
from data import alerts
from data.features import load_feature_set
from detectors.explain import ExplainerFactory, global_importance, stored_importance


def patterns(ctx: Context, dataset: DatasetRef, active: ActiveRun) -> dict[str, pd.DataFrame]:
    """Alerts by hour and weekday ("cells"), by day ("trend") and by place ("places")."""
    target, run_id, threshold = ctx.dataset(dataset), active.run.id, active.threshold
    return {"cells": alerts.hour_weekday(ctx.conn, target, run_id, threshold),
            "trend": alerts.daily_trend(ctx.conn, target, run_id, threshold),
            "places": alerts.places(ctx.conn, target, run_id, threshold)}


def drivers(ctx: Context, dataset: DatasetRef, active: ActiveRun, explainer_factory: ExplainerFactory,
            compute: bool = True) -> dict[str, Any] | None:
    """Mean |SHAP| per feature over a sample of alerts and of normal transactions: the stored
    result if it explains the current features, else computed now (or None with compute=False)."""
    target = ctx.dataset(dataset)
    if not compute and stored_importance(ctx.conn, active.run, load_feature_set(ctx.conn, target)) is None:
        return None
    return global_importance(ctx.conn, target, active.run, active.threshold, explainer_factory)
