"""Why a transaction was flagged: SHAP attributions, all in one orientation.

- Isolation forests (scikit-learn's and PyOD's) get shap's exact `TreeExplainer`. It explains
  the mean path length, where *shorter* means more anomalous, so its values are negated: the
  explained output is the negative mean path length, and the anomaly score is a monotone
  function of it (score = 2 ** (-path / c(max_samples))).
- Every other detector, and ensembles, get shap's model-agnostic `PermutationExplainer` over
  the detector's score, with a small background sample of training rows. Its output is the
  anomaly score itself, against the background's mean score.

Either way a positive attribution pushes toward suspicious, and base value + attributions =
the explained output, exactly (see tests/test_explain.py). Attributions are computed on the
model's transformed columns (scaled numerics, one-hot categoricals) and summed back to the
features the user chose, so a one-hot-encoded city is one bar.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from data.datasets import Dataset
from data.db import fetch_one
from data.features import load_feature_set
from detectors.pipeline import FeatureSpec, Model, load_rows, load_sample

BACKGROUND_ROWS = 50  # background for the permutation explainer: enough for a stable baseline
CASE_EVALS = 500  # model evaluations per explained row (about 11 permutations of 21 features)
GLOBAL_BACKGROUND_ROWS = 10
GLOBAL_ALERTS = GLOBAL_NORMAL = 500
TREE_METHOD = "tree"
PERMUTATION_METHOD = "permutation"


@dataclass
class Attributions:
    """SHAP values per row and feature; positive = pushes toward suspicious."""

    features: list[str]
    values: np.ndarray  # (rows, features)
    base_value: float
    output: np.ndarray  # explained output per row = base_value + values.sum(axis=1)
    method: str

    def top_feature(self) -> list[str]:
        """The feature pushing each row hardest toward suspicious."""
        return [self.features[i] for i in np.argmax(self.values, axis=1)]


def _is_isolation_forest(model: Model) -> bool:
    return model.detector.name in ("isolation_forest", "iforest")


def explained_output(method: str) -> str:
    """What the attributions add up to, in words, for the chart's caption."""
    if method == TREE_METHOD:
        return ("the negative mean path length: how few random splits isolate the transaction "
                "(fewer = more anomalous; the anomaly score rises with it)")
    return "the anomaly score, against the mean score of a background sample of training transactions"


class ModelExplainer:
    """SHAP explainer for one fitted model; build once per model, explain many rows."""

    def __init__(self, model: Model, background: pd.DataFrame | None = None, seed: int = 0,
                 max_evals: int = CASE_EVALS):
        import shap

        self.model = model
        self.background = background
        self.features = model.spec.numeric + model.spec.categorical
        self._aggregate = _aggregation_matrix(model.feature_names_, model.spec)
        self.max_evals = max_evals
        if _is_isolation_forest(model):
            forest = model.detector.model_
            forest = getattr(forest, "detector_", forest)  # PyOD's IForest wraps scikit-learn's
            self.method = TREE_METHOD
            self._explainer = shap.TreeExplainer(forest)
            self.base_value = -float(np.ravel(self._explainer.expected_value)[0])
        else:
            if background is None or background.empty:
                raise ValueError("a model-agnostic explanation needs background rows")
            self.method = PERMUTATION_METHOD
            matrix = model.transform(background)
            self._explainer = shap.PermutationExplainer(model.detector.score, matrix, seed=seed)
            self.base_value = float(np.mean(model.detector.score(matrix)))

    def cheaper(self, background: int, max_evals: int) -> ModelExplainer:
        """A faster explainer of the same model for many rows at once: the tree explainer as is,
        a permutation explainer with fewer background rows and evaluations."""
        if self.method == TREE_METHOD:
            return self
        return ModelExplainer(self.model, self.background.head(background), max_evals=max_evals)

    def explain(self, frame: pd.DataFrame) -> Attributions:
        """Attributions for each row of `frame` (feature rows as `load_frame` returns them)."""
        matrix = self.model.transform(frame)
        if self.method == TREE_METHOD:
            raw = -np.asarray(self._explainer.shap_values(matrix), dtype=np.float64).reshape(len(matrix), -1)
            base = self.base_value
        else:
            n_features = matrix.shape[1]
            explanation = self._explainer(matrix, max_evals=max(self.max_evals, 2 * n_features + 1), silent=True)
            raw = np.asarray(explanation.values, dtype=np.float64).reshape(len(matrix), -1)
            base = float(np.ravel(explanation.base_values)[0])
        values = raw @ self._aggregate
        return Attributions(self.features, values, base, base + raw.sum(axis=1), self.method)


