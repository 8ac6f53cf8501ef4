"""Live scoring: transactions arriving through the HTTP API are stored, get their features
online, are scored by the dataset's active model (a detector run or a promoted learned
version) against its threshold, and keep their decision; a batch is one unit of work.

Scoring is serialised in the process (one lock): features of a new transaction read the rows
stored before it, so two batches for the same customer must not interleave. DuckDB has one
writer anyway; the lock keeps the order the answers were given in.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import duckdb
import numpy as np

from application import rules, stamped
from application.context import Context, retry_on_conflict
from application.datasets import DatasetRef
from application.heap import freeze_long_lived
from application.runs import ActiveRun, require_active
from data import cases, webhooks
from data import live as store
from data import online_features as online
from data import rules as rule_store
from data.audit import record
from data.datasets import Dataset, labels_version
from data.errors import InvalidInput, NotFound
from data.features import FeatureSet, load_feature_set
from detectors import runs as run_store
from detectors.explain import background_rows
from detectors.ranking import RankingModel
from detectors.reasons import Occlusion
from detectors.runs import Run

LOG = logging.getLogger(__name__)
_LOCK = threading.Lock()
_MODELS: dict[tuple[int, str], LoadedModel] = {}
_HISTORY: dict[int, online.OnlineFeatures] = {}  # per dataset id; guarded by _LOCK
BACKGROUND = 500  # training rows whose mean input is the baseline of the reasons


@dataclass(frozen=True)
class LoadedModel:
    run: Run
    model: RankingModel
    occlusion: Occlusion


def loaded_model(ctx: Context, dataset: Dataset, run: Run) -> LoadedModel:
    """A run's model, loaded once per process (hash-checked by `load_model`) with its reasons baseline."""
    key = (run.id, run.artifact_sha256)
    found = _MODELS.get(key)
    if found is None:
        model = run_store.load_model(ctx.conn, run)
        background = background_rows(ctx.conn, dataset, model.spec, run.train_until, BACKGROUND)
        found = _MODELS[key] = LoadedModel(run, model, Occlusion(model, background))
        freeze_long_lived()
    return found


def _chain(ctx: Context, dataset: Dataset, run: Run) -> list[LoadedModel]:
    """The models a run's scores need, base runs first (a learned version reads its detector run's score)."""
    chain = [loaded_model(ctx, dataset, run)]
    while chain[0].run.spec.base_run_id is not None:
        chain.insert(0, loaded_model(ctx, dataset, run_store.get_run(ctx.conn, chain[0].run.spec.base_run_id)))
    return chain


@contextmanager
def held() -> Iterator[None]:
    """Live scoring held in this process while another action rewrites a dataset live scoring may
    write to (a database source's sync: its merge, feature table and registry row): requests
    wait for it, where DuckDB would otherwise refuse one of the two writers. The history in memory
    is checked against the feature set on the next request, and read again if it changed."""
    with _LOCK:
        yield


def _history(ctx: Context, dataset: Dataset, feature_set: FeatureSet) -> online.OnlineFeatures | None:
    """The dataset's history in memory for its current feature set and labels (loaded again when
    either changed, or rows arrived by another way); None when the set has a feature the
    in-memory path does not compute. Call holding _LOCK."""
    if not set(feature_set.computed) <= online.SUPPORTED:
        return None
    reads_labels = feature_set.labels_snapshot is not None
    key = (feature_set.table_name, feature_set.version, str(feature_set.computed_at),
           labels_version(ctx.conn, dataset.id) if reads_labels else None)
    state = _HISTORY.get(dataset.id)
    if state is not None and state.key[:-1] == key[:-1] and state.key != key and state.rows == dataset.row_count:
        started = time.perf_counter()  # only the labels changed: re-read them, keep the rest
        online.refresh_labels(ctx.conn, dataset, state, key)
        LOG.info("re-read the labels of dataset %r in %.2f s", dataset.name, time.perf_counter() - started)
    if state is None or state.key != key or state.rows != dataset.row_count:
        started = time.perf_counter()
        state = _HISTORY[dataset.id] = online.load(ctx.conn, dataset, feature_set, key)
        LOG.info("loaded %s rows of history for dataset %r in %.2f s", f"{state.rows:,}", dataset.name,
                 time.perf_counter() - started)
        freeze_long_lived()
    return state


