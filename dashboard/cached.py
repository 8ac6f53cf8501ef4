"""Cached reads for pages. A dataset's rows never change once created, and a run's scores change
only when it is rescored (same model, same values), so results keyed on the database file, the
ids and the label version stay valid (ids are never reused). Pages call the unprefixed helpers;
the cached functions take the database path as a key. Only pure, expensive reads are cached;
nothing that writes."""

from __future__ import annotations

import threading
from datetime import date, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from application.context import Context
from dashboard.connection import get_cursor
from data.datasets import Dataset, get_dataset, label_summary, missing_values, profile
from data.db import database_path
from data.kpi import TotalsReader
from detectors.evaluation import ThresholdCounts, threshold_counts
from detectors.runs import Run


def _dataset(dataset_id: int) -> Dataset:
    return get_dataset(get_cursor(), dataset_id)


def _db() -> str:
    return str(database_path().resolve())


def _reader() -> Context:
    """A context for cached reads (shared by every session, so no user is named)."""
    return Context(get_cursor(), "app")


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


@st.cache_data(show_spinner=False, max_entries=32)
def _categorical_candidates(db: str, dataset_id: int, created_at: datetime) -> list[str]:
    from detectors.pipeline import categorical_candidates

    return categorical_candidates(get_cursor(), _dataset(dataset_id))


def categorical_candidates_of(dataset: Dataset) -> list[str]:
    """The columns the Fit form offers to one-hot encode (a scan of every categorical column,
    done once per dataset: rows arriving live hardly move a distinct count)."""
    return _categorical_candidates(_db(), dataset.id, dataset.created_at)


# Read-only arrays, shared and not copied per call; 8 runs (the Threshold tab's and the Compare
# tab's, several datasets) keep their sorted scores: 80 MB each at 10M rows.
@st.cache_resource(show_spinner=False, max_entries=8)
def _sorted_scores(db: str, run_id: int, feature_version: str | None) -> np.ndarray:
    from detectors.runs import run_scores as stored

    ordered = np.sort(np.asarray(stored(get_cursor(), run_id), dtype=np.float64))
    ordered.setflags(write=False)
    return ordered


def run_alert_count(run: Run, contamination: float) -> tuple[float, int]:
    """`detectors.runs.alert_count` on the run's stored scores, from their sorted copy (kept once
    per process)."""
    from detectors.runs import alert_count_sorted

    return alert_count_sorted(_sorted_scores(_db(), run.id, run.feature_version), contamination)


@st.cache_data(show_spinner=False, max_entries=16)
def _score_histogram(db: str, run_id: int, feature_version: str | None, bins: int) -> tuple[np.ndarray, np.ndarray]:
    return np.histogram(_sorted_scores(db, run_id, feature_version), bins=bins)


