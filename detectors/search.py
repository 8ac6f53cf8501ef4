"""A time-aware hyper-parameter search for models learned from labels.

Prequential folds, as the fraud-detection handbook validates: the newest part of the labelled
period is cut into consecutive test windows; each fold trains on the labels older than its test
window minus a gap (the label delay, at most one window long), so no fold ever trains on its own
test days or on what a team would not have labelled yet, and the folds roll forward in time.
A budget of configurations is drawn at random from the model's search space (the defaults
first); each is scored by its mean average precision over the folds. The caller then validates
the best one on labels no fold saw, and can stop the search between trials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from data.db import ProgressFn, no_progress
from data.errors import InvalidInput, UserError
from detectors.classifiers import classifier_spec

SEARCHED_SHARE = 0.4  # the newest share of the labelled period the test windows cover
DEFAULT_FOLDS = 3
MIN_PER_CLASS = 5  # labels of each class every fold needs on both sides


class SearchStopped(UserError):
    """The user stopped the search; nothing was trained or stored."""

    status = 409
    code = "stopped"


@dataclass(frozen=True)
class Fold:
    train: np.ndarray  # row positions
    test: np.ndarray
    test_from: pd.Timestamp
    test_until: pd.Timestamp


def prequential_folds(ts: pd.Series, y: np.ndarray, n_folds: int = DEFAULT_FOLDS, gap_days: float = 7.0) -> list[Fold]:
    """Folds over time-ordered labels: test windows over the newest `SEARCHED_SHARE` of the
    period, each trained on labels ending a gap before it. Folds without enough labels of each
    class on either side are left out; InvalidInput if none is left."""
    ts = pd.to_datetime(pd.Series(ts).reset_index(drop=True))
    start, end = ts.min(), ts.max() + pd.Timedelta(seconds=1)
    window = (end - start) * SEARCHED_SHARE / n_folds
    gap = min(pd.Timedelta(days=gap_days), window)
    folds = []
    for k in range(n_folds):
        test_from = end - window * (n_folds - k)
        test_until = test_from + window
        train = np.flatnonzero((ts < test_from - gap).to_numpy())
        test = np.flatnonzero(((ts >= test_from) & (ts < test_until)).to_numpy())
        if all(0 < MIN_PER_CLASS <= min(int(y[rows].sum()), int(len(rows) - y[rows].sum())) for rows in (train, test)):
            folds.append(Fold(train, test, test_from, test_until))
    if not folds:
        raise InvalidInput("too few labels over time to search: every fold needs at least "
                           f"{MIN_PER_CLASS} fraud and {MIN_PER_CLASS} legitimate labels before and inside its window.",
                           field="search", hint="Label more cases, or train without a search.")
    return folds


def draw_configurations(model: str, budget: int, random_state: int = 0) -> list[dict[str, Any]]:
    """`budget` distinct configurations: the defaults, then random draws from the search space."""
    spec = classifier_spec(model)
    rng = np.random.default_rng(random_state)
    configs, seen = [dict(spec.defaults)], {tuple(sorted(spec.defaults.items()))}
    space_size = int(np.prod([len(v) for v in spec.space.values()]))
    while len(configs) < min(budget, space_size):
        draw = {**spec.defaults, **{k: values[rng.integers(len(values))] for k, values in spec.space.items()}}
        key = tuple(sorted(draw.items()))
        if key not in seen:
            seen.add(key)
            configs.append(draw)
    return configs


def search(make: Callable[[dict[str, Any]], Any], X: pd.DataFrame, y: np.ndarray, folds: list[Fold],
           configurations: list[dict[str, Any]], progress: ProgressFn = no_progress,
           should_stop: Callable[[], bool] = lambda: False) -> pd.DataFrame:
    """Score each configuration (`make(params)` -> an unfitted model with fit(frame, y) and
    decision_function(frame)) by its mean average precision over the folds; one row per trial,
    best first. SearchStopped if `should_stop()` turns true between trials."""
    rows = []
    for i, params in enumerate(configurations):
        if should_stop():
            raise SearchStopped(f"search stopped after {i} of {len(configurations)} trials")
        progress(i / len(configurations), f"Trial {i + 1} of {len(configurations)}: {params}")
        started = time.perf_counter()
        scores = []
        for fold in folds:
            model = make(params).fit(X.iloc[fold.train], y[fold.train])
            scores.append(average_precision_score(y[fold.test], model.decision_function(X.iloc[fold.test])))
        rows.append({"trial": i + 1, "params": params, "average_precision": float(np.mean(scores)),
                     "per_fold": [round(float(s), 4) for s in scores], "seconds": time.perf_counter() - started})
    progress(1.0, f"{len(rows)} trials")
    return pd.DataFrame(rows).sort_values(["average_precision", "trial"], ascending=[False, True], ignore_index=True)
