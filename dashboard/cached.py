"""Cached aggregates for pages. A dataset's rows never change once created, and a run's scores
never change, so results keyed on the database file and the ids stay valid (ids are never reused).
Pages call the unprefixed helpers; the cached functions take the database path as a key."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.connection import get_cursor
from data.datasets import Dataset, get_dataset, label_summary, missing_values, profile
from data.db import database_path


def _dataset(dataset_id: int) -> Dataset:
    return get_dataset(get_cursor(), dataset_id)


def _db() -> str:
    return str(database_path().resolve())


@st.cache_data(show_spinner=False, max_entries=32)
def _dataset_overview(db: str, dataset_id: int, created_at: datetime) -> dict[str, Any]:
    """Missing values, profile and label counts of a dataset: three scans, done once."""
    conn, dataset = get_cursor(), _dataset(dataset_id)
    return {
        "missing": missing_values(conn, dataset),
        "profile": profile(conn, dataset),
        "labels": label_summary(conn, dataset),
    }


def overview_of(dataset: Dataset) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    result = _dataset_overview(_db(), dataset.id, dataset.created_at)
    return result["missing"], result["profile"], result["labels"]


def run_scores(run_id: int) -> np.ndarray:
    return _run_scores(_db(), run_id)


def run_evaluation_frame(dataset_id: int, run_id: int, labels_version: tuple) -> pd.DataFrame:
    return _run_evaluation_frame(_db(), dataset_id, run_id, labels_version)


def run_ranking(dataset_id: int, run_id: int, labels_version: tuple, k: int = 100) -> tuple[dict[str, Any], dict]:
    return _run_ranking(_db(), dataset_id, run_id, labels_version, k)


@st.cache_data(show_spinner=False, max_entries=16)
def _run_scores(db: str, run_id: int) -> np.ndarray:
    """A run's stored scores. Scores of a run never change (a rescore writes the same model's output)."""
    from detectors.runs import run_scores as stored

    return stored(get_cursor(), run_id)


@st.cache_data(show_spinner=False, max_entries=8)
def _run_evaluation_frame(db: str, dataset_id: int, run_id: int, labels_version: tuple) -> pd.DataFrame:
    """Scores joined with labels for a run's evaluation period (after training, if it held one out)."""
    from detectors.evaluation import labelled_frame
    from detectors.runs import get_run

    conn = get_cursor()
    run = get_run(conn, run_id)
    return labelled_frame(conn, _dataset(dataset_id), run_id, run.train_until)


@st.cache_data(show_spinner=False, max_entries=16)
def _run_ranking(db: str, dataset_id: int, run_id: int, labels_version: tuple, k: int) -> tuple[dict[str, Any], dict]:
    """Threshold-free metrics and curves of a run (computed once per run and labels)."""
    from detectors.evaluation import curves, ranking_metrics

    frame = _run_evaluation_frame(db, dataset_id, run_id, labels_version)
    return ranking_metrics(frame, k), curves(frame)


@st.cache_data(show_spinner=False, max_entries=16)
def _sorted_scores(db: str, run_id: int) -> np.ndarray:
    return np.sort(_run_scores(db, run_id))


def run_threshold(run_id: int, contamination: float) -> float:
    """The run's alert threshold at a contamination (a quantile of its cached scores)."""
    from detectors.base import threshold_for

    return threshold_for(_sorted_scores(_db(), run_id), contamination)


def score_rank(run_id: int, score: float) -> tuple[int, int]:
    """Where a score ranks in its run: (1 for the highest, number of transactions)."""
    ordered = _sorted_scores(_db(), run_id)
    return int(len(ordered) - np.searchsorted(ordered, score, side="right") + 1), len(ordered)


@st.cache_resource(show_spinner=False, max_entries=4)
def _explainer(db: str, dataset_id: int, run_id: int, artifact_sha256: str):
    """A run's SHAP explainer, built once per process (loading the model and, for trees, its paths)."""
    from detectors.explain import explainer_for_run
    from detectors.runs import get_run

    conn = get_cursor()
    return explainer_for_run(conn, _dataset(dataset_id), get_run(conn, run_id))


def run_explainer(dataset_id: int, run) -> Any:
    return _explainer(_db(), dataset_id, run.id, run.artifact_sha256)


@st.cache_data(show_spinner=False, max_entries=16)
def _patterns(db: str, dataset_id: int, run_id: int, threshold: float, labels_version: tuple) -> dict[str, pd.DataFrame]:
    from data.alerts import daily_trend, hour_weekday, places

    conn, dataset = get_cursor(), _dataset(dataset_id)
    return {"cells": hour_weekday(conn, dataset, run_id, threshold),
            "trend": daily_trend(conn, dataset, run_id, threshold),
            "places": places(conn, dataset, run_id, threshold)}


def patterns(dataset_id: int, run_id: int, threshold: float, labels_version: tuple) -> dict[str, pd.DataFrame]:
    """Alerts by hour and weekday, by day and by place (three aggregate queries, cached)."""
    return _patterns(_db(), dataset_id, run_id, threshold, labels_version)


_warming: set[tuple] = set()
_warming_lock = threading.Lock()


def warm_explainer(dataset_id: int, run) -> None:
    """Build the run's explainer in a background thread (the queue page calls this), so the first
    case an analyst opens does not wait for it; Streamlit's per-key lock makes a case page that
    asks meanwhile wait for this build instead of starting another."""
    key = (_db(), dataset_id, run.id, run.artifact_sha256)
    with _warming_lock:
        if key in _warming:
            return
        _warming.add(key)

    def build() -> None:
        try:
            _explainer(*key)
        except Exception:  # noqa: BLE001 - the case page builds it again and shows the error
            with _warming_lock:
                _warming.discard(key)

    threading.Thread(target=build, name=f"warm-explainer-{run.id}", daemon=True).start()


@st.cache_data(show_spinner=False, max_entries=16)
def _drift(db: str, dataset_id: int, run_id: int, recent_days: int):
    from detectors.drift import drift_report
    from detectors.runs import get_run

    conn = get_cursor()
    return drift_report(conn, _dataset(dataset_id), get_run(conn, run_id), recent_days)


def drift(dataset_id: int, run_id: int, recent_days: int):
    """A run's drift report (PSI per feature and score); the rows and scores it reads never change."""
    return _drift(_db(), dataset_id, run_id, int(recent_days))
