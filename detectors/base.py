"""The detector interface, after PyOD's BaseDetector and scikit-learn estimators.

- A detector is built from declared parameters only (`Param`), validated on construction.
- `fit(X)` learns from a numeric matrix and returns `self`; learned state ends in `_`.
- `score(X)` returns one float per row, higher = more anomalous, for every backend.
- Contamination belongs to the threshold, not the fit: `threshold_for(scores, c)` is the
  (1 - c) quantile of the scores, so moving it never refits.
- Backends that do not scale fit on a sample (`fit_sample`) and refuse more than `max_rows`
  rows with a clear message instead of running for hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from data.errors import DataError


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
        """Coerce and check a value (from a widget, the CLI or JSON); ValueError if out of range."""
        if self.kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"{self.name} must be true or false, not {value!r}")
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if self.kind == "choice":
            for choice in self.choices:
                if value == choice or str(value) == str(choice):
                    return choice
            raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, not {value!r}")
        try:
            number = int(value) if self.kind == "int" else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a{'n integer' if self.kind == 'int' else ' number'}, not {value!r}") from None
        if self.kind == "int" and float(value) != number:
            raise ValueError(f"{self.name} must be an integer, not {value!r}")
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise ValueError(f"{self.name} must be between {self.low:g} and {self.high:g}, not {value!r}")
        return number


class Detector:
    """Base class: subclasses set `name`, `title`, `params` and implement `_fit` and `_score`."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    fit_sample: ClassVar[int | None] = None  # fit on at most this many rows (a random sample)
    max_rows: ClassVar[int | None] = None  # refuse to fit or score more rows than this
    seed: int = 0

    def __init__(self, **params: Any):
        declared = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(declared) - {"seed"})
        if unknown:
            raise ValueError(f"{self.name} has no parameter {unknown[0]!r}; it takes: {', '.join(declared) or 'none'}")
        self.seed = int(params.pop("seed", 0))
        self.param_values = {n: p.parse(params.get(n, p.default)) for n, p in declared.items()}

    def get_params(self) -> dict[str, Any]:
        return dict(self.param_values)

    def check_rows(self, n_rows: int, action: str) -> None:
        """Raise a DataError if this detector cannot `action` (fit on / score) `n_rows` rows."""
        if self.max_rows is not None and n_rows > self.max_rows:
            raise DataError(
                f"{self.title} does not scale: it can {action} at most {self.max_rows:,} rows, not {n_rows:,}.",
                hint="Choose a shorter period (train until / score a smaller dataset) or a scalable detector "
                "such as IsolationForest, HBOS or ECOD.",
            )

    def fit(self, X: np.ndarray) -> Detector:
        X = np.asarray(X, dtype=np.float64)
        self.check_rows(len(X), "fit on")
        self.n_fit_rows_ = len(X)
        if self.fit_sample is not None and len(X) > self.fit_sample:
            rows = np.random.default_rng(self.seed).choice(len(X), self.fit_sample, replace=False)
            X = X[np.sort(rows)]
        self.sampled_ = len(X) < self.n_fit_rows_
        self.n_features_in_ = X.shape[1]
        self._fit(X)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score per row, higher = more anomalous."""
        if not hasattr(self, "n_features_in_"):
            raise RuntimeError(f"{self.name} is not fitted")
        X = np.asarray(X, dtype=np.float64)
        self.check_rows(len(X), "score")
        return finite_scores(np.asarray(self._score(X), dtype=np.float64).ravel())

    def _fit(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
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
    """The share of rows to alert on: strictly between 0 and 1."""
    if not 0 < contamination < 1:
        raise ValueError(f"contamination must be between 0 and 1, got {contamination}")
    return float(contamination)


def threshold_for(scores: np.ndarray, contamination: float) -> float:
    """The score at or above which the top `contamination` share of rows are alerts."""
    check_contamination(contamination)
    return float(np.quantile(np.asarray(scores, dtype=np.float64), 1 - contamination, method="higher"))


REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    REGISTRY[cls.name] = cls
    return cls


def make_detector(name: str, params: dict[str, Any] | None = None, seed: int = 0) -> Detector:
    """A detector by registry name, with parameters checked against its declaration."""
    if name not in REGISTRY:
        raise ValueError(f"unknown detector {name!r}; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[name](**(params or {}), seed=seed)
