"""Why a transaction was flagged: SHAP attributions, all in one orientation.

How a model is explained is the model's own declaration (`RankingModel.explanation_support`):
- Isolation forests (scikit-learn's and PyOD's) declare shap's exact `TreeExplainer` over their
  forest. It explains the mean path length, where *shorter* means more anomalous, so its values
  are multiplied by the declared sign (-1): the explained output is the negative mean path
  length, and the anomaly score is a monotone function of it (score = 2 ** (-path / c(max_samples))).
- Every other model (other detectors, ensembles, versions learned from labels) declares shap's
  model-agnostic `PermutationExplainer` over its own score, with a small background sample of
  training rows. Its output is the score itself, against the background's mean score.

Either way a positive attribution pushes toward suspicious, and base value + attributions =
the explained output, exactly (see tests/test_explain.py). Attributions are computed on the
model's transformed columns (scaled numerics, one-hot categoricals) and summed back to the
features the user chose, so a one-hot-encoded city is one bar.

Explanations are stored per run and transaction, with the feature-set version of the row they
explain (lineage): when the features are recomputed (labels feed the merchant fraud rate), a
stored explanation of the old row is stale, and is recomputed rather than shown as current.
The stored rows are a cache of derived values, written one statement at a time; they are not
a user action and carry no audit row.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from data.datasets import Dataset
from data.db import fetch_records
from data.errors import NotFound
from data.features import FeatureSet, behind_labels, load_feature_set
from detectors.pipeline import FeatureSpec, load_rows, load_sample
from detectors.ranking import RankingModel
from detectors.runs import Run, load_model
from detectors.tree_shap import TREE_METHOD, tree_explainer

BACKGROUND_ROWS = 50  # background for the permutation explainer: enough for a stable baseline
CASE_EVALS = 500  # model evaluations per explained row (about 11 permutations of 21 features)
GLOBAL_BACKGROUND_ROWS = 10
GLOBAL_ALERTS = GLOBAL_NORMAL = 500


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


class ModelExplainer:
    """SHAP explainer for one fitted model; build once per model, explain many rows."""

    def __init__(self, model: RankingModel, background: pd.DataFrame | None = None, seed: int = 0,
                 max_evals: int = CASE_EVALS):
        import shap

        self.model = model
        self.background = background
        self.features = model.spec.numeric + model.spec.categorical
        self._aggregate = _aggregation_matrix(model.feature_names_, model.spec)
        self.max_evals = max_evals
        self.support = model.explanation_support()
        self.method = self.support.method
        if self.method == TREE_METHOD:
            self._explainer = tree_explainer(model)  # kept in the run's model file since it was saved
            self.base_value = self.support.sign * float(np.ravel(self._explainer.expected_value)[0])
        else:
            if background is None or background.empty:
                raise ValueError("a model-agnostic explanation needs background rows")
            matrix = model.transform(background)
            self._explainer = shap.PermutationExplainer(model.score_matrix, matrix, seed=seed)
            self.base_value = float(np.mean(model.score_matrix(matrix)))

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
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="LightGBM binary classifier")
                values = self._explainer.shap_values(matrix)
            raw = self.support.sign * np.asarray(values, dtype=np.float64).reshape(len(matrix), -1)
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


def build_explainer(conn: duckdb.DuckDBPyConnection, dataset: Dataset, model: RankingModel, train_until: Any,
                    background: int = BACKGROUND_ROWS, max_evals: int = CASE_EVALS) -> ModelExplainer:
    """The explainer of a run's model (background rows are only loaded where one is needed)."""
    needs_background = model.explanation_support().method != TREE_METHOD
    rows = background_rows(conn, dataset, model.spec, train_until, background) if needs_background else None
    return ModelExplainer(model, rows, max_evals=max_evals)


def explainer_for_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, **options: Any) -> ModelExplainer:
    """Load a run's model (hash-checked) and build its explainer."""
    return build_explainer(conn, dataset, load_model(conn, run), run.train_until, **options)


ExplainerFactory = Callable[[], ModelExplainer]


# ---------------------------------------------------------------------------------------------
# Stored per run, stamped with the feature-set version of the row explained


