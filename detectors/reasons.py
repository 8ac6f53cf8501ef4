"""Reasons for a live decision: the features that pushed a score up, cheap enough for every one.

SHAP costs about 0.7 ms per row for a tree model and far more for a model-agnostic explainer, so
the live path uses occlusion instead: for each feature, the score again with that feature set to
its usual value (the mean of the model's input over training rows); its contribution is how much
the score drops. All features of all rows are scored in one call of the model, which makes a
single transaction's reasons cost about one more model call. The case page still shows SHAP.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from detectors.explain import _aggregation_matrix
from detectors.ranking import RankingModel

TOP = 3


class Occlusion:
    """Per-feature contributions of one model, against a baseline of usual values."""

    def __init__(self, model: RankingModel, background: pd.DataFrame):
        self.model = model
        self.features = model.spec.numeric + model.spec.categorical
        self.aggregate = _aggregation_matrix(model.feature_names_, model.spec)
        matrix = model.transform(background) if len(background) else np.zeros((1, len(model.feature_names_)))
        with np.errstate(all="ignore"):
            baseline = np.nanmean(np.asarray(matrix, dtype=np.float64), axis=0) if len(matrix) else None
        self.baseline = np.nan_to_num(baseline if baseline is not None else np.zeros(matrix.shape[1]))
        # Which transformed columns belong to each feature.
        self.columns = [np.flatnonzero(self.aggregate[:, j]) for j in range(len(self.features))]

    def reasons(self, frame: pd.DataFrame, X: np.ndarray, scores: np.ndarray, top: int = TOP) -> list[list[dict[str, Any]]]:
        """The `top` features raising each row's score, with the row's value and the contribution."""
        n, used = len(X), [j for j, cols in enumerate(self.columns) if len(cols)]
        if n == 0 or not used:
            return [[] for _ in range(n)]
        stacked = np.repeat(X[np.newaxis, :, :], len(used), axis=0)
        for k, j in enumerate(used):
            stacked[k][:, self.columns[j]] = self.baseline[self.columns[j]]
        occluded = self.model.score_matrix(stacked.reshape(len(used) * n, X.shape[1])).reshape(len(used), n)
        contributions = scores[np.newaxis, :] - occluded  # (features, rows)
        out = []
        for i in range(n):
            order = np.argsort(-contributions[:, i], kind="stable")[:top]
            row = []
            for k in order:
                name = self.features[used[k]]
                row.append({"feature": name, "value": _plain(frame.iloc[i][name]) if name in frame.columns else None,
                            "contribution": float(contributions[k, i])})
            out.append(row)
        return out


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    if pd.isna(value):
        return None
    return value
