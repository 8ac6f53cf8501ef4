"""An ensemble of any detectors, combining their normalized scores.

Raw scores are on unrelated scales (path lengths, log-probabilities, distances), so each
member's scores are put on a common scale learned from its training scores first:
- "mean" and "max": z-scores (score minus the training mean, over the training std);
- "rank": the share of training scores below the score (a percentile), averaged.

Like scikit-learn's meta-estimators, the ensemble keeps its `detectors` parameter unchanged
and fits clones of them (`detectors_`), so `clone(ensemble)` gives an unfitted twin; nested
parameters are addressed as `member__param` (`get_params(deep=True)`, `set_params`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from data.errors import InvalidInput
from detectors.base import Detector, Param, make_detector
from detectors.choices import COMBINE

RANK_REFERENCE_ROWS = 20_000


class Ensemble(Detector):
    name = "ensemble"
    title = "Ensemble"
    summary = "Several detectors at once; normalized scores combined by mean, max or rank average."
    param_specs = (Param("combine", "choice", "mean", "How member scores are combined.", choices=COMBINE),)

    def __init__(self, detectors: list[tuple[str, Detector]] | None = None, combine: str = "mean",
                 random_state: int = 0):
        self.detectors = detectors
        self.combine = combine
        self.random_state = random_state

    @classmethod
    def of(cls, names: list[str], member_params: dict[str, dict[str, Any]] | None = None,
           combine: str = "mean", random_state: int = 0) -> Ensemble:
        """An ensemble of registry detectors, each with its parameters (checked)."""
        member_params = member_params or {}
        ensemble = cls([(n, make_detector(n, member_params.get(n), random_state)) for n in names],
                       combine=combine, random_state=random_state)
        ensemble.check_params()
        return ensemble

    def check_params(self) -> dict[str, Any]:
        params = super().check_params()
        members = self.detectors or []
        if len(members) < 2:
            raise InvalidInput("an ensemble needs at least two detectors.", field="detectors")
        names = [n for n, _ in members]
        if len(set(names)) < len(names):
            raise InvalidInput(f"each detector of an ensemble needs its own name, not {names}.", field="detectors")
        for _, member in members:
            member.check_params()
        return params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=False)
        if deep:
            for member_name, member in self.detectors or []:
                params[member_name] = member
                params.update({f"{member_name}__{k}": v for k, v in member.get_params(deep=True).items()})
        return params

    def set_params(self, **params: Any) -> Ensemble:
        members = dict(self.detectors or [])
        nested: dict[str, dict[str, Any]] = {}
        for key in list(params):
            member_name, sep, rest = key.partition("__")
            if sep and member_name in members:
                nested.setdefault(member_name, {})[rest] = params.pop(key)
        super().set_params(**params)
        for member_name, values in nested.items():
            members[member_name].set_params(**values)
        return self

    def check_rows(self, n_rows: int, action: str) -> None:
        """An ensemble refuses what any of its members refuses."""
        for _, member in self.detectors or []:
            member.check_rows(n_rows, action)

    def fit(self, X: np.ndarray, y: Any = None) -> Ensemble:
        self.check_params()
        X = np.asarray(X, dtype=np.float64)
        self.check_rows(len(X), "fit on")
        self.n_fit_rows_ = len(X)
        self.n_features_in_ = X.shape[1]
        # Normalization is learned from each member's scores on (a sample of) the training rows.
        rng = np.random.default_rng(self.random_state)
        reference = X if len(X) <= RANK_REFERENCE_ROWS else X[np.sort(rng.choice(len(X), RANK_REFERENCE_ROWS, replace=False))]
        self.detectors_, self.mean_, self.std_, self.reference_ = [], [], [], []
        for _, member in self.detectors:
            fitted = clone(member).fit(X)
            train_scores = fitted.decision_function(reference)
            self.detectors_.append(fitted)
            self.mean_.append(float(train_scores.mean()))
            self.std_.append(float(train_scores.std()) or 1.0)
            self.reference_.append(np.sort(train_scores))
        self.sampled_ = any(m.sampled_ for m in self.detectors_)
        return self

    def member_scores(self, X: np.ndarray) -> np.ndarray:
        """Normalized score of each member, one column per member."""
        columns = []
        for i, member in enumerate(self.detectors_):
            raw = member.decision_function(X)
            if self.combine == "rank":
                columns.append(np.searchsorted(self.reference_[i], raw, side="right") / len(self.reference_[i]))
            else:
                columns.append((raw - self.mean_[i]) / self.std_[i])
        return np.column_stack(columns)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "detectors_"):
            raise RuntimeError("ensemble is not fitted")
        normalized = self.member_scores(np.asarray(X, dtype=np.float64))
        return normalized.max(axis=1) if self.combine == "max" else normalized.mean(axis=1)
