"""Runs: every detector fit, recorded in DuckDB with its scores and a model artifact file.

Artifacts are written by the app into its own model directory (`models/` beside the database,
or $CENTINELA_MODELS) and loaded only from there, after checking the SHA-256 recorded with the
run, so a model file can never come from an upload or another folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import joblib
import numpy as np
import pandas as pd

from data.audit import record
from data.datasets import Dataset
from data.db import ProgressFn, fetch_one, no_progress, transaction
from data.errors import DataError
from detectors.base import REGISTRY, Detector, check_contamination, make_detector, threshold_for
from detectors.ensemble import Ensemble
from detectors.evaluation import evaluate, labelled_frame
from detectors.pipeline import FeatureSpec, Model, default_feature_spec, ensure_features, load_frame, validate_spec

MODELS_ENV = "CENTINELA_MODELS"
DEFAULT_CONTAMINATION = 0.01
DEFAULT_DETECTOR = "isolation_forest"
SCORE_CHUNK = 200_000


@dataclass(frozen=True)
class Run:
    id: int
    dataset_id: int
    detector: str
    params: dict[str, Any]
    contamination: float
    features: dict[str, list[str]]
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

    @property
    def label(self) -> str:
        return f"#{self.id} {self.detector} ({self.created_at:%Y-%m-%d %H:%M})"


_RUN_COLUMNS = ("id, dataset_id, detector, params, contamination, features, dataset_fingerprint, train_from, train_until, "
                "fit_rows, sampled, fit_seconds, score_seconds, metrics, artifact, artifact_sha256, created_at, created_by, note")


_RUN_SELECT = _RUN_COLUMNS + ", kind, base_run_id, label_counts"


def _run_from(row: tuple) -> Run:
    values = list(row)
    for i in (3, 5, 13):
        values[i] = json.loads(values[i])
    values[21] = json.loads(values[21]) if values[21] else None
    return Run(*values)


def models_dir(conn: duckdb.DuckDBPyConnection) -> Path:
    """The app's own model directory: $CENTINELA_MODELS, else `models/` beside the database file."""
    if os.environ.get(MODELS_ENV):
        folder = Path(os.environ[MODELS_ENV])
    else:
        path = fetch_one(conn, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")[0]
        folder = Path(path).resolve().parent / "models" if path else Path("models")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def default_split(dataset: Dataset) -> datetime:
    """Where time-aware validation splits by default: train on the first 70% of the period."""
    return pd.Timestamp(dataset.min_ts + (dataset.max_ts - dataset.min_ts) * 0.7).floor("D").to_pydatetime()


def fingerprint(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> str:
    """A short hash of the dataset's rows (ids, times, amounts): shows whether a run saw these data."""
    count, hashed = fetch_one(conn, f"SELECT count(*), sum(hash(transaction_id, ts, amount)) FROM {dataset.table}")
    return hashlib.sha256(f"{count}:{hashed}".encode()).hexdigest()[:16]


def build_detector(names: list[str], params: dict[str, dict[str, Any]] | None = None,
                   combine: str = "mean", seed: int = 0) -> Detector:
    """One detector, or an ensemble of several."""
    params = params or {}
    if not names:
        raise DataError("no detector selected.", hint=f"Choose one or more of: {', '.join(REGISTRY)}.")
    if len(names) == 1:
        return make_detector(names[0], params.get(names[0]), seed=seed)
    return Ensemble.of(names, params, combine=combine, seed=seed)


def fit_run(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    names: list[str],
    params: dict[str, dict[str, Any]] | None = None,
    *,
    contamination: float = DEFAULT_CONTAMINATION,
    combine: str = "mean",
    train_until: datetime | None = None,
    spec: FeatureSpec | None = None,
    seed: int = 0,
    created_by: str = "cli",
    note: str | None = None,
    activate: bool = True,
    progress: ProgressFn = no_progress,
) -> Run:
    """Fit on rows before `train_until` (all rows if None), score every row, record the run."""
    # Everything that can refuse does so before any work is done or stored.
    check_contamination(contamination)
    detector = build_detector(names, params, combine, seed)
    detector.check_rows(dataset.row_count, "score")
    if train_until is not None and pd.Timestamp(train_until) <= pd.Timestamp(dataset.min_ts):
        raise DataError(f"no transactions before {train_until:%Y-%m-%d} to train on.",
                        hint=f"The dataset runs from {dataset.min_ts:%Y-%m-%d} to {dataset.max_ts:%Y-%m-%d}.")
    progress(0.02, "Loading features")
    feature_set = ensure_features(conn, dataset)
    spec = validate_spec(spec or default_feature_spec(feature_set), dataset, feature_set)
    frame = load_frame(conn, dataset, feature_set, spec)
    train = frame if train_until is None else frame[frame["ts"] < pd.Timestamp(train_until)]

    model = Model(detector, spec)
    sample_note = f" (on a {detector.fit_sample:,}-row sample)" if detector.fit_sample and len(train) > detector.fit_sample else ""
    progress(0.10, f"Fitting {detector.title} on {len(train):,} rows{sample_note}")
    started = time.perf_counter()
    model.fit(train)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    scores = _score_in_chunks(model, frame, lambda f, m: progress(0.40 + 0.45 * f, m))
    score_seconds = time.perf_counter() - started

    progress(0.88, "Saving the run")
    detector_name = names[0] if len(names) == 1 else "ensemble"
    run_id = save_run(conn, dataset, model, frame["tx_row"].to_numpy(), scores, detector=detector_name,
                      params=detector.get_params(), contamination=contamination, train_from=train["ts"].min(),
                      train_until=train_until, fit_rows=len(train), sampled=bool(detector.sampled_),
                      fit_seconds=fit_seconds, score_seconds=score_seconds, created_by=created_by, note=note,
                      activate=activate)
    progress(0.95, "Evaluating")
    run = get_run(conn, run_id)
    metrics = evaluate_run(conn, dataset, run)
    conn.execute("UPDATE runs SET metrics = ? WHERE id = ?", [json.dumps(metrics, default=_json_default), run_id])
    progress(1.0, f"Run #{run_id}: fitted in {fit_seconds:.1f} s, scored {len(frame):,} rows in {score_seconds:.1f} s")
    return get_run(conn, run_id)


def save_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset, model: Any, tx_rows: np.ndarray, scores: np.ndarray, *,
             detector: str, params: dict[str, Any], contamination: float, train_from: Any, train_until: Any,
             fit_rows: int, sampled: bool, fit_seconds: float, score_seconds: float, created_by: str,
             note: str | None = None, activate: bool = True, kind: str = "detector", base_run_id: int | None = None,
             label_counts: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None) -> int:
    """Write the model file and record the run with a score per transaction, all or nothing."""
    run_id = fetch_one(conn, "SELECT nextval('run_ids')")[0]
    folder = models_dir(conn)
    artifact = f"run-{dataset.id}-{run_id}.joblib"
    joblib.dump(model, folder / artifact, compress=3)
    digest = hashlib.sha256((folder / artifact).read_bytes()).hexdigest()
    conn.register("_new_scores", pd.DataFrame({"tx_row": tx_rows, "score": scores}))
    try:
        with transaction(conn):
            conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS}, kind, base_run_id, label_counts) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP, ?, ?, ?, ?, ?)",
                [run_id, dataset.id, detector, json.dumps(params, default=_json_default), contamination,
                 json.dumps(model.spec.as_dict()), fingerprint(conn, dataset), train_from, train_until,
                 fit_rows, sampled, fit_seconds, score_seconds, json.dumps(metrics or {}, default=_json_default),
                 artifact, digest, created_by, note, kind, base_run_id,
                 json.dumps(label_counts) if label_counts is not None else None],
            )
            conn.execute("INSERT INTO scores SELECT ?, tx_row, score FROM _new_scores", [run_id])
            record(conn, created_by, "retrain" if kind == "supervised" else "fit", dataset_id=dataset.id,
                   target=f"run #{run_id}", after={"detector": detector, "params": params, "contamination": contamination,
                                                   "train_until": train_until, "rows": fit_rows,
                                                   "labels": label_counts, "built_on": base_run_id})
            if activate:
                set_active_run(conn, dataset.id, run_id, created_by)
    except BaseException:
        (folder / artifact).unlink(missing_ok=True)
        raise
    finally:
        conn.unregister("_new_scores")
    return run_id