def _features(conn, dataset: Dataset, feature_set: FeatureSet, state: online.OnlineFeatures | None, new,
              tx_rows: np.ndarray):
    """The new rows' features: from the history in memory, or by the catalogue's SQL where it cannot serve."""
    if state is None or int(tx_rows[0]) != state.next_tx_row:
        _HISTORY.pop(dataset.id, None)
        by_sql = store.features_by_sql(conn, dataset, feature_set, new, tx_rows)
        return {name: by_sql[name].to_numpy() for name in by_sql.columns}, None
    label = dataset.column_for("label")
    rows = online.new_rows(new, tx_rows, store.derived_coordinates(conn, dataset, tx_rows),
                           new[label] if label in new.columns else None)
    return state.compute_columns(rows), rows


@dataclass(frozen=True)
class Scored:
    dataset: Dataset
    decisions: list[dict[str, Any]]  # in request order
    stored: int  # new transactions stored by this request (the others were retries)
    alerts: int  # alerts among the new ones
    run: Run | None
    seconds: float
    new_scores: list[float]  # the scores of the transactions stored by this request


def _feature_set(ctx: Context, dataset: Dataset) -> FeatureSet:
    feature_set = load_feature_set(ctx.conn, dataset)
    if feature_set is None:
        raise InvalidInput(f"dataset {dataset.name!r} has no features yet.",
                           hint=f"Compute them on the Data page, or: centinela features {dataset.name!r}")
    return feature_set


@dataclass
class LiveState:
    """What scoring a dataset reads before its writes, kept between requests while nothing changed
    (application.stamped): one 0.4 ms count instead of seven reads, about 10 ms a request. Its own
    commits keep the dataset's counts in step (`_stored`)."""

    dataset: Dataset
    active: ActiveRun
    feature_set: FeatureSet
    chain: list[LoadedModel]
    rules: bool  # the dataset has had a rule or a list (else their evaluation is skipped)
    webhooks: bool  # an enabled webhook takes this dataset's alerts (else no outbox write)
    history_checked: bool = False  # the history in memory was checked against this state


def _key(dataset: DatasetRef) -> tuple[str, str | int]:
    return ("live", dataset.id if isinstance(dataset, Dataset) else dataset)


def _state(ctx: Context, dataset: DatasetRef, at: stamped.Stamp) -> LiveState:
    """The dataset's live state, kept while nothing changed (`at` was read first). Call holding _LOCK."""

    def read() -> LiveState:
        target = ctx.dataset(dataset)
        active = require_active(ctx, target)
        return LiveState(target, active, _feature_set(ctx, target), _chain(ctx, target, active.run),  # loaded before any write
                         rule_store.any_rules_or_lists(ctx.conn, target),
                         webhooks.subscribed(ctx.conn, "alert.raised", target.id))

    return stamped.kept(at, _key(dataset), read)


def _stored(state: LiveState, rows: int, bounds: tuple[datetime, datetime]) -> None:
    """Keep the kept dataset's counts in step with this process's own commit (as
    `store.update_counts` wrote them)."""
    d, (low, high) = state.dataset, bounds
    state.dataset = replace(d, row_count=d.row_count + rows, min_ts=low if d.min_ts is None else min(d.min_ts, low),
                            max_ts=high if d.max_ts is None else max(d.max_ts, high))


