"""Versions learned from labels: train one, promote it to rank the queue, roll back; the
registry of every run and version, and drift."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from application.context import Context
from application.datasets import DatasetRef, ensure_features
from application.gate_settings import DEFAULT_GATE_DAYS, DEFAULT_GATE_METRIC, GATE_METRICS
from application.runs import activate, store_fitted
from data.audit import record
from data.db import fetch_one
from data.errors import Conflict, InvalidInput
from detectors import runs as run_store
from detectors.drift import DriftReport, drift_report
from detectors.evaluation import known_compromised_cards, labelled_frame, ranking_metrics
from detectors.registry import model_registry
from detectors.runs import Run
from detectors.supervised import (
    DEFAULT_IMBALANCE,
    DEFAULT_MODEL,
    MIN_VALIDATION_PER_CLASS,
    labelled_sql,
    train_version,
)


def retrain(ctx: Context, dataset: DatasetRef, *, model: str = DEFAULT_MODEL, imbalance: str = DEFAULT_IMBALANCE,
            params: dict[str, Any] | None = None, search: int = 0, base_run_id: int | None = None,
            use_truth: bool = True, train_until: datetime | None = None, hold_out_days: int | None = None,
            random_state: int = 0, should_stop: Callable[[], bool] = lambda: False) -> Run:
    """Train a new model version on the labels (before `train_until`), optionally searching its
    parameters over `search` configurations on time-ordered folds first; validated on the newest
    labels beside the detector run it builds on. It is not promoted. A stopped search
    (`should_stop`) trains and stores nothing. `hold_out_days` trains on labels before the last
    labelled N days instead (`labelled_window`), so `promote_if_better` judges it on labels it
    never saw."""
    target = ctx.dataset(dataset)
    if hold_out_days is not None:
        if train_until is not None:
            raise InvalidInput("give either a date to train until or days to hold out, not both.", field="hold_out_days")
        train_until = labelled_window(ctx, target, hold_out_days, use_truth=use_truth)[0]
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


def labelled_window(ctx: Context, dataset: DatasetRef, days: int = DEFAULT_GATE_DAYS, *,
                    use_truth: bool = True) -> tuple[datetime, datetime]:
    """The last `days` days of labelled transactions: from `days` before the newest labelled
    transaction (an analyst's label, else, with `use_truth`, the dataset's label column; 'unsure'
    does not count) up to and including it."""
    if not 1 <= int(days) <= 366:
        raise InvalidInput(f"the labelled window is 1 to 366 days, not {days}.", field="days")
    target = ctx.dataset(dataset)
    newest = fetch_one(ctx.conn, f"SELECT max(ts) FROM ({labelled_sql(target, use_truth)})",
                       {"dataset": target.id, "until": None})[0]
    if newest is None:
        raise InvalidInput(f"dataset {target.name!r} has no labels yet.", hint=f"Label cases: centinela label {target.name!r} --file labels.csv")
    return newest - timedelta(days=int(days)), newest


@dataclass(frozen=True)
class GateResult:
    """What `promote_if_better` decided and on what: the candidate's and the active version's
    metrics on the same labelled rows."""

    promoted: bool
    reason: str
    metric: str
    candidate: dict[str, Any]
    active: dict[str, Any] | None
    judged_on: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"promoted": self.promoted, "reason": self.reason, "metric": self.metric,
                "candidate": self.candidate, "active": self.active, "judged_on": self.judged_on}


def _saw_labels(run: Run, start: datetime) -> bool:
    """Whether a run was fitted on labels of transactions at or after `start`: a learned version
    trained without a cut-off (or a later one) was; a detector run learns from no label."""
    return run.kind == "supervised" and (run.train_until is None or run.train_until > start)


def _judged(run: Run, metrics: dict[str, Any], start: datetime) -> dict[str, Any]:
    return {"version": run.id, "kind": run.kind, "model": run.detector, "trained_until": run.train_until,
            "saw_these_labels": _saw_labels(run, start), **metrics}


def promote_if_better(ctx: Context, dataset: DatasetRef, run_id: int, *, metric: str = DEFAULT_GATE_METRIC,
                      days: int = DEFAULT_GATE_DAYS, k: int = 100) -> GateResult:
    """The evaluation gate: judge a candidate version and the active one on the same labelled
    rows of the last `days` labelled days (`labelled_window`), from after both were trained where
    a version has a cut-off (`trained_until`), and promote the candidate only if it is strictly
    better on `metric`. Either way one audit row ("promote", or "promote_refused") records the
    comparison, in the unit of work that promotes. Too few labels to compare is an error."""
    if metric not in GATE_METRICS:
        raise InvalidInput(f"unknown metric {metric!r}; the gate compares {', '.join(GATE_METRICS)}.", field="metric")
    target = ctx.dataset(dataset)
    candidate = run_store.run_of(ctx.conn, target, int(run_id))
    current = run_store.active_run(ctx.conn, target)
    if current is not None and current.id == candidate.id:
        raise Conflict(f"version #{candidate.id} already ranks the queue of {target.name!r}.", field="version")
    window_from, newest = labelled_window(ctx, target, days)
    # After both learned versions' label cut-offs, so neither is judged on labels it was trained on
    # where that can be avoided (a detector run learns from no label: its cut-off does not count).
    start = max([window_from, *(r.train_until for r in (candidate, current)
                                if r is not None and r.kind == "supervised" and r.train_until)])
    end = newest + timedelta(microseconds=1)  # the newest labelled transaction included
    frames = {r.id: labelled_frame(ctx.conn, target, r.id, start, end) for r in (candidate, current) if r is not None}
    labelled = [f[f["y"].notna()] for f in frames.values()]
    common = set(labelled[0]["tx_row"]).intersection(*(set(f["tx_row"]) for f in labelled[1:]))
    fraud = int(labelled[0].loc[labelled[0]["tx_row"].isin(common), "y"].sum())
    legitimate = len(common) - fraud
    judged_on = {"from": start, "until": newest, "days": int(days), "labelled": len(common), "fraud": fraud,
                 "legitimate": legitimate, "window_from": window_from,
                 "note": ("both versions' scores on the labelled transactions from 'from' to 'until' inclusive "
                          "(the last labelled days, after each version's training cut-off where it has one); "
                          "'saw_these_labels' says whether a version was fitted on some of them")}
    if fraud < MIN_VALIDATION_PER_CLASS or legitimate < MIN_VALIDATION_PER_CLASS:
        raise InvalidInput(
            f"too few labels to compare version #{candidate.id} with the active one on {start:%Y-%m-%d %H:%M} to "
            f"{newest:%Y-%m-%d %H:%M}: {fraud:,} fraud and {legitimate:,} legitimate; at least "
            f"{MIN_VALIDATION_PER_CLASS} of each are needed.",
            field="days", hint="Label more of the last days' cases, widen --days, or retrain with an earlier cut-off "
                               "(centinela retrain --hold-out-days N).")
    known = known_compromised_cards(ctx.conn, target, start)
    scored = {rid: ranking_metrics(f[f["tx_row"].isin(common) | f["y"].isna()], k, known) for rid, f in frames.items()}
    mine = _judged(candidate, scored[candidate.id], start)
    theirs = _judged(current, scored[current.id], start) if current is not None else None
    value = mine[metric]
    if value is None:
        raise InvalidInput(f"{metric} of version #{candidate.id} cannot be computed on these rows.", field="metric")
    if mine["saw_these_labels"]:  # it would look better than it is: not a fair comparison to promote on
        promoted, reason = False, (f"#{candidate.id} was trained on labels of the days it is judged on ({metric} "
                                   f"{value:.4f}); retrain it holding them out (--hold-out-days {int(days)})")
    elif theirs is None:
        promoted, reason = True, f"no version ranks the queue yet; #{candidate.id} has {metric} {value:.4f}"
    elif theirs[metric] is None or value > theirs[metric]:
        promoted, reason = True, (f"#{candidate.id} is better: {metric} {value:.4f} against {_fmt4(theirs[metric])} "
                                  f"for the active #{current.id}")
    else:
        promoted, reason = False, (f"#{candidate.id} is not better: {metric} {value:.4f} against "
                                   f"{theirs[metric]:.4f} for the active #{current.id}")
        if theirs["saw_these_labels"]:
            reason += f" (#{current.id} was trained on some of these labels: the comparison favours it)"
    result = GateResult(promoted, reason, metric, mine, theirs, judged_on)
    gate = {"metric": metric, "candidate": value, "active": None if theirs is None else theirs[metric],
            "judged_on": judged_on, "reason": reason}
    expected = current.id if current is not None else None
    if promoted:  # the promotion every front end makes, with the comparison in its audit row, if nothing changed
        activate(ctx, target, candidate.id, "promote", details={"gate": gate}, expected_active=expected)
    else:
        with ctx.unit_of_work() as conn:
            record(conn, ctx.actor, "promote_refused", dataset_id=target.id, target=f"run #{candidate.id}",
                   before={"run": expected}, after={"run": expected, "gate": gate})
    return result


def _fmt4(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"
