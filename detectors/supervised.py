"""Models that learn from labels: a classifier on the engineered features plus a detector run's
anomaly score, so the unsupervised and the supervised signal combine.

A trained model is a run like any other (kind "supervised"): its scores are fraud
probabilities, stored per transaction, so the queue, thresholds, evaluation and explanations
work on it unchanged; it becomes the queue's order only when a user promotes it.

Validation is time-aware: the model is fitted on labels older than the newest 20% of the
labelled period and evaluated on that newest period, beside the detector run it builds on. The
saved model is then refitted on every label, so the newest labels count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance

from data.datasets import Dataset
from data.db import ProgressFn, fetch_one, no_progress
from data.errors import InvalidInput, NotFound
from data.features import FeatureSet
from detectors.base import ExplanationSupport
from detectors.classifiers import (
    DEFAULT_IMBALANCE,
    DEFAULT_MODEL,
    MODELS,
    check_imbalance,
    check_params,
    classifier_spec,
    explanation_for,
    make_classifier,
    resample,
)
from detectors.evaluation import labelled_frame, ranking_metrics
from detectors.impute import MedianImputer
from detectors.pipeline import ANOMALY_SCORE, FeatureSpec, load_frame
from detectors.runs import FittedRun, Run, active_run, get_run, score_in_chunks
from detectors.search import draw_configurations, prequential_folds, search

MIN_PER_CLASS = 20  # labels of each class needed to train
MIN_VALIDATION_PER_CLASS = 5  # ... and in the newest period, to validate
VALIDATION_SHARE = 0.2
IMPORTANCE_ROWS = 5_000  # validation rows permutation importance is measured on (every fraud among them)
MAX_SEARCH = 200


class LearnedModel:
    """A classifier over `spec.numeric` (features + anomaly_score) whose score is the fraud
    probability (higher = more suspicious): a `RankingModel`, like a detector run's model."""

    def __init__(self, name: str, spec: FeatureSpec, random_state: int = 0, params: dict[str, Any] | None = None,
                 imbalance: str = DEFAULT_IMBALANCE):
        self.name = name
        self.params_ = check_params(name, params)
        self.imbalance = check_imbalance(imbalance)
        self.spec = spec
        self.random_state = random_state

    def params(self) -> dict[str, Any]:
        """What the version records: the model, its parameters and the imbalance handling."""
        return {"model": MODELS[self.name], **self.params_, "imbalance": self.imbalance}

    def _raw(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.spec.numeric].to_numpy(dtype=np.float64)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        X = self._raw(frame)
        return self.imputer_.transform(X) if self.imputer_ is not None else X

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> LearnedModel:
        y = np.asarray(y, dtype=int)
        X = self._raw(frame)
        fill = classifier_spec(self.name).fills_missing or self.imbalance == "smote"
        self.imputer_ = MedianImputer(keep_empty_features=True).fit(X) if fill else None
        if self.imputer_ is not None:
            X = self.imputer_.transform(X)
        X, y = resample(X, y, self.imbalance, self.random_state)
        self.classifier_ = make_classifier(self.name, self.params_, self.imbalance, self.random_state).fit(X, y)
        self.feature_names_ = [f"numeric__{c}" for c in self.spec.numeric]
        return self

    def score_matrix(self, X: np.ndarray) -> np.ndarray:
        return self.classifier_.predict_proba(np.asarray(X, dtype=np.float64))[:, 1]

    def decision_function(self, frame: pd.DataFrame) -> np.ndarray:
        return self.score_matrix(self.transform(frame))

    def check_rows(self, n_rows: int, action: str) -> None:
        """A classifier scores any number of rows."""

    def explanation_support(self) -> ExplanationSupport:
        return explanation_for(self.name, self.classifier_)