def explain_case(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, tx_row: int,
                 explainer_factory: ExplainerFactory) -> dict[str, Any]:
    """The explanation of one transaction under a run: the stored one if it explains the current
    feature row, else computed (and stored) now.

    Returns {method, explains, base_value, output, seconds, cached, recomputed, attributions:
    DataFrame(feature, value, raw), lineage: {...}} with the transaction's own (untransformed)
    feature values in `raw`. `recomputed` is True when a stored explanation was stale (its
    features had since been recomputed); `lineage` says whether the run's stored score and the
    features are older than what is explained (see `lineage`).
    """
    feature_set = load_feature_set(conn, dataset)
    frame = load_rows(conn, dataset, feature_set, run.spec, [int(tx_row)])
    if frame.empty:
        raise NotFound(f"transaction row {tx_row} has no features.", hint="Compute the dataset's features again.")
    stored = fetch_records(conn, "SELECT method, explains, base_value, output, attributions, seconds, feature_version "
                           "FROM explanations WHERE run_id = ? AND tx_row = ?", [run.id, int(tx_row)])
    current = stored[0] if stored and stored[0]["feature_version"] == feature_set.version else None
    if current is not None:
        method, explains, base, output, seconds = (current[k] for k in ("method", "explains", "base_value", "output", "seconds"))
        values = json.loads(current["attributions"])
    else:
        started = time.perf_counter()
        explainer = explainer_factory()
        result = explainer.explain(frame)
        seconds = time.perf_counter() - started
        method, explains, base, output = result.method, explainer.support.explains, result.base_value, float(result.output[0])
        values = {f: float(v) for f, v in zip(result.features, result.values[0], strict=True)}
        conn.execute(
            "INSERT OR REPLACE INTO explanations (run_id, tx_row, method, base_value, output, attributions, seconds, "
            "created_at, feature_version, explains) VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP, ?, ?)",
            [run.id, int(tx_row), method, base, output, json.dumps(values), seconds, feature_set.version, explains],
        )
    attributions = pd.DataFrame({
        "feature": list(values),
        "value": list(values.values()),
        "raw": [frame.iloc[0][f] for f in values],
    })
    return {"method": method, "explains": explains, "base_value": base, "output": output, "seconds": seconds,
            "cached": current is not None, "recomputed": bool(stored) and current is None,
            "attributions": attributions, "lineage": lineage(conn, dataset, run, feature_set)}


def lineage(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, feature_set: FeatureSet) -> dict[str, Any]:
    """How what a page shows for a run relates to the current features:
    - `features_version`: the current feature set's version;
    - `score_is_current`: the run's stored scores were computed on these features (False after
      the features were recomputed: the score shown is from the earlier features, rescore to align);
    - `features_behind_labels`: labels changed since the features were computed (recompute them
      for the merchant fraud rate to see the new labels)."""
    return {"features_version": feature_set.version,
            "score_is_current": run.feature_version is not None and run.feature_version == feature_set.version,
            "features_behind_labels": behind_labels(conn, dataset, feature_set)}


def global_importance(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, threshold: float,
                      explainer_factory: ExplainerFactory, alerts: int = GLOBAL_ALERTS, normal: int = GLOBAL_NORMAL,
                      seed: int = 0) -> dict[str, Any]:
    """Mean |SHAP| per feature over a sample of alerts and a sample of normal transactions,
    stored with the feature-set version it explained (recomputed when that is stale)."""
    feature_set = load_feature_set(conn, dataset)
    stored = stored_importance(conn, run, feature_set)
    if stored is None:
        started = time.perf_counter()
        picked = {}
        for group, condition, n in (("alerts", "score >= ?", alerts), ("normal", "score < ?", normal)):
            picked[group] = [r[0] for r in conn.execute(
                f"SELECT tx_row FROM scores WHERE run_id = ? AND {condition} ORDER BY hash(tx_row, ?), tx_row LIMIT ?",
                [run.id, float(threshold), seed, n]).fetchall()]
        # One permutation (2 evaluations per feature) against 10 background rows per explained row:
        # each row's attributions are noisier, their mean over a thousand rows is not.
        explainer = explainer_factory().cheaper(GLOBAL_BACKGROUND_ROWS, 1)
        importance: dict[str, dict[str, float]] = {}
        for group, rows in picked.items():
            if not rows:
                continue
            result = explainer.explain(load_rows(conn, dataset, feature_set, run.spec, rows))
            for feature, value in zip(result.features, np.abs(result.values).mean(axis=0), strict=True):
                importance.setdefault(feature, {})[group] = float(value)
        seconds = time.perf_counter() - started
        conn.execute("INSERT OR REPLACE INTO global_importance (run_id, method, importance, alert_rows, normal_rows, "
                     "seconds, created_at, feature_version) VALUES (?, ?, ?, ?, ?, ?, current_timestamp::TIMESTAMP, ?)",
                     [run.id, explainer.method, json.dumps(importance), len(picked["alerts"]), len(picked["normal"]),
                      seconds, feature_set.version])
        stored = stored_importance(conn, run, feature_set)
    values = json.loads(stored["importance"])
    frame = pd.DataFrame({"feature": list(values),
                          "alerts": [v.get("alerts", np.nan) for v in values.values()],
                          "normal": [v.get("normal", np.nan) for v in values.values()]})
    return {"method": stored["method"], "importance": frame.sort_values("alerts", ascending=False, ignore_index=True),
            "alert_rows": stored["alert_rows"], "normal_rows": stored["normal_rows"], "seconds": stored["seconds"]}


def stored_importance(conn: duckdb.DuckDBPyConnection, run: Run, feature_set: FeatureSet) -> dict[str, Any] | None:
    """A run's stored global importance if it explains the current features, else None."""
    found = fetch_records(conn, "SELECT method, importance, alert_rows, normal_rows, seconds, feature_version "
                          "FROM global_importance WHERE run_id = ?", [run.id])
    return found[0] if found and found[0]["feature_version"] == feature_set.version else None