def _score_in_chunks(model: Model, frame: pd.DataFrame, progress: ProgressFn) -> np.ndarray:
    """Score `frame` a chunk at a time, so progress moves and memory stays bounded."""
    scores = np.empty(len(frame))
    for start in range(0, len(frame), SCORE_CHUNK):
        stop = min(start + SCORE_CHUNK, len(frame))
        progress(start / len(frame), f"Scoring rows {start + 1:,}-{stop:,} of {len(frame):,}")
        scores[start:stop] = model.score(frame.iloc[start:stop])
    return scores


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def evaluate_run(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    run: Run,
    contamination: float | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    k: int = 100,
) -> dict[str, Any]:
    """Metrics of a run's stored scores; by default on the period after training (time-aware)."""
    if start is None and end is None and run.train_until is not None:
        start = run.train_until
    frame = labelled_frame(conn, dataset, run.id, start, end)
    threshold = threshold_for(run_scores(conn, run.id), contamination or run.contamination)
    metrics = evaluate(frame, threshold, k)
    metrics["period"] = {"from": str(start) if start else None, "until": str(end) if end else None,
                         "in_sample": run.train_until is None and start is None}
    return metrics


def get_run(conn: duckdb.DuckDBPyConnection, run_id: int) -> Run:
    row = fetch_one(conn, f"SELECT {_RUN_SELECT} FROM runs WHERE id = ?", [int(run_id)])
    if row is None:
        raise DataError(f"no run #{run_id}.")
    return _run_from(row)


