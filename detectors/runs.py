"""Runs: every detector fit and every learned version, recorded in DuckDB with a score per
transaction and a model artifact file.

This module fits, scores and stores; it opens no transaction and writes no audit row. The
actions that fit, activate and re-threshold runs (`application.runs`, `application.models`)
wrap these in one unit of work each.

Artifacts are written by the app into its own model directory (`models/` beside the database,
or $CENTINELA_MODELS) and loaded only from there, after checking the SHA-256 recorded with the
run, so a model file can never come from an upload or another folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from data.datasets import Dataset
from data.db import PERIOD_SQL, ProgressFn, fetch_one, fetch_records, no_progress
from data.errors import Conflict, InvalidInput, NotFound
from data.features import FeatureSet
from detectors.base import Detector, check_contamination, make_detector, registered, threshold_for
from detectors.ensemble import Ensemble
from detectors.evaluation import evaluate, known_compromised_cards, labelled_frame, threshold_metrics
from detectors.pipeline import DetectorModel, FeatureSpec, load_frame, load_sample, stream_frames
from detectors.ranking import RankingModel
from detectors.tree_shap import keep_tree_explainer

MODELS_ENV = "CENTINELA_MODELS"
SCORE_CHUNK = 200_000
FIT_ROWS = 2_000_000  # a detector trains on at most this many rows (a deterministic sample)


@dataclass(frozen=True)
class Run:
    id: int
    dataset_id: int
    detector: str
    params: dict[str, Any]
    contamination: float
    features: dict[str, Any]
    dataset_fingerprint: str
    train_from: datetime | None
    train_until: datetime | None
    fit_rows: int
    sampled: bool
    fit_seconds: float
    score_seconds: float
    metrics: dict[str, Any]
    artifact: str
    artifact_sha256: str
    created_at: datetime
    created_by: str
    note: str | None
    kind: str = "detector"  # or "supervised": trained on labels, scores are fraud probabilities
    base_run_id: int | None = None  # a supervised run's detector run (its anomaly score is a feature)
    label_counts: dict[str, Any] | None = None
    feature_version: str | None = None  # the feature set version its scores were computed on
    threshold: float | None = None  # the alert threshold at `contamination` (see `store_threshold`)

    @property
    def label(self) -> str:
        return f"#{self.id} {self.detector} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec(**self.features)


_RUN_COLUMNS = ", ".join(f.name for f in fields(Run))
_JSON_COLUMNS = ("params", "features", "metrics", "label_counts")


def _run_from(record: dict[str, Any]) -> Run:
    for name in _JSON_COLUMNS:
        record[name] = json.loads(record[name]) if record[name] is not None else None
    return Run(**record)


def get_run(conn: duckdb.DuckDBPyConnection, run_id: int) -> Run:
    found = fetch_records(conn, f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", [int(run_id)])
    if not found:
        raise NotFound(f"no run #{run_id}.", field="run")
    return _run_from(found[0])


def list_runs(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> list[Run]:
    return [_run_from(r) for r in fetch_records(conn, f"SELECT {_RUN_COLUMNS} FROM runs WHERE dataset_id = ? ORDER BY id",
                                                [dataset.id])]


def active_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> Run | None:
    row = fetch_one(conn, "SELECT run_id FROM active_runs WHERE dataset_id = ?", [dataset.id])
    return get_run(conn, row[0]) if row else None


def run_of(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int | None) -> Run:
    """The given run of the dataset, else its active run; a clear error if there is none."""
    if run_id is None:
        run = active_run(conn, dataset)
        if run is None:
            raise NotFound(f"dataset {dataset.name!r} has no runs yet.",
                           hint=f"Fit one: centinela fit {dataset.name!r} --detector isolation_forest")
        return run
    run = get_run(conn, run_id)
    if run.dataset_id != dataset.id:
        raise NotFound(f"run #{run_id} belongs to another dataset.", field="run")
    return run


# ---------------------------------------------------------------------------------------------
# Fitting and scoring (no storage)


def build_detector(names: list[str], params: dict[str, dict[str, Any]] | None = None,
                   combine: str = "mean", random_state: int = 0) -> Detector:
    """One detector, or an ensemble of several, with every parameter checked."""
    params = params or {}
    if not names:
        raise InvalidInput("no detector selected.", field="detector",
                           hint=f"Choose one or more of: {', '.join(registered())}.")
    if len(names) == 1:
        return make_detector(names[0], params.get(names[0]), random_state)
    return Ensemble.of(names, params, combine=combine, random_state=random_state)


def detector_params(detector: Detector) -> dict[str, Any]:
    """A detector's parameters as stored with its run: scikit-learn's names (`member__param`
    inside an ensemble), plain values only."""
    return {k: v for k, v in detector.get_params(deep=True).items() if not isinstance(v, (BaseEstimator, list))}


@dataclass
class FittedRun:
    """A model fitted and every transaction scored, not yet stored."""

    model: RankingModel
    detector: str
    params: dict[str, Any]
    tx_rows: np.ndarray
    scores: np.ndarray
    train_from: Any
    train_until: datetime | None
    fit_rows: int
    sampled: bool
    fit_seconds: float
    score_seconds: float


def fit_detector(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, detector: Detector,
                 spec: FeatureSpec, *, train_until: datetime | None = None,
                 progress: ProgressFn = no_progress) -> FittedRun:
    """Fit on rows before `train_until` (all rows if None) and score every row; stores nothing.

    Everything that can refuse (rows the detector cannot take, an empty training period) does so
    before the long work starts.
    """
    detector.check_rows(dataset.row_count, "score")
    check_train_until(dataset, train_until)
    # Up to FIT_ROWS one read serves the training and the scoring; past it the training rows are a
    # sample and the scoring streams, so memory holds neither the whole frame nor a copy of it.
    whole = load_frame(conn, dataset, feature_set, spec) if dataset.row_count <= FIT_ROWS else None
    if whole is not None:
        train = whole if train_until is None else whole[whole["ts"] < pd.Timestamp(train_until)]
        period_rows, train_from = len(train), train["ts"].min()
    else:
        train, period_rows, train_from = training_rows(conn, dataset, feature_set, spec, train_until,
                                                       seed=int(getattr(detector, "random_state", 0) or 0))
    model = DetectorModel(detector, spec)
    sampled = len(train) < period_rows
    fit_sample = min(len(train), detector.fit_sample or len(train))
    sample_note = f" (on a {fit_sample:,}-row sample)" if fit_sample < period_rows else ""
    progress(0.10, f"Fitting {detector.title} on {period_rows:,} rows{sample_note}")
    started = time.perf_counter()
    model.fit(train)
    del train
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scoring = lambda f, m: progress(0.40 + 0.45 * f, m)  # noqa: E731
    if whole is not None:
        tx_rows, scores = whole["tx_row"].to_numpy(), score_in_chunks(model, whole, scoring)
    else:
        tx_rows, scores = score_rows(conn, dataset, feature_set, model, scoring)
    return FittedRun(model, detector.name if not isinstance(detector, Ensemble) else "ensemble", detector_params(detector),
                     tx_rows, scores, train_from, train_until, period_rows, sampled or bool(detector.sampled_),
                     fit_seconds, time.perf_counter() - started)


def training_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, spec: FeatureSpec,
                  train_until: datetime | None, seed: int = 0) -> tuple[pd.DataFrame, int, Any]:
    """A detector's training rows (those before `train_until`; a sample of FIT_ROWS, the same for
    the same seed, when there are more), how many the period holds, and its first time. An
    IsolationForest draws 256 rows per tree, so a 2M-row sample of 10M gives it the same model
    at a fifth of the memory."""
    period_rows, train_from = fetch_one(
        conn, f"SELECT count(*), min(t.ts) FROM {dataset.table} t JOIN {feature_set.table} f USING (tx_row) "
              f"WHERE {PERIOD_SQL}", {"start": None, "end": train_until})
    if period_rows > FIT_ROWS:
        return (load_sample(conn, dataset, feature_set, spec, FIT_ROWS, end=train_until, seed=seed), int(period_rows),
                train_from)
    return load_frame(conn, dataset, feature_set, spec, end=train_until), int(period_rows), train_from


def check_train_until(dataset: Dataset, train_until: datetime | None) -> None:
    """A training period must hold transactions."""
    if train_until is not None and pd.Timestamp(train_until) <= pd.Timestamp(dataset.min_ts):
        raise InvalidInput(f"no transactions before {train_until:%Y-%m-%d} to train on.", field="train_until",
                           hint=f"The dataset runs from {dataset.min_ts:%Y-%m-%d} to {dataset.max_ts:%Y-%m-%d}.")


def score_in_chunks(model: RankingModel, frame: pd.DataFrame, progress: ProgressFn = no_progress) -> np.ndarray:
    """Score `frame` a chunk at a time, so progress moves and memory stays bounded."""
    scores = np.empty(len(frame))
    for start in range(0, len(frame), SCORE_CHUNK):
        stop = min(start + SCORE_CHUNK, len(frame))
        progress(start / len(frame), f"Scoring rows {start + 1:,}-{stop:,} of {len(frame):,}")
        scores[start:stop] = model.decision_function(frame.iloc[start:stop])
    return scores


def score_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, model: RankingModel,
               progress: ProgressFn = no_progress) -> tuple[np.ndarray, np.ndarray]:
    """Every transaction's tx_row and score, in tx_row order, reading the features a chunk at a
    time (`pipeline.stream_frames`): memory holds one chunk and the scores, at any size."""
    tx_rows, scores, done = [], [], 0
    progress(0.0, f"Reading the features of {dataset.row_count:,} rows")  # the first chunk waits for DuckDB's sort
    for chunk in stream_frames(conn, dataset, feature_set, model.spec, SCORE_CHUNK):
        total = max(dataset.row_count, done + len(chunk))  # rows may have arrived since `dataset` was read
        progress(done / total, f"Scoring rows {done + 1:,}-{done + len(chunk):,} of {total:,}")
        tx_rows.append(chunk["tx_row"].to_numpy(dtype=np.int64))
        scores.append(np.asarray(model.decision_function(chunk), dtype=np.float64))
        done += len(chunk)
    if not tx_rows:
        return np.empty(0, dtype=np.int64), np.empty(0)
    return np.concatenate(tx_rows), np.concatenate(scores)


# ---------------------------------------------------------------------------------------------
# Storage (inside the caller's transaction)


def models_dir(conn: duckdb.DuckDBPyConnection) -> Path:
    """The app's own model directory: $CENTINELA_MODELS, else `models/` beside the database file."""
    if os.environ.get(MODELS_ENV):
        folder = Path(os.environ[MODELS_ENV])
    else:
        path = fetch_one(conn, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")[0]
        folder = Path(path).resolve().parent / "models" if path else Path("models")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def fingerprint(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> str:
    """A short hash of the dataset's rows (ids, times, amounts): shows whether a run saw these data."""
    count, hashed = fetch_one(conn, f"SELECT count(*), sum(hash(transaction_id, ts, amount)) FROM {dataset.table}")
    return hashlib.sha256(f"{count}:{hashed}".encode()).hexdigest()[:16]


def next_run_id(conn: duckdb.DuckDBPyConnection) -> int:
    return int(fetch_one(conn, "SELECT nextval('run_ids')")[0])


def write_artifact(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, model: RankingModel) -> tuple[str, str]:
    """Save a run's model into the model directory; returns (file name, SHA-256)."""
    folder = models_dir(conn)
    artifact = f"run-{dataset.id}-{run_id}.joblib"
    keep_tree_explainer(model)  # saved with it: the first case explained needs no build
    joblib.dump(model, folder / artifact, compress=3)
    return artifact, hashlib.sha256((folder / artifact).read_bytes()).hexdigest()


def remove_artifact(conn: duckdb.DuckDBPyConnection, artifact: str) -> None:
    (models_dir(conn) / artifact).unlink(missing_ok=True)


def insert_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, fitted: FittedRun, *, contamination: float,
               spec: FeatureSpec, feature_version: str | None, artifact: tuple[str, str], created_by: str,
               note: str | None = None, kind: str = "detector", base_run_id: int | None = None,
               label_counts: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> None:
    """Record a run and a score per transaction."""
    values = {
        "id": run_id, "dataset_id": dataset.id, "detector": fitted.detector,
        "params": json.dumps(fitted.params, default=json_default), "contamination": contamination,
        "features": json.dumps(spec.as_dict()), "dataset_fingerprint": fingerprint(conn, dataset),
        "train_from": fitted.train_from, "train_until": fitted.train_until, "fit_rows": fitted.fit_rows,
        "sampled": fitted.sampled, "fit_seconds": fitted.fit_seconds, "score_seconds": fitted.score_seconds,
        "metrics": json.dumps(metrics or {}, default=json_default), "artifact": artifact[0],
        "artifact_sha256": artifact[1], "created_by": created_by, "note": note, "kind": kind,
        "base_run_id": base_run_id, "label_counts": json.dumps(label_counts) if label_counts is not None else None,
        "feature_version": feature_version,
    }
    conn.execute(f"INSERT INTO runs ({', '.join(values)}, created_at) VALUES "
                 f"({', '.join('$' + k for k in values)}, current_timestamp::TIMESTAMP)", values)
    replace_scores(conn, run_id, fitted.tx_rows, fitted.scores)


def replace_scores(conn: duckdb.DuckDBPyConnection, run_id: int, tx_rows: np.ndarray, scores: np.ndarray) -> None:
    conn.register("_new_scores", pd.DataFrame({"tx_row": tx_rows, "score": scores}))
    try:
        conn.execute("DELETE FROM scores WHERE run_id = ?", [run_id])
        conn.execute("INSERT INTO scores SELECT ?, tx_row, score FROM _new_scores", [run_id])
    finally:
        conn.unregister("_new_scores")


def store_rescored(conn: duckdb.DuckDBPyConnection, run_id: int, tx_rows: np.ndarray, scores: np.ndarray,
                   feature_version: str | None) -> None:
    """Replace a run's scores with new ones computed on feature version `feature_version`."""
    replace_scores(conn, run_id, tx_rows, scores)
    conn.execute("UPDATE runs SET feature_version = ? WHERE id = ?", [feature_version, int(run_id)])
    store_threshold(conn, run_id)


def store_threshold(conn: duckdb.DuckDBPyConnection, run_id: int) -> float:
    """Compute and keep the run's alert threshold at its contamination (after its scores or its
    contamination changed, in the same transaction)."""
    contamination = fetch_one(conn, "SELECT contamination FROM runs WHERE id = ?", [int(run_id)])[0]
    threshold = stored_threshold(conn, run_id, contamination)
    conn.execute("UPDATE runs SET threshold = ? WHERE id = ?", [threshold, int(run_id)])
    return threshold


def store_metrics(conn: duckdb.DuckDBPyConnection, run_id: int, metrics: dict[str, Any]) -> None:
    conn.execute("UPDATE runs SET metrics = ? WHERE id = ?", [json.dumps(metrics, default=json_default), run_id])


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def set_active(conn: duckdb.DuckDBPyConnection, dataset_id: int, run_id: int, actor: str, action: str) -> int | None:
    """Make a run the one the queue ranks by, recorded in `promotions` (fit, promote or rollback);
    returns the run it replaces."""
    if fetch_one(conn, "SELECT 1 FROM runs WHERE id = ? AND dataset_id = ?", [run_id, dataset_id]) is None:
        raise NotFound(f"run #{run_id} does not belong to this dataset.", field="run")
    previous = fetch_one(conn, "SELECT run_id FROM active_runs WHERE dataset_id = ?", [dataset_id])
    if previous and previous[0] == run_id:
        raise Conflict(f"run #{run_id} is already the active run.", field="run")
    conn.execute("INSERT OR REPLACE INTO active_runs VALUES (?, ?)", [dataset_id, run_id])
    conn.execute("INSERT INTO promotions VALUES (?, ?, ?, ?, current_timestamp::TIMESTAMP)",
                 [dataset_id, run_id, action, actor])
    return previous[0] if previous else None


def update_contamination(conn: duckdb.DuckDBPyConnection, run_id: int, contamination: float) -> tuple[int, float]:
    """Save a new contamination for a run (the scores stay); returns (dataset id, the old one)."""
    before = fetch_one(conn, "SELECT dataset_id, contamination FROM runs WHERE id = ?", [int(run_id)])
    if before is None:
        raise NotFound(f"there is no run #{run_id}.", field="run")
    conn.execute("UPDATE runs SET contamination = ? WHERE id = ?", [float(contamination), int(run_id)])
    return before[0], before[1]


# ---------------------------------------------------------------------------------------------
# Reading scores


def run_scores(conn: duckdb.DuckDBPyConnection, run_id: int) -> np.ndarray:
    """A run's stored scores (any order), as a NumPy array."""
    return conn.execute("SELECT score FROM scores WHERE run_id = ?", [int(run_id)]).fetchnumpy()["score"]


def alert_count(scores: np.ndarray, contamination: float) -> tuple[float, int]:
    """Threshold and number of alerts for a contamination: a quantile and a count, no refit."""
    threshold = threshold_for(scores, contamination)
    return threshold, int((scores >= threshold).sum())


def alert_count_sorted(ordered: np.ndarray, contamination: float) -> tuple[float, int]:
    """`alert_count` on scores already sorted ascending: an index and a binary search instead of a
    quantile pass and a count (what a slider needs at 10M scores). The index is
    np.quantile(method="higher")'s own arithmetic, so the threshold is the same value (scores are
    never NaN: the column is NOT NULL and detectors map NaN to the lowest score)."""
    check_contamination(contamination)
    if not len(ordered):
        return float("nan"), 0
    threshold = float(ordered[int(np.ceil((1 - contamination) * (len(ordered) - 1)))])
    return threshold, int(len(ordered) - np.searchsorted(ordered, threshold, side="left"))


def run_threshold(conn: duckdb.DuckDBPyConnection, run: Run) -> float:
    """A run's alert threshold: the one stored with it, else computed from its stored scores (older runs)."""
    return run.threshold if run.threshold is not None else stored_threshold(conn, run.id, run.contamination)


def stored_threshold(conn: duckdb.DuckDBPyConnection, run_id: int, contamination: float) -> float:
    """`threshold_for` computed in DuckDB over a run's stored scores, without loading them: NumPy's
    'higher' quantile is the value at ascending index ceil((n - 1) * (1 - c))."""
    q = 1 - check_contamination(contamination)
    n = fetch_one(conn, "SELECT count(*) FROM scores WHERE run_id = ?", [int(run_id)])[0]
    if not n:
        raise NotFound(f"run #{run_id} has no scores.", field="run")
    index = math.ceil((n - 1) * q)  # the same float arithmetic as NumPy's
    return float(fetch_one(conn, "SELECT score FROM scores WHERE run_id = ? ORDER BY score DESC LIMIT 1 OFFSET ?",
                           [int(run_id), n - 1 - index])[0])


def stored_score(conn: duckdb.DuckDBPyConnection, run_id: int, tx_row: int) -> float | None:
    """A transaction's stored score under a run (None if the run did not score it)."""
    row = fetch_one(conn, "SELECT score FROM scores WHERE run_id = ? AND tx_row = ?", [int(run_id), int(tx_row)])
    return float(row[0]) if row else None


def score_rank(conn: duckdb.DuckDBPyConnection, run_id: int, score: float) -> tuple[int, int]:
    """Where a score ranks in its run: (1 for the highest, number of transactions)."""
    above, total = fetch_one(conn, "SELECT count(*) FILTER (score > $s), count(*) FROM scores WHERE run_id = $run",
                             {"run": int(run_id), "s": float(score)})
    return int(above) + 1, int(total)


def evaluate_run(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    run: Run,
    contamination: float | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    k: int = 100,
    ranked: tuple[pd.DataFrame, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Metrics of a run's stored scores; by default on the period after training (time-aware).
    `ranked`: the period's labelled frame and its threshold-free metrics at `k`, when the caller
    has them (saving a run computes them once for its stored figures)."""
    if start is None and end is None and run.train_until is not None:
        start = run.train_until
    threshold = threshold_for(run_scores(conn, run.id), contamination or run.contamination)
    if ranked is None:
        frame = labelled_frame(conn, dataset, run.id, start, end)
        metrics = evaluate(frame, threshold, k, known_compromised_cards(conn, dataset, start))
    else:
        frame, ranking = ranked
        metrics = {**ranking, **threshold_metrics(frame, threshold)}
    metrics["period"] = {"from": str(start) if start else None, "until": str(end) if end else None,
                         "in_sample": run.train_until is None and start is None}
    return metrics


# ---------------------------------------------------------------------------------------------
# Artifacts


def load_model(conn: duckdb.DuckDBPyConnection, run: Run) -> RankingModel:
    """Load a run's model, only from the app's model directory and only if its hash matches."""
    folder = models_dir(conn)
    path = (folder / run.artifact).resolve()
    if path.parent != folder or Path(run.artifact).name != run.artifact:
        raise Conflict(f"run #{run.id}'s artifact is outside the model directory; refusing to load it.")
    if not path.is_file():
        raise NotFound(f"run #{run.id}'s model file {path.name} is missing from {folder}.", hint="Fit the run again.")
    if hashlib.sha256(path.read_bytes()).hexdigest() != run.artifact_sha256:
        raise Conflict(f"run #{run.id}'s model file {path.name} has changed since it was saved; refusing to load it.")
    try:
        model = joblib.load(path)
    except (AttributeError, ModuleNotFoundError, ImportError) as exc:  # pickled classes that no longer exist
        raise Conflict(f"run #{run.id}'s model was saved by an older version of Centinela ({exc}).",
                       hint="Fit it again.") from None
    if not isinstance(model, RankingModel):
        raise Conflict(f"run #{run.id}'s model was saved by an older version of Centinela.", hint="Fit it again.")
    return model


def default_split(dataset: Dataset) -> datetime:
    """Where time-aware validation splits by default: train on the first 70% of the period."""
    return pd.Timestamp(dataset.min_ts + (dataset.max_ts - dataset.min_ts) * 0.7).floor("D").to_pydatetime()