def importance_sample(rows: pd.DataFrame, random_state: int = 0) -> pd.DataFrame:
    """Up to IMPORTANCE_ROWS validation rows for permutation importance: every fraud (up to half
    of them) and legitimate rows for the rest, so the drop in average precision is measured on
    enough frauds without scoring every row dozens of times."""
    fraud, legitimate = rows[rows["y"] == 1], rows[rows["y"] == 0]
    fraud = fraud.sample(min(len(fraud), IMPORTANCE_ROWS // 2), random_state=random_state)
    legitimate = legitimate.sample(min(len(legitimate), IMPORTANCE_ROWS - len(fraud)), random_state=random_state)
    return pd.concat([fraud, legitimate])


def labelled_sql(dataset: Dataset, use_truth: bool) -> str:
    """Labelled transactions before $until ($dataset, $until): the analyst's current label, else
    (if allowed) the dataset's label column; 'unsure' is left out."""
    truth = "CAST(t.is_fraud AS INTEGER)" if use_truth and dataset.has_role("label") else "CAST(NULL AS INTEGER)"
    return f"""SELECT * FROM (
                SELECT t.tx_row, t.ts, l.label IS NOT NULL AS from_analyst,
                       CASE l.label WHEN 'fraud' THEN 1 WHEN 'legitimate' THEN 0 WHEN 'unsure' THEN NULL ELSE {truth} END AS y
                FROM {dataset.table} t
                LEFT JOIN (SELECT transaction_id, label FROM current_labels WHERE dataset_id = $dataset) l USING (transaction_id)
                WHERE CAST($until AS TIMESTAMP) IS NULL OR t.ts < $until)
            WHERE y IS NOT NULL"""


def labelled_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, use_truth: bool,
                  until: datetime | None = None) -> pd.DataFrame:
    """tx_row, ts, from_analyst and y (1 fraud, 0 legitimate) of every labelled transaction before `until`."""
    return conn.execute(f"{labelled_sql(dataset, use_truth)} ORDER BY ts, tx_row", {"dataset": dataset.id, "until": until}).df()


def label_counts(rows: pd.DataFrame) -> dict[str, int]:
    fraud = int(rows["y"].sum())
    analyst = rows["from_analyst"]
    return {"fraud": fraud, "legitimate": int(len(rows) - fraud), "analyst_fraud": int(rows.loc[analyst, "y"].sum()),
            "analyst_legitimate": int((rows.loc[analyst, "y"] == 0).sum()), "total": int(len(rows))}


def count_labels(conn: duckdb.DuckDBPyConnection, dataset: Dataset, use_truth: bool,
                 until: datetime | None = None) -> dict[str, int]:
    """`label_counts` counted in DuckDB, without loading the rows (for pages)."""
    fraud, legitimate, analyst_fraud, analyst_legitimate = fetch_one(
        conn, f"""SELECT count(*) FILTER (y = 1), count(*) FILTER (y = 0), count(*) FILTER (y = 1 AND from_analyst),
                         count(*) FILTER (y = 0 AND from_analyst) FROM ({labelled_sql(dataset, use_truth)})""",
        {"dataset": dataset.id, "until": until})
    return {"fraud": fraud, "legitimate": legitimate, "analyst_fraud": analyst_fraud,
            "analyst_legitimate": analyst_legitimate, "total": fraud + legitimate}


def labels_needed(counts: dict[str, int], needed: int = MIN_PER_CLASS) -> dict[str, int]:
    """How many more labels of each class training needs (empty when there are enough)."""
    return {k: needed - counts[k] for k in ("fraud", "legitimate") if counts[k] < needed}


def _check_enough(counts: dict[str, int], needed: int, where: str) -> None:
    short = labels_needed(counts, needed)
    if short:
        more = " and ".join(f"{n:,} more {k}" for k, n in short.items())
        raise InvalidInput(f"too few labels to {where}: {counts['fraud']:,} fraud and {counts['legitimate']:,} legitimate; "
                           f"at least {needed} of each are needed.", hint=f"Label {more} case{'s' if sum(short.values()) > 1 else ''}.")


def base_detector_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset, base_run_id: int | None = None) -> Run:
    """The detector run whose anomaly score a new model reads: the given one, else the active
    run (or, when a supervised model is active, the detector run beneath it)."""
    run = get_run(conn, base_run_id) if base_run_id is not None else active_run(conn, dataset)
    if run is None:
        raise NotFound(f"dataset {dataset.name!r} has no detector run to build on.", hint="Fit a detector first.")
    if run.kind == "supervised":
        run = get_run(conn, run.base_run_id)
    if run.dataset_id != dataset.id:
        raise NotFound(f"run #{run.id} belongs to another dataset.", field="base_run")
    return run


@dataclass
class TrainedVersion:
    """A model trained from labels and validated, every transaction scored; not yet stored."""

    fitted: FittedRun
    base: Run
    label_counts: dict[str, int]
    metrics: dict[str, Any]


