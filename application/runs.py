"""Detector runs: fit one (and make it the active run), save a threshold, switch the active run,
score again, evaluate; the active run and its threshold, which every investigation view reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from application.context import Context
from application.datasets import DatasetRef, ensure_features, generate
from data import webhooks
from data.audit import record
from data.datasets import Dataset
from data.demo import DEMO_NAME, demo_rows
from data.errors import Conflict, NotFound
from data.synthetic import SyntheticConfig
from detectors import run_figures
from detectors import runs as run_store
from detectors.base import DEFAULT_CONTAMINATION, DEFAULT_DETECTOR, check_contamination
from detectors.evaluation import labelled_frame
from detectors.pipeline import FeatureSpec, default_feature_spec, validate_spec
from detectors.runs import FittedRun, Run
from integrations import mlflow_tracking


@dataclass(frozen=True)
class ActiveRun:
    """The run the queue ranks by and the score at or above which a transaction is an alert."""

    run: Run
    threshold: float

    @property
    def pivot(self) -> float:
        """The decision point 'least certain first' sorts around: the threshold for a detector
        run's anomaly scores, 0.5 for a learned version's fraud probabilities."""
        return 0.5 if self.run.kind == "supervised" else self.threshold


def fit(ctx: Context, dataset: DatasetRef, detectors: list[str], params: dict[str, dict[str, Any]] | None = None, *,
        contamination: float = DEFAULT_CONTAMINATION, combine: str = "mean", train_until: datetime | None = None,
        categorical: list[str] | tuple[str, ...] = (), random_state: int = 0, note: str | None = None,
        activate: bool = True) -> Run:
    """Fit a detector (several: an ensemble) on rows before `train_until`, score every
    transaction, record the run with its metrics, and (by default) make it the active run.

    Everything that can refuse does so before any work is done or stored; the fit and scoring
    run before the unit of work, which then writes the run, its scores, metrics and audit row.
    """
    check_contamination(contamination)
    detector = run_store.build_detector(detectors, params, combine, random_state)
    target = ctx.dataset(dataset)
    detector.check_rows(target.row_count, "score")
    run_store.check_train_until(target, train_until)
    feature_set = ensure_features(ctx, target)
    spec = validate_spec(FeatureSpec(list(feature_set.computed), list(categorical)) if categorical
                         else default_feature_spec(feature_set), target, feature_set)
    ctx.progress(0.02, "Loading features")
    fitted = run_store.fit_detector(ctx.conn, target, feature_set, detector, spec, train_until=train_until,
                                    progress=ctx.progress)
    ctx.progress(0.88, "Saving the run")
    run = store_fitted(ctx, target, fitted, spec, feature_set.version, contamination=contamination, note=note,
                       activate=activate)
    ctx.progress(1.0, f"Run #{run.id}: fitted in {run.fit_seconds:.1f} s, scored {len(fitted.scores):,} rows "
                      f"in {run.score_seconds:.1f} s")
    return run


def store_fitted(ctx: Context, dataset: Dataset, fitted: FittedRun, spec: FeatureSpec, feature_version: str | None, *,
                 contamination: float, note: str | None = None, activate: bool = False, kind: str = "detector",
                 base_run_id: int | None = None, label_counts: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None) -> Run:
    """Write a fitted run (artifact file, run row, scores, metrics, audit row, activation) in one
    unit of work; the artifact is removed again if the unit of work fails."""
    run_id = run_store.next_run_id(ctx.conn)
    artifact = run_store.write_artifact(ctx.conn, dataset, run_id, fitted.model)
    try:
        with ctx.unit_of_work() as conn:
            run_store.insert_run(conn, dataset, run_id, fitted, contamination=contamination, spec=spec,
                                 feature_version=feature_version, artifact=artifact, created_by=ctx.actor, note=note,
                                 kind=kind, base_run_id=base_run_id, label_counts=label_counts, metrics=metrics)
            run_store.store_threshold(conn, run_id)
            # Its threshold-free figures (what the Detect page opens on) and, for a detector run,
            # its metrics: both on the period after training, from one frame and one ranking.
            saved = run_store.get_run(conn, run_id)
            frame = labelled_frame(conn, dataset, run_id, saved.train_until)
            ranking, _ = run_figures.store(conn, dataset, saved, run_figures.DEFAULT_K, frame)
            if metrics is None:  # a detector run is judged on its stored scores, after its training period
                run_store.store_metrics(conn, run_id, run_store.evaluate_run(conn, dataset, saved, k=run_figures.DEFAULT_K,
                                                                             ranked=(frame, ranking)))
            record(conn, ctx.actor, "retrain" if kind == "supervised" else "fit", dataset_id=dataset.id,
                   target=f"run #{run_id}", after={"detector": fitted.detector, "params": fitted.params,
                                                   "contamination": contamination, "train_until": fitted.train_until,
                                                   "rows": fitted.fit_rows, "labels": label_counts,
                                                   "built_on": base_run_id, "features": feature_version})
            if activate:
                previous = run_store.set_active(conn, dataset.id, run_id, ctx.actor, "fit")
                announce_active(ctx, conn, dataset, saved, "fit", previous)
    except BaseException:
        run_store.remove_artifact(ctx.conn, artifact[0])
        raise
    run = run_store.get_run(ctx.conn, run_id)
    track(ctx, f"log run #{run_id}", mlflow_tracking.log_run, ctx.conn, dataset, run)
    if activate:
        track(ctx, f"register run #{run_id}", mlflow_tracking.register_active, ctx.conn, dataset, run, "fit")
    return run


def track(ctx: Context, what: str, call, *args, **kwargs) -> None:
    """An MLflow call after the action committed (when $MLFLOW_TRACKING_URI is set): a failure is
    reported on the progress line, the action stands."""
    problem = mlflow_tracking.safely(what, call, *args, **kwargs)
    if problem:
        ctx.progress(1.0, problem)


def save_threshold(ctx: Context, run_id: int, contamination: float) -> Run:
    """Save a new contamination (share of transactions that are alerts) for a run; no refit."""
    contamination = check_contamination(contamination)
    with ctx.unit_of_work() as conn:
        dataset_id, before = run_store.update_contamination(conn, run_id, contamination)
        run_store.store_threshold(conn, run_id)
        record(conn, ctx.actor, "threshold", dataset_id=dataset_id, target=f"run #{run_id}",
               before={"contamination": before}, after={"contamination": contamination})
    return run_store.get_run(ctx.conn, run_id)


_ANY = object()


def activate(ctx: Context, dataset: DatasetRef, run_id: int, action: str | None = None, *,
             details: dict[str, Any] | None = None, expected_active: int | None | object = _ANY) -> Run:
    """Make a run (a detector run or a learned version) the one the queue ranks by. Recorded as
    a promotion when it is newer than the active run, a rollback when it is older (or as the
    `action` given), with `details` (e.g. the evaluation gate's comparison) in the audit row.
    With `expected_active`, refused (Conflict) if another run became active meanwhile."""
    with ctx.unit_of_work() as conn:
        target = ctx.dataset(dataset)
        current = run_store.active_run(conn, target)
        if expected_active is not _ANY and (current.id if current else None) != expected_active:
            raise Conflict(f"run #{current.id if current else None} became active meanwhile; nothing was changed.",
                           field="version", hint="Compare again against the version that is active now.")
        if action is None:
            action = "promote" if current is None or int(run_id) > current.id else "rollback"
        previous = run_store.set_active(conn, target.id, int(run_id), ctx.actor, action)
        record(conn, ctx.actor, action, dataset_id=target.id, target=f"run #{run_id}",
               before={"run": previous}, after={"run": int(run_id), **(details or {})})
        run = run_store.get_run(conn, int(run_id))
        announce_active(ctx, conn, target, run, action, previous)
    track(ctx, f"register run #{run.id}", mlflow_tracking.register_active, ctx.conn, target, run, action)
    return run


def announce_active(ctx: Context, conn, dataset: Dataset, run: Run, action: str, previous: int | None) -> None:
    """The `model.promoted` webhook event: another run now ranks the queue (in the caller's transaction)."""
    webhooks.enqueue(conn, "model.promoted", dataset.id, dataset.name,
                     [{"action": action, "version": run.id, "kind": run.kind, "detector": run.detector,
                       "feature_version": run.feature_version, "threshold": run_store.run_threshold(conn, run),
                       "previous_version": previous, "by": ctx.actor}], ctx.clock())


def active(ctx: Context, dataset: DatasetRef) -> ActiveRun | None:
    """The dataset's active run and its alert threshold, or None before any fit."""
    run = run_store.active_run(ctx.conn, dataset if isinstance(dataset, Dataset) else ctx.dataset(dataset))
    if run is None:
        return None
    threshold = run_store.run_threshold(ctx.conn, run)
    return ActiveRun(run, threshold)


def require_active(ctx: Context, dataset: DatasetRef) -> ActiveRun:
    found = active(ctx, dataset)
    if found is None:
        target = ctx.dataset(dataset)
        raise NotFound(f"dataset {target.name!r} has no runs yet, so there are no alerts.",
                       hint="Fit a detector on the Detect & tune page, or: "
                            f"centinela fit {target.name!r} --detector {DEFAULT_DETECTOR}")
    return found


@dataclass(frozen=True)
class Rescored:
    run: Run
    rows: int
    threshold: float
    alerts: int
    contamination: float


def rescore(ctx: Context, dataset: DatasetRef, run_id: int | None = None, contamination: float | None = None) -> Rescored:
    """Score the dataset again with a run's saved model and replace its stored scores."""
    target = ctx.dataset(dataset)
    run = run_store.run_of(ctx.conn, target, run_id)
    contamination = check_contamination(contamination or run.contamination)
    model = run_store.load_model(ctx.conn, run)
    model.check_rows(target.row_count, "score")  # refuse before loading any rows
    feature_set = ensure_features(ctx, target)
    tx_rows, scores = run_store.score_rows(ctx.conn, target, feature_set, model, ctx.progress)
    with ctx.unit_of_work() as conn:
        run_store.store_rescored(conn, run.id, tx_rows, scores, feature_set.version)
        record(conn, ctx.actor, "rescore", dataset_id=target.id, target=f"run #{run.id}",
               after={"rows": len(scores), "feature_version": feature_set.version})
    ctx.progress(1.0, f"Scored {len(scores):,} rows")
    threshold, alerts = run_store.alert_count(scores, contamination)
    return Rescored(run_store.get_run(ctx.conn, run.id), len(scores), threshold, alerts, contamination)


def evaluate_run(ctx: Context, dataset: DatasetRef, run_id: int | None = None, *, contamination: float | None = None,
                 start: datetime | None = None, end: datetime | None = None, k: int = 100) -> tuple[Run, dict[str, Any]]:
    """A run's metrics against the labels; by default on the period after its training."""
    target = ctx.dataset(dataset)
    run = run_store.run_of(ctx.conn, target, run_id)
    if contamination is not None:
        check_contamination(contamination)
    return run, run_store.evaluate_run(ctx.conn, target, run, contamination, start, end, k)


def create_demo(ctx: Context) -> Run:
    """The demo dataset a new database starts with, its features, and the default detector
    trained on the first 70% of its period, so every page has something to show."""
    progress = ctx.progress
    created = generate(ctx.with_progress(lambda f, m: progress(f * 0.7, m)), DEMO_NAME, SyntheticConfig(rows=demo_rows()))
    return fit(ctx.with_progress(lambda f, m: progress(0.7 + f * 0.3, m)), created.dataset, [DEFAULT_DETECTOR],
               train_until=run_store.default_split(created.dataset))
