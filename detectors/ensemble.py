"""An ensemble of any detectors, combining their normalized scores.

Raw scores are on unrelated scales (path lengths, log-probabilities, distances), so each
member's scores are put on a common scale learned from its training scores first:
- "mean" and "max": z-scores (score minus the training mean, over the training std);
- "rank": the share of training scores below the score (a percentile), averaged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.base import Detector, Param, make_detector

COMBINE = ("mean", "max", "rank")
RANK_REFERENCE_ROWS = 20_000


class Ensemble(Detector):
    name = "ensemble"
    title = "Ensemble"
    summary = "Several detectors at once; normalized scores combined by mean, max or rank average."
    params = (Param("combine", "choice", "mean", "How member scores are combined.", choices=COMBINE),)

    def __init__(self, members: list[Detector], **params: Any):
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two detectors")
        super().__init__(**params)
        self.members = members

    @classmethod
    def of(cls, names: list[str], member_params: dict[str, dict[str, Any]] | None = None,
           combine: str = "mean", seed: int = 0) -> Ensemble:
        member_params = member_params or {}
        return cls([make_detector(n, member_params.get(n), seed=seed) for n in names], combine=combine, seed=seed)

    def get_params(self) -> dict[str, Any]:
        return {"combine": self.param_values["combine"], "members": {m.name: m.get_params() for m in self.members}}

    def check_rows(self, n_rows: int, action: str) -> None:
        """An ensemble refuses what any of its members refuses."""
        for member in self.members:
            member.check_rows(n_rows, action)

    def fit(self, X: np.ndarray) -> Ensemble:
        X = np.asarray(X, dtype=np.float64)
        self.check_rows(len(X), "fit on")
        self.n_fit_rows_ = len(X)
        self.n_features_in_ = X.shape[1]
        # Normalization is learned from each member's scores on (a sample of) the training rows.
        rng = np.random.default_rng(self.seed)
        reference = X if len(X) <= RANK_REFERENCE_ROWS else X[np.sort(rng.choice(len(X), RANK_REFERENCE_ROWS, replace=False))]
        self.mean_, self.std_, self.reference_ = [], [], []
        for member in self.members:
            member.fit(X)
            train_scores = member.score(reference)
            self.mean_.append(float(train_scores.mean()))
            self.std_.append(float(train_scores.std()) or 1.0)
            self.reference_.append(np.sort(train_scores))
        self.sampled_ = any(m.sampled_ for m in self.members)
        return self

    def member_scores(self, X: np.ndarray) -> np.ndarray:
        """Normalized score of each member, one column per member."""
        combine = self.param_values["combine"]
        columns = []
        for i, member in enumerate(self.members):
            raw = member.score(X)
            if combine == "rank":
                columns.append(np.searchsorted(self.reference_[i], raw, side="right") / len(self.reference_[i]))
            else:
                columns.append((raw - self.mean_[i]) / self.std_[i])
        return np.column_stack(columns)

    def score(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "n_features_in_"):
            raise RuntimeError("ensemble is not fitted")
        normalized = self.member_scores(np.asarray(X, dtype=np.float64))
        return normalized.max(axis=1) if self.param_values["combine"] == "max" else normalized.mean(axis=1)
