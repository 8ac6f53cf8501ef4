"""What a run stores: a fitted model that ranks transactions, higher = more suspicious.

Detector runs (`detectors.pipeline.DetectorModel`: preprocessing + an anomaly detector) and
versions learned from labels (`detectors.supervised.LearnedModel`: a classifier whose score is
the fraud probability) both implement this one protocol, so scoring, the queue, thresholds,
evaluation and SHAP explanations treat them alike; nothing asks which kind it was given.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from detectors.base import ExplanationSupport
from detectors.pipeline import FeatureSpec


@runtime_checkable
class RankingModel(Protocol):
    spec: FeatureSpec
    # The columns of `transform`'s matrix: "numeric__<feature>" or "categorical__<column>_<value>".
    feature_names_: list[str]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Feature rows (as `load_frame` returns them) to the model's numeric matrix."""

    def score_matrix(self, X: np.ndarray) -> np.ndarray:
        """One score per row of a transformed matrix, higher = more suspicious."""

    def decision_function(self, frame: pd.DataFrame) -> np.ndarray:
        """One score per feature row: `score_matrix(transform(frame))`."""

    def check_rows(self, n_rows: int, action: str) -> None:
        """Refuse (InvalidInput) to `action` more rows than the model can handle."""

    def explanation_support(self) -> ExplanationSupport:
        """How SHAP explains this model's scores (declared by the model, never guessed)."""