def list_runs(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> list[Run]:
    rows = conn.execute(f"SELECT {_RUN_SELECT} FROM runs WHERE dataset_id = ? ORDER BY id", [dataset.id]).fetchall()
    return [_run_from(r) for r in rows]


def set_active_run(conn: duckdb.DuckDBPyConnection, dataset_id: int, run_id: int, actor: str = "cli",
                   action: str = "fit") -> None:
    """Make a run the one the queue ranks by; recorded in `promotions` (fit, promote or rollback)."""
    if fetch_one(conn, "SELECT 1 FROM runs WHERE id = ? AND dataset_id = ?", [run_id, dataset_id]) is None:
        raise DataError(f"run #{run_id} does not belong to this dataset.")
    if action != "fit":  # a fit is audited with the run itself
        previous = fetch_one(conn, "SELECT run_id FROM active_runs WHERE dataset_id = ?", [dataset_id])
        record(conn, actor, action, dataset_id=dataset_id, target=f"run #{run_id}",
               before={"run": previous[0] if previous else None}, after={"run": run_id})
    conn.execute("INSERT OR REPLACE INTO active_runs VALUES (?, ?)", [dataset_id, run_id])
    conn.execute("INSERT INTO promotions VALUES (?, ?, ?, ?, current_timestamp::TIMESTAMP)",
                 [dataset_id, run_id, action, actor])


def active_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> Run | None:
    row = fetch_one(conn, "SELECT run_id FROM active_runs WHERE dataset_id = ?", [dataset.id])
    return get_run(conn, row[0]) if row else None


def resolve_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int | None) -> Run:
    """The given run of the dataset, else its active run; a clear error if there is none."""
    if run_id is None:
        run = active_run(conn, dataset)
        if run is None:
            raise DataError(f"dataset {dataset.name!r} has no runs yet.", hint=f"Fit one: centinela fit {dataset.name!r} --detector isolation_forest")
        return run
    run = get_run(conn, run_id)
    if run.dataset_id != dataset.id:
        raise DataError(f"run #{run_id} belongs to another dataset.")
    return run


def set_contamination(conn: duckdb.DuckDBPyConnection, run_id: int, contamination: float, actor: str = "cli") -> None:
    """Save a new contamination (threshold) for a run; the scores stay as they are."""
    check_contamination(contamination)
    with transaction(conn):
        before = fetch_one(conn, "SELECT dataset_id, contamination FROM runs WHERE id = ?", [int(run_id)])
        if before is None:
            raise DataError(f"there is no run #{run_id}.")
        conn.execute("UPDATE runs SET contamination = ? WHERE id = ?", [float(contamination), int(run_id)])
        record(conn, actor, "threshold", dataset_id=before[0], target=f"run #{run_id}",
               before={"contamination": before[1]}, after={"contamination": float(contamination)})


def run_scores(conn: duckdb.DuckDBPyConnection, run_id: int) -> np.ndarray:
    """A run's stored scores (any order), as a NumPy array."""
    return conn.execute("SELECT score FROM scores WHERE run_id = ?", [int(run_id)]).fetchnumpy()["score"]


def alert_count(scores: np.ndarray, contamination: float) -> tuple[float, int]:
    """Threshold and number of alerts for a contamination: a quantile and a count, no refit."""
    threshold = threshold_for(scores, contamination)
    return threshold, int((scores >= threshold).sum())


def load_model(conn: duckdb.DuckDBPyConnection, run: Run) -> Model:
    """Load a run's model, only from the app's model directory and only if its hash matches."""
    folder = models_dir(conn)
    path = (folder / run.artifact).resolve()
    if path.parent != folder or Path(run.artifact).name != run.artifact:
        raise DataError(f"run #{run.id}'s artifact is outside the model directory; refusing to load it.")
    if not path.is_file():
        raise DataError(f"run #{run.id}'s model file {path.name} is missing from {folder}.",
                        hint="Fit the run again.")
    if hashlib.sha256(path.read_bytes()).hexdigest() != run.artifact_sha256:
        raise DataError(f"run #{run.id}'s model file {path.name} has changed since it was saved; refusing to load it.")
    return joblib.load(path)


def rescore(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, progress: ProgressFn = no_progress) -> np.ndarray:
    """Score the dataset again with a run's saved model and replace its stored scores."""
    model = load_model(conn, run)
    model.detector.check_rows(dataset.row_count, "score")  # refuse before loading any rows
    feature_set = ensure_features(conn, dataset)
    frame = load_frame(conn, dataset, feature_set, FeatureSpec(**run.features))
    scores = _score_in_chunks(model, frame, progress)
    conn.register("_new_scores", pd.DataFrame({"tx_row": frame["tx_row"].to_numpy(), "score": scores}))
    try:
        with transaction(conn):
            conn.execute("DELETE FROM scores WHERE run_id = ?", [run.id])
            conn.execute("INSERT INTO scores SELECT ?, tx_row, score FROM _new_scores", [run.id])
    finally:
        conn.unregister("_new_scores")
    progress(1.0, f"Scored {len(frame):,} rows")
    return scores