@retry_on_conflict
def score(ctx: Context, dataset: DatasetRef, items: list[dict[str, Any]], *, api_key: str,
          request_id: str | None = None) -> Scored:
    """Store, featurise and score transactions (all or nothing) as API key `api_key`; a
    transaction id already scored returns its stored decision and stores nothing."""
    started = time.perf_counter()
    request_id = request_id or uuid.uuid4().hex
    with _LOCK:
        at = stamped.stamp(ctx.conn, ctx.database)  # first: what is read after it is at least as new
        state = _state(ctx, dataset, at)
        target, active, feature_set, chain = state.dataset, state.active, state.feature_set, state.chain
        frame = store.check_items(target, items)
        ids = frame["transaction_id"].tolist()
        history = _HISTORY.get(target.id) if state.history_checked else None
        if history is None:
            history = _history(ctx, target, feature_set)
            state.history_checked = history is not None
        new, retried = frame, []
        if history is None or history.may_hold(ids):
            stored = store.stored_rows(ctx.conn, target, ids)
            store.check_retries(target, frame, stored)
            retried = stored["transaction_id"].tolist()
            new = frame[~frame["transaction_id"].isin(set(retried))].reset_index(drop=True)
        fresh: list[dict[str, Any]] = []
        if len(new):
            received = ctx.clock()
            try:
                with ctx.unit_of_work() as conn:
                    first = history.next_tx_row if history is not None else None
                    tx_rows = store.insert_rows(conn, target, new, first)
                    features, appended = _features(conn, target, feature_set, history, new, tx_rows)
                    store.insert_features(conn, feature_set, features)
                    scores = None
                    for link in chain[:-1]:  # base runs first: a learned version reads its detector run's score
                        rows = store.model_frame(features, new, tx_rows, link.run.spec, scores)
                        scores = np.asarray(link.model.score_matrix(link.model.transform(rows)), dtype=np.float64)
                        store.insert_scores(conn, link.run.id, tx_rows, scores)
                    top = chain[-1]
                    rows = store.model_frame(features, new, tx_rows, top.run.spec, scores)
                    scores, reasons = top.occlusion.score_with_reasons(rows, top.model.transform(rows))
                    store.insert_scores(conn, top.run.id, tx_rows, scores)
                    model = {"run": active.run.id, "kind": active.run.kind, "detector": active.run.detector,
                             "feature_version": feature_set.version}
                    fresh = [{"transaction_id": tx, "tx_row": int(r), "score": float(s),
                              "alert": bool(s >= active.threshold), "threshold": float(active.threshold),
                              "model": model, "reasons": why}
                             for tx, r, s, why in zip(new["transaction_id"], tx_rows, scores, reasons, strict=True)]
                    if state.rules:
                        apply_rules(ctx, conn, target, fresh)
                    else:
                        for d in fresh:
                            d["rules"] = []
                    store.insert_decisions(conn, target, fresh, api_key, request_id, received)
                    if state.webhooks:
                        webhooks.enqueue(conn, "alert.raised", target.id, target.name,
                                         alert_events(fresh, items, ids, api_key, received), received)
                    bounds = store.time_bounds(new)
                    store.update_counts(conn, target, len(new), bounds)
                    alerts = sum(d["alert"] for d in fresh)
                    record(conn, api_key, "score", dataset_id=target.id,
                           target=ids[0] if len(ids) == 1 else f"{len(ids):,} transactions",
                           after={"request": request_id, "stored": len(fresh), "retried": len(ids) - len(fresh),
                                  "alerts": alerts, "run": active.run.id})
            except BaseException:
                stamped.drop(at, _key(dataset))  # whatever failed, the next request reads afresh
                raise
            try:  # committed: what is kept follows, else nothing is kept
                _stored(state, len(new), bounds)
                if appended is not None:  # the next request's history includes these rows
                    history.append(appended)
            except BaseException:
                _HISTORY.pop(target.id, None)
                stamped.drop(at, _key(dataset))
                raise
            stamped.advance(at)  # its one audit row
    decided = store.decisions_of(ctx.conn, target, retried) if retried else {}
    by_id = {d["transaction_id"]: d for d in fresh} | decided
    for d in fresh:
        d["api_key"], d["received_at"] = api_key, received
    return Scored(target, [by_id[tx] for tx in ids], len(fresh), sum(d["alert"] for d in fresh), active.run,
                  time.perf_counter() - started, [d["score"] for d in fresh])


EVENT_FIELDS = ("timestamp", "amount", "customer_id", "merchant_id", "device_id", "city")


