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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from data.datasets import Dataset
from data.db import ProgressFn, fetch_one, no_progress
from data.errors import InvalidInput, NotFound
from data.features import FeatureSet
from detectors.base import ExplanationSupport
from detectors.evaluation import labelled_frame, ranking_metrics
from detectors.pipeline import ANOMALY_SCORE, FeatureSpec, load_frame
from detectors.runs import FittedRun, Run, active_run, get_run, score_in_chunks

MODELS = {"hgb": "HistGradientBoostingClassifier", "rf": "RandomForestClassifier"}
MIN_PER_CLASS = 20  # labels of each class needed to train
MIN_VALIDATION_PER_CLASS = 5  # ... and in the newest period, to validate
VALIDATION_SHARE = 0.2
IMPORTANCE_ROWS = 20_000


FRAUD_PROBABILITY = ExplanationSupport(
    "permutation", "the model's fraud probability, against its mean over a background sample of training transactions")


class LearnedModel:
    """A classifier over `spec.numeric` (features + anomaly_score) whose score is the fraud
    probability (higher = more suspicious): a `RankingModel`, like a detector run's model."""

    def __init__(self, name: str, spec: FeatureSpec, random_state: int = 0):
        if name not in MODELS:
            raise InvalidInput(f"model must be one of {', '.join(MODELS)}, not {name!r}.", field="model")
        self.name = name
        self.spec = spec
        self.random_state = random_state

    def _estimator(self) -> Any:
        if self.name == "hgb":
            return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, class_weight="balanced",
                                                  random_state=self.random_state)
        return RandomForestClassifier(n_estimators=300, min_samples_leaf=2, class_weight="balanced_subsample",
                                      n_jobs=-1, random_state=self.random_state)

    def params(self) -> dict[str, Any]:
        estimator = self._estimator()
        keys = ("max_iter", "learning_rate", "class_weight") if self.name == "hgb" else (
            "n_estimators", "min_samples_leaf", "class_weight")
        return {"model": MODELS[self.name], **{k: getattr(estimator, k) for k in keys}}

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.spec.numeric].to_numpy(dtype=np.float64)

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> LearnedModel:
        self.pipeline_ = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                   ("classify", self._estimator())]).fit(self.transform(frame), np.asarray(y, dtype=int))
        self.feature_names_ = [f"numeric__{c}" for c in self.spec.numeric]
        return self

    def score_matrix(self, X: np.ndarray) -> np.ndarray:
        return self.pipeline_.predict_proba(np.asarray(X, dtype=np.float64))[:, 1]

    def decision_function(self, frame: pd.DataFrame) -> np.ndarray:
        return self.score_matrix(self.transform(frame))

    def check_rows(self, n_rows: int, action: str) -> None:
        """A classifier scores any number of rows."""

    def explanation_support(self) -> ExplanationSupport:
        return FRAUD_PROBABILITY


def _labelled_sql(dataset: Dataset, use_truth: bool) -> str:
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
    return conn.execute(f"{_labelled_sql(dataset, use_truth)} ORDER BY ts, tx_row", {"dataset": dataset.id, "until": until}).df()


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
                         count(*) FILTER (y = 0 AND from_analyst) FROM ({_labelled_sql(dataset, use_truth)})""",
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
    model: str = "hgb",
    base_run_id: int | None = None,
    use_truth: bool = True,
    train_until: datetime | None = None,
    random_state: int = 0,
    progress: ProgressFn = no_progress,
) -> TrainedVersion:
    """Train a new model version on the labels (before `train_until`): validate it on the newest
    labels beside its detector run, then refit on every label and score every transaction.
    Stores nothing."""
    if model not in MODELS:
        raise InvalidInput(f"model must be one of {', '.join(MODELS)}, not {model!r}.", field="model")
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

    progress(0.2, f"Validating: fitting on {len(older):,} older labels, checking on {len(newer):,} newer ones")
    started = time.perf_counter()
    candidate = LearnedModel(model, spec, random_state).fit(older, older["y"])
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
    sample = newer.sample(min(len(newer), IMPORTANCE_ROWS), random_state=random_state)
    importance = permutation_importance(candidate.pipeline_, candidate.transform(sample), sample["y"],
                                        scoring="average_precision", n_repeats=3, random_state=random_state, n_jobs=1)

    progress(0.5, f"Fitting on all {len(labelled):,} labels")
    final = LearnedModel(model, spec, random_state).fit(labelled, labelled["y"])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scores = score_in_chunks(final, frame, lambda f, m: progress(0.6 + 0.3 * f, m))
    metrics.update({
        "validation": {"from": str(cut), "until": str(train_until) if train_until else None, "rows": int(len(judged)),
                       "use_truth": bool(use_truth)},
        "baseline": {"run": base.id, **baseline},
        "active": beside,
        "importance": dict(zip(spec.numeric, importance.importances_mean.round(6).tolist(), strict=True)),
    })
    fitted = FittedRun(final, model, final.params(), frame["tx_row"].to_numpy(), scores, rows["ts"].min(), train_until,
                       len(labelled), False, fit_seconds, time.perf_counter() - started)
    return TrainedVersion(fitted, base, counts, metrics)


def promotion_history(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    return conn.execute(
        'SELECT created_at AS "when", action, run_id, actor AS "by" FROM promotions WHERE dataset_id = ? '
        "ORDER BY created_at DESC, rowid DESC", [dataset.id]).df()
