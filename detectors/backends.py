"""The detector backends: scikit-learn's IsolationForest and PyOD's detectors.

PyOD's contamination parameter only sets its own label threshold; Centinela thresholds scores
itself (`threshold_for`), so it is left at PyOD's default and never exposed.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import skew

from detectors.base import Detector, Param, register

SEED_NOTE = "Random seed (same seed, same model)."


@register
class SklearnIsolationForest(Detector):
    name = "isolation_forest"
    title = "IsolationForest (scikit-learn)"
    summary = "Isolates rare points with random splits; fast, the default."
    params = (
        Param("n_estimators", "int", 200, "Number of trees.", 20, 1000),
        Param("max_samples", "int", 256, "Rows drawn to build each tree.", 16, 100_000, log=True),
        Param("max_features", "float", 1.0, "Share of features each tree sees.", 0.1, 1.0),
    )

    def _fit(self, X: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        p = self.param_values
        self.model_ = IsolationForest(n_estimators=p["n_estimators"], max_samples=min(p["max_samples"], len(X)),
                                      max_features=p["max_features"], n_jobs=-1, random_state=self.seed).fit(X)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(X)  # sklearn: lower = more abnormal


class _PyOD(Detector):
    """A PyOD detector: `decision_function` is already 'higher = more anomalous'."""

    def _make(self):
        raise NotImplementedError

    def _fit(self, X: np.ndarray) -> None:
        self.model_ = self._make().fit(X)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self.model_.decision_function(X)


@register
class PyODIForest(_PyOD):
    name = "iforest"
    title = "IForest (PyOD)"
    summary = "PyOD's isolation forest."
    params = SklearnIsolationForest.params

    def _fit(self, X: np.ndarray) -> None:
        from pyod.models.iforest import IForest

        p = self.param_values
        self.model_ = IForest(n_estimators=p["n_estimators"], max_samples=min(p["max_samples"], len(X)),
                              max_features=p["max_features"], n_jobs=-1, random_state=self.seed).fit(X)


class _Ecdf(Detector):
    """ECOD and COPOD, scored against the empirical CDFs learned at fit time.

    PyOD's own `decision_function` recomputes the CDFs over training plus new rows, which costs
    a sort of both and lets the scored rows shape the model. Here PyOD's formulas are applied to
    new rows with the training CDFs (a binary search per column), so a time-aware run scores the
    later period against the earlier one only. The CDFs come from a sample of `fit_sample` rows.
    """

    fit_sample = 50_000

    def _fit(self, X: np.ndarray) -> None:
        self.sorted_ = np.sort(X, axis=0)
        self.skew_sign_ = np.sign(np.nan_to_num(skew(X, axis=0)))

    def _tails(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(self.sorted_)
        left = np.empty_like(X)
        right = np.empty_like(X)
        for j in range(X.shape[1]):
            column = self.sorted_[:, j]
            # P(x' <= x) and P(x' >= x), counting the scored row itself so neither is ever zero.
            left[:, j] = (np.searchsorted(column, X[:, j], side="right") + 1) / (n + 1)
            right[:, j] = (n - np.searchsorted(column, X[:, j], side="left") + 1) / (n + 1)
        u_l, u_r = -np.log(left), -np.log(right)
        s = self.skew_sign_
        u_skew = u_l * -np.sign(s - 1) + u_r * np.sign(s + 1)
        return u_l, u_r, u_skew


@register
class PyODECOD(_Ecdf):
    name = "ecod"
    title = "ECOD (PyOD)"
    summary = "Empirical-CDF tail probabilities per feature; no parameters, fast."

    def _score(self, X: np.ndarray) -> np.ndarray:
        u_l, u_r, u_skew = self._tails(X)
        return np.maximum(np.maximum(u_l, u_r), u_skew).sum(axis=1)


@register
class PyODCOPOD(_Ecdf):
    name = "copod"
    title = "COPOD (PyOD)"
    summary = "Empirical-copula tail probabilities; no parameters, fast."

    def _score(self, X: np.ndarray) -> np.ndarray:
        u_l, u_r, u_skew = self._tails(X)
        return np.maximum(u_skew, (u_l + u_r) / 2).sum(axis=1)


@register
class PyODHBOS(_PyOD):
    name = "hbos"
    title = "HBOS (PyOD)"
    summary = "Histogram per feature, scores add up; the fastest."
    params = (
        Param("n_bins", "int", 20, "Histogram bins per feature.", 5, 200),
        Param("alpha", "float", 0.1, "Regularizer against empty bins.", 0.001, 1.0, log=True),
        Param("tol", "float", 0.5, "Tolerance for values just outside the bins.", 0.0, 1.0),
    )

    def _make(self):
        from pyod.models.hbos import HBOS

        return HBOS(**self.param_values)


@register
class PyODPCA(_PyOD):
    name = "pca"
    title = "PCA (PyOD)"
    summary = "Distance from the main linear structure (weighted reconstruction error)."
    params = (Param("whiten", "bool", False, "Whiten the components."),)

    def _make(self):
        from pyod.models.pca import PCA

        # Unweighted: PyOD's weighting divides by each component's explained variance, and the
        # near-zero ones of engineered features overflow every score to infinity.
        return PCA(whiten=self.param_values["whiten"], weighted=False, random_state=self.seed)


@register
class PyODLODA(_PyOD):
    name = "loda"
    title = "LODA (PyOD)"
    summary = "Ensemble of histograms on random one-dimensional projections."
    params = (
        Param("n_bins", "int", 10, "Histogram bins per projection.", 5, 100),
        Param("n_random_cuts", "int", 100, "Number of random projections.", 10, 500),
    )

    def _make(self):
        from pyod.models.loda import LODA

        return LODA(n_bins=self.param_values["n_bins"], n_random_cuts=self.param_values["n_random_cuts"],
                    random_state=self.seed)

    def _fit(self, X: np.ndarray) -> None:
        np.random.seed(self.seed)  # LODA draws its projections from NumPy's global generator
        super()._fit(X)


@register
class PyODKNN(_PyOD):
    name = "knn"
    title = "KNN (PyOD)"
    summary = "Distance to the k-th nearest neighbour; fits on a 20,000-row sample."
    fit_sample = 20_000
    max_rows = 500_000
    params = (
        Param("n_neighbors", "int", 10, "Neighbours considered.", 1, 100),
        Param("method", "choice", "largest", "Distance used: to the k-th, the mean or the median neighbour.",
              choices=("largest", "mean", "median")),
    )

    def _make(self):
        from pyod.models.knn import KNN

        return KNN(n_neighbors=self.param_values["n_neighbors"], method=self.param_values["method"], n_jobs=-1)


@register
class PyODLOF(_PyOD):
    name = "lof"
    title = "LOF (PyOD)"
    summary = "Local density compared with the neighbours'; fits on a 20,000-row sample."
    fit_sample = 20_000
    max_rows = 500_000
    params = (Param("n_neighbors", "int", 20, "Neighbours considered.", 2, 200),)

    def _make(self):
        from pyod.models.lof import LOF

        return LOF(n_neighbors=self.param_values["n_neighbors"], n_jobs=-1)


@register
class PyODOCSVM(_PyOD):
    name = "ocsvm"
    title = "One-class SVM (PyOD)"
    summary = "Boundary around the normal mass; fits on a 5,000-row sample, slow to score."
    fit_sample = 5_000
    max_rows = 200_000
    params = (
        Param("nu", "float", 0.1, "Upper bound on the share of training rows outside the boundary.", 0.001, 0.9),
        Param("kernel", "choice", "rbf", "Kernel.", choices=("rbf", "linear", "poly", "sigmoid")),
    )

    def _make(self):
        from pyod.models.ocsvm import OCSVM

        return OCSVM(nu=self.param_values["nu"], kernel=self.param_values["kernel"])