def alert_events(decisions: list[dict[str, Any]], items: list[dict[str, Any]], ids: list[str], api_key: str,
                 received: datetime) -> list[dict[str, Any]]:
    """What an `alert.raised` webhook event says of each new alert: the decision and the
    transaction's main fields as they were sent."""
    where = {tx: i for i, tx in enumerate(ids)}
    return [{"transaction_id": d["transaction_id"], "score": d["score"], "threshold": d["threshold"],
             "model": d["model"], "reasons": d["reasons"], "rules": d["rules"], "api_key": api_key,
             "received_at": received,
             "transaction": {k: items[where[d["transaction_id"]]].get(k) for k in EVENT_FIELDS
                             if items[where[d["transaction_id"]]].get(k) is not None}}
            for d in decisions if d["alert"]]


def apply_rules(ctx: Context, conn: duckdb.DuckDBPyConnection, dataset: Dataset, decisions: list[dict[str, Any]]) -> None:
    """Rules and lists on the decisions just taken (the same evaluation the queue uses): an active
    alert rule or block list raises an alert, an allow rule or list suppresses one; each decision
    names them in `rules`. Shadow rules' hits are recorded and change nothing."""
    verdicts = rules.live_verdicts(ctx, dataset, [d["tx_row"] for d in decisions])
    for d in decisions:
        raised, suppressed = verdicts.raised.get(d["tx_row"], []), verdicts.suppressed.get(d["tx_row"], [])
        d["alert"] = bool((d["alert"] or raised) and not suppressed)
        d["rules"] = raised + [f"suppressed by {name}" for name in suppressed]
    rules.record_live_hits(ctx, conn, dataset, verdicts)


def read_transaction(ctx: Context, dataset: DatasetRef, transaction_id: str) -> dict[str, Any]:
    """A stored transaction, its live decision (None for imported ones) and its current label;
    the read is attributed in the audit trail."""
    target = ctx.dataset(dataset)
    row = store.transaction_record(ctx.conn, target, str(transaction_id))
    if row is None:
        raise NotFound(f"transaction {transaction_id!r} is not in dataset {target.name!r}.", field="transaction_id")
    decision = store.decisions_of(ctx.conn, target, [str(transaction_id)]).get(str(transaction_id))
    label = cases.current_labels(ctx.conn, target, [str(transaction_id)]).get(str(transaction_id))
    with ctx.unit_of_work() as conn:
        record(conn, ctx.actor, "api_read", dataset_id=target.id, target=str(transaction_id))
    return {"transaction": row, "decision": decision, "label": label}


def health(ctx: Context) -> dict[str, Any]:
    """The database answers, and each dataset's active model loads (and is kept loaded)."""
    from data.datasets import list_datasets

    ctx.conn.execute("SELECT 1").fetchall()
    datasets, ok = [], True
    for dataset in list_datasets(ctx.conn):
        run = run_store.active_run(ctx.conn, dataset)
        entry: dict[str, Any] = {"name": dataset.name, "rows": dataset.row_count,
                                 "active_run": run.id if run else None, "kind": run.kind if run else None}
        if run is not None:
            try:
                _chain(ctx, dataset, run)
                entry["model_loaded"] = True
            except Exception:  # reported, not raised; the details go to the server's log, not to anyone asking
                LOG.exception("health: the active model of dataset %r (run #%s) could not be loaded", dataset.name, run.id)
                entry["model_loaded"], entry["error"] = False, "the active model could not be loaded (see the server log)"
                ok = False
        datasets.append(entry)
    return {"status": "ok" if ok else "degraded", "database": "open", "datasets": datasets}


def arrival(ctx: Context, dataset: DatasetRef, transaction_id: str) -> dict[str, Any] | None:
    """How a transaction arrived through the API (key name, time), or None if it was imported."""
    return store.arrival(ctx.conn, ctx.dataset(dataset), transaction_id)


def new_alerts(ctx: Context, dataset: DatasetRef, since: datetime | None) -> int:
    """Alerts scored through the API since `since`."""
    return store.new_alerts(ctx.conn, ctx.dataset(dataset), since)


def latest_arrival(ctx: Context, dataset: DatasetRef) -> datetime | None:
    return store.latest_arrival(ctx.conn, ctx.dataset(dataset))
