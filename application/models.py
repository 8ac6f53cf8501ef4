"""Versions learned from labels: train one, promote it to rank the queue, roll back; the
registry of every run and version, and drift."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd

from application.context import Context
from application.datasets import DatasetRef, ensure_features
from application.runs import activate, store_fitted
from detectors import runs as run_store
from detectors.drift import DriftReport, drift_report
from detectors.registry import model_registry
from detectors.runs import Run
from detectors.supervised import DEFAULT_IMBALANCE, DEFAULT_MODEL, train_version


def retrain(ctx: Context, dataset: DatasetRef, *, model: str = DEFAULT_MODEL, imbalance: str = DEFAULT_IMBALANCE,
            params: dict[str, Any] | None = None, search: int = 0, base_run_id: int | None = None,
            use_truth: bool = True, train_until: datetime | None = None, random_state: int = 0,
            should_stop: Callable[[], bool] = lambda: False) -> Run:
    """Train a new model version on the labels (before `train_until`), optionally searching its
    parameters over `search` configurations on time-ordered folds first; validated on the newest
    labels beside the detector run it builds on. It is not promoted. A stopped search
    (`should_stop`) trains and stores nothing."""
    target = ctx.dataset(dataset)
    feature_set = ensure_features(ctx, target)
    trained = train_version(ctx.conn, target, feature_set, model=model, imbalance=imbalance, params=params,
                            search_budget=search, base_run_id=base_run_id, use_truth=use_truth, train_until=train_until,
                            random_state=random_state, progress=ctx.progress, should_stop=should_stop)
    ctx.progress(0.92, "Saving the model version")
    spec = trained.fitted.model.spec
    run = store_fitted(ctx, target, trained.fitted, spec, feature_set.version, contamination=trained.base.contamination,
                       kind="supervised", base_run_id=trained.base.id, label_counts=trained.label_counts,
                       metrics=trained.metrics)
    ap, base_ap = run.metrics["average_precision"], run.metrics["baseline"]["average_precision"]
    ctx.progress(1.0, f"Version #{run.id}: average precision {_fmt(ap)} on the newest labels "
                      f"(detector run #{trained.base.id}: {_fmt(base_ap)})")
    return run


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def promote(ctx: Context, dataset: DatasetRef, run_id: int) -> Run:
    """Make a version (or any run) the one the queue ranks by, recorded as a promotion."""
    return activate(ctx, dataset, run_id, "promote")


def rollback(ctx: Context, dataset: DatasetRef, run_id: int) -> Run:
    """Go back to an earlier version (a detector run or a learned one), recorded as a rollback."""
    return activate(ctx, dataset, run_id, "rollback")


def versions(ctx: Context, dataset: DatasetRef) -> list[Run]:
    """Every detector run and learned version of the dataset, oldest first."""
    return run_store.list_runs(ctx.conn, ctx.dataset(dataset))


def registry(ctx: Context, dataset: DatasetRef) -> pd.DataFrame:
    """Every detector run and learned version of the dataset, newest first (see detectors.registry)."""
    return model_registry(ctx.conn, ctx.dataset(dataset))


def drift(ctx: Context, dataset: DatasetRef, run_id: int, recent_days: int = 7) -> DriftReport:
    """PSI per feature and for the score: a run's training period against the last days."""
    target = ctx.dataset(dataset)
    return drift_report(ctx.conn, target, run_store.run_of(ctx.conn, target, int(run_id)), recent_days)