def run_score_histogram(run: Run, bins: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Counts and edges of a run's score histogram (they do not move with the threshold)."""
    return _score_histogram(_db(), run.id, run.feature_version, bins)


def run_threshold_counts(dataset_id: int, run: Run, labels_version: tuple) -> ThresholdCounts:
    """A run's evaluation period as `ThresholdCounts`: the metrics at any threshold in microseconds."""
    return _run_threshold_counts(_db(), dataset_id, run.id, run.feature_version, labels_version)


def run_ranking(dataset_id: int, run: Run, labels_version: tuple, k: int = 100) -> tuple[dict[str, Any], dict]:
    return _run_ranking(_db(), dataset_id, run.id, run.feature_version, labels_version, k)


# A run's scores change only when it is rescored on recomputed features, which changes its
# feature version: the version is part of every key below.


@st.cache_data(show_spinner=False, max_entries=8)
def _run_evaluation_frame(db: str, dataset_id: int, run_id: int, feature_version: str | None,
                          labels_version: tuple) -> pd.DataFrame:
    """Scores joined with labels for a run's evaluation period (after training, if it held one out)."""
    from detectors.evaluation import labelled_frame
    from detectors.runs import get_run

    conn = get_cursor()
    run = get_run(conn, run_id)
    return labelled_frame(conn, _dataset(dataset_id), run_id, run.train_until)


@st.cache_resource(show_spinner=False, max_entries=8)  # read-only arrays, up to 160 MB each at 10M rows
def _run_threshold_counts(db: str, dataset_id: int, run_id: int, feature_version: str | None,
                          labels_version: tuple) -> ThresholdCounts:
    from detectors.runs import get_run

    conn = get_cursor()
    return threshold_counts(conn, _dataset(dataset_id), run_id, get_run(conn, run_id).train_until)


@st.cache_data(show_spinner=False, max_entries=16)
def _run_ranking(db: str, dataset_id: int, run_id: int, feature_version: str | None, labels_version: tuple,
                 k: int) -> tuple[dict[str, Any], dict]:
    """Threshold-free metrics and curves of a run: stored when it was saved, computed again (and
    stored) when its scores, the labels or the rows changed since (detectors.run_figures)."""
    from detectors import run_figures
    from detectors.runs import get_run

    conn = get_cursor()
    return run_figures.figures(conn, _dataset(dataset_id), get_run(conn, run_id), k,
                               lambda: _run_evaluation_frame(db, dataset_id, run_id, feature_version, labels_version))


@st.cache_resource(show_spinner=False, max_entries=4)
def _explainer(db: str, dataset_id: int, run_id: int, artifact_sha256: str):
    """A run's SHAP explainer, built once per process (loading the model and, for trees, its paths)."""
    from detectors.explain import explainer_for_run
    from detectors.runs import get_run

    conn = get_cursor()
    return explainer_for_run(conn, _dataset(dataset_id), get_run(conn, run_id))


def run_explainer(dataset_id: int, run: Run) -> Any:
    return _explainer(_db(), dataset_id, run.id, run.artifact_sha256)


@st.cache_data(show_spinner=False, max_entries=16)
def _patterns(db: str, dataset_id: int, run_id: int, threshold: float, labels_version: tuple) -> dict[str, pd.DataFrame]:
    from application.patterns import patterns as aggregates
    from application.runs import ActiveRun
    from detectors.runs import get_run

    ctx = _reader()
    return aggregates(ctx, dataset_id, ActiveRun(get_run(ctx.conn, run_id), threshold))


def patterns(dataset_id: int, active, labels_version: tuple) -> dict[str, pd.DataFrame]:
    """Alerts by hour and weekday, by day and by place (three aggregate queries, cached)."""
    return _patterns(_db(), dataset_id, active.run.id, active.threshold, labels_version)


_warming: set[tuple] = set()
_warming_lock = threading.Lock()


def warm_explainer(dataset_id: int, run: Run) -> None:
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
    from application.models import drift as drift_report

    return drift_report(_reader(), dataset_id, run_id, recent_days)


def drift(dataset_id: int, run_id: int, recent_days: int):
    """A run's drift report (PSI per feature and score); the rows and scores it reads never change."""
    return _drift(_db(), dataset_id, run_id, int(recent_days))


@st.cache_data(show_spinner=False, max_entries=16)
def _suggestions(db: str, dataset_id: int, labels_version: tuple, run_key: tuple, train: tuple, test: tuple) -> list:
    from application import rules

    return rules.suggest(_reader(), dataset_id, train_start=train[0], train_end=train[1], test_start=test[0],
                         test_end=test[1])


def rule_suggestions(dataset: Dataset, run_key: tuple, train: tuple, test: tuple) -> list:
    """Suggested rules for a training and a backtest period, drawn once per label version and active
    model (growing the trees takes seconds on a large dataset)."""
    from data.datasets import labels_version

    return _suggestions(_db(), dataset.id, labels_version(get_cursor(), dataset.id), run_key, tuple(train), tuple(test))


# Live scoring adds alerts, and with them values, every second under load: keyed on the row count,
# the choices were read again on every visit (three scans of the alerts, 50-140 ms on a busy
# server). Kept a minute instead; meanwhile a newer value can be typed (the pickers accept new ones).
FILTER_CHOICES_SECONDS = 60


@st.cache_data(show_spinner=False, max_entries=64, ttl=FILTER_CHOICES_SECONDS)
def _filter_choices(db: str, dataset_id: int, run_id: int, feature_version: str | None, threshold: float,
                    column: str) -> list[str]:
    """The queue's filter pickers: a column's values among the alerts (a join of scores and rows)."""
    from application.queue import filter_choices

    return filter_choices(_reader(), _dataset(dataset_id), column)


def queue_filter_choices(dataset: Dataset, run: Run, threshold: float, column: str) -> list[str]:
    """A column's values among the active run's alerts, most frequent first, at most a minute old."""
    return _filter_choices(_db(), dataset.id, run.id, run.feature_version, float(threshold), column)


@st.cache_data(show_spinner=False, max_entries=4)
def _labelled_csv(db: str, dataset_id: int, run_id: int, feature_version: str | None, labels: tuple,
                  cases: tuple) -> tuple[int, bytes]:
    from application.queue import labelled
    from data.export import safe_csv

    done = labelled(_reader(), _dataset(dataset_id))
    return len(done), safe_csv(done)


def labelled_cases_csv(dataset: Dataset, run: Run) -> tuple[int, bytes]:
    """How many transactions carry a label, and all of them as CSV (the queue's download, made
    on every run of the page before): kept until a label, an undo or a case change (both
    append-only, so their counts and latest ids say when) or another active run (its scores)."""
    from data.datasets import labels_version
    from data.db import fetch_one

    conn = get_cursor()
    cases = tuple(fetch_one(conn, "SELECT count(*), max(id) FROM case_events WHERE dataset_id = ?", [dataset.id]))
    return _labelled_csv(_db(), dataset.id, run.id, run.feature_version, labels_version(conn, dataset.id), cases)


@st.cache_data(show_spinner=False, max_entries=64)
def _kpi_totals(db: str, dataset_id: int, upto: int, run_id: int, feature_version: str | None, threshold: float,
                by: str | None, start: date | None, end: date | None, with_total: bool,
                limit: int | None) -> pd.DataFrame:
    """`data.kpi.totals`, once per key: rows are only ever added (`upto` counts them), a run's
    scores change only with its feature version, and the rest is the view asked for."""
    from data.kpi import totals

    return totals(get_cursor(), _dataset(dataset_id), run_id, threshold, by, start, end, with_total, limit, upto)


def kpi_totals_reader(run: Run) -> TotalsReader:
    """`data.kpi.totals` for the KPI page, kept per run (its feature version: a rescore changes its
    scores), threshold, period, grouping and last row (live scoring adds rows and alerts): the KPI
    page's scan of every transaction with its score (0.5 s at 10M rows) is paid once, and only
    what analysts did (labels, cases, the backlog's age) is read on every visit."""
    from data.kpi import totals

    def read(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float, by: str | None,
             start: date | None, end: date | None, with_total: bool, limit: int | None, upto: int) -> pd.DataFrame:
        if run_id != run.id:  # another run became active meanwhile: read it directly
            return totals(conn, dataset, run_id, threshold, by, start, end, with_total, limit, upto)
        return _kpi_totals(_db(), dataset.id, int(upto), run_id, run.feature_version, float(threshold), by, start, end,
                           bool(with_total), limit)

    return read
