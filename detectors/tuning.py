"""Parameter search for a detector, scored on labelled validation data from a later period.

Each trial fits on the training period (on at most `TRAIN_SAMPLE` rows, so a search stays
interactive) and is scored on the validation period by average precision or precision@k.
Trials are written to DuckDB as they finish, one statement (and commit) each, so stopping a
search keeps what it found; any trial can then be saved as a full run (`application.runs.fit`
with its parameters).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from data.datasets import Dataset
from data.db import ProgressFn, no_progress
from data.errors import InvalidInput
from detectors.base import DEFAULT_CONTAMINATION, Param, detector_class, make_detector, threshold_for
from detectors.evaluation import precision_at_k
from detectors.pipeline import (
    DetectorModel,
    FeatureSpec,
    default_feature_spec,
    load_frame,
    require_features,
    validate_spec,
)
from detectors.runs import default_split

METRICS = ("average_precision", "precision_at_k")
TRAIN_SAMPLE = 100_000


def default_space(name: str) -> dict[str, list[Any]]:
    """A small grid around each declared parameter's default."""
    return {p.name: _candidates(p) for p in detector_class(name).param_specs}


def _candidates(p: Param) -> list[Any]:
    if p.kind == "choice":
        return list(p.choices)
    if p.kind == "bool":
        return [False, True]
    values = [p.default]
    for factor in (0.5, 2.0):
        v = p.default * factor
        v = int(round(v)) if p.kind == "int" else v
        if (p.low is None or v >= p.low) and (p.high is None or v <= p.high):
            values.append(v)
    return sorted(set(values))


def trials(space: dict[str, list[Any]], contaminations: list[float], budget: int, strategy: str, seed: int = 0
           ) -> list[tuple[dict[str, Any], float]]:
    """(params, contamination) pairs: the whole grid up to `budget`, or `budget` random draws from it."""
    if strategy not in ("grid", "random"):
        raise InvalidInput(f"strategy must be 'grid' or 'random', not {strategy!r}.", field="strategy")
    names = list(space)
    grid = [(dict(zip(names, combo, strict=True)), c)
            for combo in itertools.product(*(space[n] for n in names)) for c in contaminations]
    if strategy == "random" and len(grid) > budget:
        picks = np.random.default_rng(seed).choice(len(grid), budget, replace=False)
        return [grid[i] for i in sorted(picks)]
    return grid[:budget]


def tune(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    detector: str,
    *,
    space: dict[str, list[Any]] | None = None,
    contaminations: list[float] | None = None,
    budget: int = 12,
    strategy: str = "grid",
    metric: str = "average_precision",
    k: int = 100,
    train_until: datetime | None = None,
    spec: FeatureSpec | None = None,
    seed: int = 0,
    progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> pd.DataFrame:
    """Run the search; returns one row per finished trial (also stored in `tuning_trials`)."""
    if metric not in METRICS:
        raise InvalidInput(f"metric must be one of {', '.join(METRICS)}, not {metric!r}.", field="metric")
    if not dataset.has_role("label"):
        raise InvalidInput("tuning needs labelled validation data, and this dataset has no label column.",
                           hint="Import a file with a fraud label column, or label cases first.")
    feature_set = require_features(conn, dataset)
    spec = validate_spec(spec or default_feature_spec(feature_set), dataset, feature_set)
    split = pd.Timestamp(train_until or default_split(dataset))
    frame = load_frame(conn, dataset, feature_set, spec)
    labels = conn.execute(f"SELECT tx_row, CAST(is_fraud AS DOUBLE) AS y FROM {dataset.table} ORDER BY tx_row").df()
    frame = frame.merge(labels, on="tx_row", how="left")
    train, valid = frame[frame["ts"] < split], frame[(frame["ts"] >= split) & frame["y"].notna()]
    if train.empty or valid.empty or not 0 < valid["y"].sum() < len(valid):
        raise InvalidInput(f"splitting at {split:%Y-%m-%d} leaves no training rows or no labelled fraud to validate on.",
                           hint=f"Choose a 'train until' date between {dataset.min_ts:%Y-%m-%d} and {dataset.max_ts:%Y-%m-%d}.")
    if len(train) > TRAIN_SAMPLE:
        train = train.sample(TRAIN_SAMPLE, random_state=seed).sort_values("tx_row")
    plan = trials(space or default_space(detector), contaminations or [DEFAULT_CONTAMINATION], budget, strategy, seed)
    study = f"{detector}-{datetime.now():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
    y_valid = valid["y"].to_numpy(dtype=int)
    results = []
    for i, (params, contamination) in enumerate(plan):
        if should_stop():
            break
        progress(i / len(plan), f"Trial {i + 1} of {len(plan)}: {detector} {params} at contamination {contamination:g}")
        started = time.perf_counter()
        model = DetectorModel(make_detector(detector, params, random_state=seed), spec).fit(train)
        scores = model.decision_function(valid)
        threshold = threshold_for(scores, contamination)
        alert = scores >= threshold
        tp = int((alert & (y_valid == 1)).sum())
        precision = tp / alert.sum() if alert.sum() else 0.0
        recall = tp / y_valid.sum()
        row = {
            "trial": i + 1, "params": params, "contamination": contamination,
            "average_precision": float(average_precision_score(y_valid, scores)),
            "precision_at_k": precision_at_k(y_valid, scores, k),
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "seconds": time.perf_counter() - started,
        }
        row["value"] = row[metric]
        conn.execute(
            "INSERT INTO tuning_trials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP)",
            [study, dataset.id, row["trial"], detector, json.dumps(params), contamination, metric, row["value"],
             row["average_precision"], row["precision_at_k"], row["f1"], row["seconds"]],
        )
        results.append(row)
    progress(1.0, f"{len(results)} of {len(plan)} trials done")
    out = pd.DataFrame(results)
    if not out.empty:
        out.insert(0, "study", study)
    return out


def stored_trials(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    """Every trial run on this dataset, newest study first."""
    frame = conn.execute(
        "SELECT study, trial, detector, params, contamination, metric, value, average_precision, precision_at_k, f1, seconds "
        "FROM tuning_trials WHERE dataset_id = ? ORDER BY created_at DESC, trial",
        [dataset.id],
    ).df()
    frame["params"] = frame["params"].map(json.loads)
    return frame


