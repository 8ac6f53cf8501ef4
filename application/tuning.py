"""Parameter search for a detector on labelled later data, and saving a trial as a run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd

from application.context import Context
from application.datasets import DatasetRef, ensure_features
from application.runs import fit, track
from data.errors import NotFound
from detectors.base import DEFAULT_CONTAMINATION, make_detector
from detectors.runs import Run
from detectors.tuning import stored_trials, tune
from integrations import mlflow_tracking


def search(ctx: Context, dataset: DatasetRef, detector: str, *, space: dict[str, list[Any]] | None = None,
           contaminations: list[float] | None = None, budget: int = 12, strategy: str = "grid",
           metric: str = "average_precision", train_until: datetime | None = None,
           should_stop: Callable[[], bool] = lambda: False) -> pd.DataFrame:
    """Run a search; each trial is stored as it finishes, so stopping keeps what was found."""
    target = ctx.dataset(dataset)
    ensure_features(ctx, target)
    found = tune(ctx.conn, target, detector, space=space, contaminations=contaminations or [DEFAULT_CONTAMINATION],
                 budget=budget, strategy=strategy, metric=metric, train_until=train_until, progress=ctx.progress,
                 should_stop=should_stop)
    track(ctx, "log the search", mlflow_tracking.log_search, target, found, detector=detector, metric=metric,
          strategy=strategy)
    return found


def trials(ctx: Context, dataset: DatasetRef) -> pd.DataFrame:
    return stored_trials(ctx.conn, ctx.dataset(dataset))


def save_trial(ctx: Context, dataset: DatasetRef, study: str, trial: int, train_until: datetime | None) -> Run:
    """Fit a search's trial on the full training period as a run (the active one)."""
    target = ctx.dataset(dataset)
    found = trials(ctx, target)
    row = found[(found["study"] == study) & (found["trial"] == int(trial))]
    if row.empty:
        raise NotFound(f"search {study!r} has no trial {trial}.", field="trial")
    row = row.iloc[0]
    make_detector(row["detector"], row["params"])  # validates before the long fit
    return fit(ctx, target, [row["detector"]], {row["detector"]: row["params"]},
               contamination=float(row["contamination"]), train_until=train_until,
               note=f"from search {study}, trial {row['trial']}")
