"""The detector contract, after scikit-learn's estimators and PyOD's detectors.

- Parameters are explicit keyword arguments of `__init__`, stored unchanged, so scikit-learn's
  `get_params` / `set_params` / `clone` and `repr` work. Each detector also declares them as
  `param_specs` (type, range, default, help): the pages render controls from them and the
  command line parses `K=V` with them. `check_params` validates, at the boundary (`make_detector`)
  and again in `fit`, never in `__init__` (scikit-learn's rule: `clone` must be able to rebuild
  any estimator from its parameters).
- `fit(X)` learns from a numeric matrix and returns `self`; learned state ends in `_`.
- `decision_function(X)` returns one float per row, **higher = more anomalous**, for every
  backend: PyOD's name and direction. (scikit-learn's `score_samples` has the opposite
  direction for outlier detectors, lower = more abnormal, so Centinela does not use that name.)
- Randomness comes from `random_state` only, never from a global generator.
- Contamination belongs to the threshold, not the fit: `threshold_for(scores, c)` is the
  (1 - c) quantile of the scores, so moving it never refits.
- Backends that do not scale fit on a sample (`fit_sample`) and refuse more than `max_rows`
  rows with a clear message instead of running for hours.
- How a fitted detector can be explained is the detector's own declaration
  (`explanation_support`): an exact tree explainer for isolation forests, the model-agnostic
  permutation explainer otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from data.errors import InvalidInput
from detectors.choices import DEFAULT_CONTAMINATION, DEFAULT_DETECTOR, MAX_CONTAMINATION, MIN_CONTAMINATION  # noqa: F401


@dataclass(frozen=True)
class Param:
    """A tunable parameter: what the UI renders a control from and the CLI parses `K=V` with."""

    name: str
    kind: str  # "int", "float", "choice" or "bool"
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    log: bool = False  # tune on a log scale

    def parse(self, value: Any) -> Any:
        """Coerce and check a value (from a widget, the CLI or JSON); InvalidInput if out of range."""
        if self.kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise self._invalid(f"must be true or false, not {value!r}")
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if self.kind == "choice":
            for choice in self.choices:
                if value == choice or str(value) == str(choice):
                    return choice
            raise self._invalid(f"must be one of {', '.join(map(str, self.choices))}, not {value!r}")
        try:
            number = int(value) if self.kind == "int" else float(value)
        except (TypeError, ValueError):
            raise self._invalid(f"must be a{'n integer' if self.kind == 'int' else ' number'}, not {value!r}") from None
        if self.kind == "int" and float(value) != number:
            raise self._invalid(f"must be an integer, not {value!r}")
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise self._invalid(f"must be between {self.low:g} and {self.high:g}, not {value!r}")
        return number

    def _invalid(self, problem: str) -> InvalidInput:
        return InvalidInput(f"{self.name} {problem}.", field=self.name)


@dataclass(frozen=True)
class ExplanationSupport:
    """How a fitted model's scores can be explained with SHAP.

    method "tree": shap's exact TreeExplainer over `tree_model`, whose output times `sign` is
    what the attributions explain (isolation forests explain the mean path length, where shorter
    is more anomalous, hence sign -1). method "permutation": shap's model-agnostic explainer over
    the model's own scores, against a background sample.
    """

    method: str
    explains: str  # what the attributions add up to, in words (the case page's caption)
    tree_model: Any = None
    sign: float = 1.0


PERMUTATION = ExplanationSupport(
    "permutation", "the anomaly score, against the mean score of a background sample of training transactions")


class Detector(BaseEstimator):
    """Base class: subclasses set the class data below, write `__init__` with their parameters
    (each stored unchanged under its own name) and implement `_fit` and `_decision_function`."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    param_specs: ClassVar[tuple[Param, ...]] = ()
    fit_sample: ClassVar[int | None] = None  # fit on at most this many rows (a random sample)
    max_rows: ClassVar[int | None] = None  # refuse to fit or score more rows than this

    random_state: int

    def check_params(self) -> dict[str, Any]:
        """The declared parameters, each parsed and checked (InvalidInput naming the first bad one)."""
        return {p.name: p.parse(getattr(self, p.name)) for p in self.param_specs}

    def check_rows(self, n_rows: int, action: str) -> None:
        """Raise InvalidInput if this detector cannot `action` (fit on / score) `n_rows` rows."""
        if self.max_rows is not None and n_rows > self.max_rows:
            raise InvalidInput(
                f"{self.title} does not scale: it can {action} at most {self.max_rows:,} rows, not {n_rows:,}.",
                hint="Choose a shorter period (train until / score a smaller dataset) or a scalable detector "
                "such as IsolationForest, HBOS or ECOD.",
            )

    def fit(self, X: np.ndarray, y: Any = None) -> Detector:
        """Learn from `X` (y is ignored: detectors are unsupervised); returns self."""
        params = self.check_params()
        X = np.asarray(X, dtype=np.float64)
        self.check_rows(len(X), "fit on")
        self.n_fit_rows_ = len(X)
        if self.fit_sample is not None and len(X) > self.fit_sample:
            rows = np.random.default_rng(self.random_state).choice(len(X), self.fit_sample, replace=False)
            X = X[np.sort(rows)]
        self.sampled_ = len(X) < self.n_fit_rows_
        self.n_features_in_ = X.shape[1]
        self._fit(X, params)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per row, higher = more anomalous (finite: see `finite_scores`)."""
        if not hasattr(self, "n_features_in_"):
            raise RuntimeError(f"{self.name} is not fitted")
        X = np.asarray(X, dtype=np.float64)
        self.check_rows(len(X), "score")
        return finite_scores(np.asarray(self._decision_function(X), dtype=np.float64).ravel())

    def explanation_support(self) -> ExplanationSupport:
        return PERMUTATION

    def _fit(self, X: np.ndarray, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def _decision_function(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def finite_scores(scores: np.ndarray) -> np.ndarray:
    """Scores with infinities clamped just past the finite range and NaN as the least anomalous,
    so thresholds and metrics stay defined (a backend may overflow on an extreme row)."""
    finite = scores[np.isfinite(scores)]
    if len(finite) == len(scores):
        return scores
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 0.0)
    return np.nan_to_num(scores, nan=low, posinf=high + 1.0, neginf=low - 1.0)


def check_contamination(contamination: float) -> float:
    """The share of rows to alert on, between MIN_CONTAMINATION and MAX_CONTAMINATION."""
    try:
        value = float(contamination)
    except (TypeError, ValueError):
        raise InvalidInput(f"contamination must be a number, not {contamination!r}.", field="contamination") from None
    if not MIN_CONTAMINATION <= value <= MAX_CONTAMINATION:
        raise InvalidInput(f"contamination must be between {MIN_CONTAMINATION} and {MAX_CONTAMINATION}, got {contamination}.",
                           field="contamination")
    return value


def threshold_for(scores: np.ndarray, contamination: float) -> float:
    """The score at or above which the top `contamination` share of rows are alerts."""
    check_contamination(contamination)
    return float(np.quantile(np.asarray(scores, dtype=np.float64), 1 - contamination, method="higher"))


REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Detector]]:
    """Every detector backend by name, loading them on first use."""
    import detectors.backends  # noqa: F401  (registers the backends)

    return REGISTRY


def detector_class(name: str) -> type[Detector]:
    backends = registered()
    if name not in backends:
        raise InvalidInput(f"unknown detector {name!r}; choose one of: {', '.join(backends)}.", field="detector")
    return backends[name]


def make_detector(name: str, params: dict[str, Any] | None = None, random_state: int = 0) -> Detector:
    """A detector by registry name, with parameters parsed and checked against its declaration."""
    cls = detector_class(name)
    declared = {p.name: p for p in cls.param_specs}
    unknown = sorted(set(params or {}) - set(declared))
    if unknown:
        raise InvalidInput(f"{name} has no parameter {unknown[0]!r}; it takes: {', '.join(declared) or 'none'}.",
                           field=unknown[0])
    parsed = {n: p.parse((params or {}).get(n, p.default)) for n, p in declared.items()}
    return cls(**parsed, random_state=int(random_state))