def _aggregation_matrix(transformed: list[str], spec: FeatureSpec) -> np.ndarray:
    """Sums transformed columns back to the chosen features (one-hot columns to their category)."""
    features = spec.numeric + spec.categorical
    matrix = np.zeros((len(transformed), len(features)))
    for i, name in enumerate(transformed):
        kind, _, rest = name.partition("__")
        if kind == "numeric":
            matrix[i, features.index(rest)] = 1.0
        else:
            owner = max((c for c in spec.categorical if rest.startswith(c + "_")), key=len)
            matrix[i, features.index(owner)] = 1.0
    return matrix


def background_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, spec: FeatureSpec, train_until: Any,
                    n: int = BACKGROUND_ROWS, seed: int = 0) -> pd.DataFrame:
    """A deterministic sample of training-period rows: the 'usual' the permutation explainer compares with."""
    feature_set = load_feature_set(conn, dataset)
    return load_sample(conn, dataset, feature_set, spec, n, end=train_until, seed=seed)


def build_explainer(conn: duckdb.DuckDBPyConnection, dataset: Dataset, model: Model, train_until: Any,
                    background: int = BACKGROUND_ROWS, max_evals: int = CASE_EVALS) -> ModelExplainer:
    """The explainer of a run's model (background rows are only loaded where one is needed)."""
    rows = None if _is_isolation_forest(model) else background_rows(conn, dataset, model.spec, train_until, background)
    return ModelExplainer(model, rows, max_evals=max_evals)


# ---------------------------------------------------------------------------------------------
# Stored per run: explanations never change for a run (its model and rows are fixed).


def explain_case(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, tx_row: int,
                 explainer: ModelExplainer | None = None, explainer_factory: Any = None) -> dict[str, Any]:
    """The stored explanation of one transaction under a run, computing and storing it if new.

    Returns {method, base_value, output, seconds, cached, attributions: DataFrame(feature, value,
    raw)} with the transaction's own (untransformed) feature values in `raw`.
    """
    feature_set = load_feature_set(conn, dataset)
    row = fetch_one(conn, "SELECT method, base_value, output, attributions, seconds FROM explanations "
                    "WHERE run_id = ? AND tx_row = ?", [int(run_id), int(tx_row)])
    spec_row = fetch_one(conn, "SELECT features FROM runs WHERE id = ?", [int(run_id)])
    spec = FeatureSpec(**json.loads(spec_row[0]))
    frame = load_rows(conn, dataset, feature_set, spec, [int(tx_row)])
    if frame.empty:
        raise ValueError(f"transaction row {tx_row} has no features")
    cached = row is not None
    if cached:
        method, base, output, stored, seconds = row
        values = json.loads(stored)
    else:
        started = time.perf_counter()
        explainer = explainer or explainer_factory()
        result = explainer.explain(frame)
        seconds = time.perf_counter() - started
        method, base, output = result.method, result.base_value, float(result.output[0])
        values = {f: float(v) for f, v in zip(result.features, result.values[0], strict=True)}
        conn.execute(
            "INSERT OR IGNORE INTO explanations VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP)",
            [int(run_id), int(tx_row), method, base, output, json.dumps(values), seconds],
        )
    attributions = pd.DataFrame({
        "feature": list(values),
        "value": list(values.values()),
        "raw": [frame.iloc[0][f] for f in values],
    })
    return {"method": method, "base_value": base, "output": output, "seconds": seconds, "cached": cached,
            "attributions": attributions}