def train_version(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    feature_set: FeatureSet,
    *,
    model: str = DEFAULT_MODEL,
    imbalance: str = DEFAULT_IMBALANCE,
    params: dict[str, Any] | None = None,
    search_budget: int = 0,
    base_run_id: int | None = None,
    use_truth: bool = True,
    train_until: datetime | None = None,
    random_state: int = 0,
    progress: ProgressFn = no_progress,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainedVersion:
    """Train a new model version on the labels (before `train_until`): optionally search its
    parameters over prequential folds of the older labels (`search_budget` configurations), then
    validate it on the newest labels beside its detector run, refit on every label and score
    every transaction. Stores nothing."""
    classifier_spec(model)
    check_imbalance(imbalance)
    params = check_params(model, params)
    if not 0 <= int(search_budget) <= MAX_SEARCH:
        raise InvalidInput(f"a search tries 0 to {MAX_SEARCH} configurations, not {search_budget}.", field="search")
    base = base_detector_run(conn, dataset, base_run_id)
    progress(0.02, "Counting labels")
    rows = labelled_rows(conn, dataset, use_truth, train_until)
    counts = label_counts(rows)
    _check_enough(counts, MIN_PER_CLASS, "train")
    cut = rows["ts"].iloc[int(len(rows) * (1 - VALIDATION_SHARE))]
    validation = rows[rows["ts"] >= cut]
    _check_enough(label_counts(validation), MIN_VALIDATION_PER_CLASS, f"validate on the newest labels (from {cut:%Y-%m-%d})")

    progress(0.08, "Loading features")
    spec = FeatureSpec([*feature_set.computed, ANOMALY_SCORE], [], base_run_id=base.id)
    frame = load_frame(conn, dataset, feature_set, spec)
    labelled = frame.merge(rows[["tx_row", "y"]], on="tx_row")
    older, newer = labelled[labelled["ts"] < cut], labelled[labelled["ts"] >= cut]

    started = time.perf_counter()
    searched = None
    if search_budget:
        y_older = older["y"].to_numpy(dtype=int)
        folds = prequential_folds(older["ts"], y_older, gap_days=feature_set.params.get("label_delay_days", 7))
        trials = search(lambda p: LearnedModel(model, spec, random_state, p, imbalance), older, y_older, folds,
                        draw_configurations(model, int(search_budget), random_state),
                        lambda f, m: progress(0.1 + 0.3 * f, f"Searching: {m}"), should_stop)
        params = trials["params"].iloc[0]
        searched = {"trials": int(len(trials)), "folds": [{"from": str(f.test_from), "until": str(f.test_until),
                                                           "train": int(len(f.train)), "test": int(len(f.test))}
                                                          for f in folds],
                    "best": {"params": params, "average_precision": float(trials["average_precision"].iloc[0])},
                    "defaults_average_precision": float(trials.loc[trials["trial"] == 1, "average_precision"].iloc[0])}
    progress(0.4, f"Validating: fitting on {len(older):,} older labels, checking on {len(newer):,} newer ones")
    candidate = LearnedModel(model, spec, random_state, params, imbalance).fit(older, older["y"])
    context = labelled_frame(conn, dataset, base.id, cut, train_until).drop(columns=["y"])
    judged = newer[["tx_row", "y", ANOMALY_SCORE]].merge(context, on="tx_row")
    metrics = ranking_metrics(judged.assign(score=candidate.decision_function(newer.set_index("tx_row").loc[judged["tx_row"]])))
    baseline = ranking_metrics(judged.assign(score=judged[ANOMALY_SCORE]))
    # The version the queue ranks by now, on the same rows, so the new one is shown beside it.
    current = active_run(conn, dataset)
    if current is not None and current.id != base.id:
        scored = labelled_frame(conn, dataset, current.id, cut, train_until)[["tx_row", "score"]]
        beside = {"run": current.id, "detector": current.detector, "kind": current.kind,
                  # an earlier supervised version was fitted on some of these labels: it looks better than it is
                  "saw_these_labels": current.kind == "supervised",
                  **ranking_metrics(judged.drop(columns=["score"], errors="ignore").merge(scored, on="tx_row"))}
    else:
        beside = None
    sample = importance_sample(newer, random_state)
    importance = permutation_importance(candidate.classifier_, candidate.transform(sample), sample["y"],
                                        scoring="average_precision", n_repeats=2, random_state=random_state, n_jobs=1)

    progress(0.5, f"Fitting on all {len(labelled):,} labels")
    final = LearnedModel(model, spec, random_state, params, imbalance).fit(labelled, labelled["y"])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    tx_rows, scores = frame["tx_row"].to_numpy(), score_in_chunks(final, frame, lambda f, m: progress(0.6 + 0.3 * f, m))
    metrics.update({
        "validation": {"from": str(cut), "until": str(train_until) if train_until else None, "rows": int(len(judged)),
                       "use_truth": bool(use_truth)},
        "baseline": {"run": base.id, **baseline},
        "active": beside,
        "importance": dict(zip(spec.numeric, importance.importances_mean.round(6).tolist(), strict=True)),
        "search": searched,
    })
    fitted = FittedRun(final, model, final.params(), tx_rows, scores, rows["ts"].min(), train_until,
                       len(labelled), False, fit_seconds, time.perf_counter() - started)
    return TrainedVersion(fitted, base, counts, metrics)


def promotion_history(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    return conn.execute(
        'SELECT created_at AS "when", action, run_id, actor AS "by" FROM promotions WHERE dataset_id = ? '
        "ORDER BY created_at DESC, rowid DESC", [dataset.id]).df()