def global_importance(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float,
                      explainer_factory: Any, alerts: int = GLOBAL_ALERTS, normal: int = GLOBAL_NORMAL,
                      seed: int = 0) -> dict[str, Any]:
    """Mean |SHAP| per feature over a sample of alerts and a sample of normal transactions (stored)."""
    row = fetch_one(conn, "SELECT method, importance, alert_rows, normal_rows, seconds FROM global_importance "
                    "WHERE run_id = ?", [int(run_id)])
    if row is None:
        started = time.perf_counter()
        spec = FeatureSpec(**json.loads(fetch_one(conn, "SELECT features FROM runs WHERE id = ?", [int(run_id)])[0]))
        feature_set = load_feature_set(conn, dataset)
        picked = {}
        for group, condition, n in (("alerts", "score >= ?", alerts), ("normal", "score < ?", normal)):
            picked[group] = [r[0] for r in conn.execute(
                f"SELECT tx_row FROM scores WHERE run_id = ? AND {condition} ORDER BY hash(tx_row, ?), tx_row LIMIT ?",
                [int(run_id), float(threshold), seed, n]).fetchall()]
        # One permutation (2 evaluations per feature) against 10 background rows per explained row:
        # each row's attributions are noisier, their mean over a thousand rows is not.
        explainer = explainer_factory().cheaper(GLOBAL_BACKGROUND_ROWS, 1)
        importance: dict[str, dict[str, float]] = {}
        for group, rows in picked.items():
            if not rows:
                continue
            result = explainer.explain(load_rows(conn, dataset, feature_set, spec, rows))
            for feature, value in zip(result.features, np.abs(result.values).mean(axis=0), strict=True):
                importance.setdefault(feature, {})[group] = float(value)
        seconds = time.perf_counter() - started
        conn.execute("INSERT OR IGNORE INTO global_importance VALUES (?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP)",
                     [int(run_id), explainer.method, json.dumps(importance), len(picked["alerts"]),
                      len(picked["normal"]), seconds])
        row = (explainer.method, json.dumps(importance), len(picked["alerts"]), len(picked["normal"]), seconds)
    method, stored, n_alerts, n_normal, seconds = row
    values = json.loads(stored)
    frame = pd.DataFrame({"feature": list(values),
                          "alerts": [v.get("alerts", np.nan) for v in values.values()],
                          "normal": [v.get("normal", np.nan) for v in values.values()]})
    return {"method": method, "importance": frame.sort_values("alerts", ascending=False, ignore_index=True),
            "alert_rows": n_alerts, "normal_rows": n_normal, "seconds": seconds}


def explainer_for_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Any, **options: Any) -> ModelExplainer:
    """Load a run's model (hash-checked) and build its explainer."""
    from detectors.runs import load_model

    return build_explainer(conn, dataset, load_model(conn, run), run.train_until, **options)


def attribution_accuracy(detector: str, n_features: int = 8, n_train: int = 20_000, n_rows: int = 200,
                         shift: float = 6.0, seed: int = 0) -> float:
    """Share of rows whose top 'toward suspicious' feature is the one deliberately made anomalous.

    Training rows are standard normal; each test row has every feature within +-2 standard
    deviations except one (cycling through the features), set to +-`shift`.
    """
    from detectors.base import make_detector

    rng = np.random.default_rng(seed)
    names = [f"feature_{i}" for i in range(n_features)]
    train = pd.DataFrame(rng.normal(size=(n_train, n_features)), columns=names)
    model = Model(make_detector(detector, seed=seed), FeatureSpec(names)).fit(train)
    rows = np.clip(rng.normal(size=(n_rows, n_features)), -2.0, 2.0)
    planted = np.arange(n_rows) % n_features
    rows[np.arange(n_rows), planted] = np.where(rng.random(n_rows) < 0.5, -shift, shift)
    explainer = ModelExplainer(model, train.sample(BACKGROUND_ROWS, random_state=seed), seed=seed)
    top = explainer.explain(pd.DataFrame(rows, columns=names)).top_feature()
    return float(np.mean(np.asarray(top) == np.asarray(names)[planted]))
