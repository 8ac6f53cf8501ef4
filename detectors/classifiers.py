"""The classifiers a version learned from labels can be: their defaults, search spaces, how class
imbalance is handled, and how their scores are explained.

- `lgbm` LightGBM, `hgb` scikit-learn's HistGradientBoosting, `rf` a random forest. The gradient
  boosters read missing values as they are (a merchant with no history is information); the forest
  and SMOTE need them filled, with the training medians.
- Imbalance (fraud is under 1% of transactions): `none`, `weights` (classes weighted by their
  inverse frequency), `undersample` (legitimate rows sampled down to ten per fraud) or `smote`
  (synthetic frauds, up to one per ten legitimate), by imbalanced-learn; resampling touches the
  training rows only, never what is scored. `make bench-quality` measures each. Past
  `LEGITIMATE_KEPT` legitimate labels (a whole label column's history), a uniform sample of them:
  ten per fraud, at least `LEGITIMATE_KEPT`, at most `MAX_LEGITIMATE`.
- Explanations: the boosters are explained exactly by shap's TreeExplainer, in log-odds of fraud;
  the forest by the permutation explainer on its fraud probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data.errors import InvalidInput
from detectors.base import ExplanationSupport
from detectors.choices import DEFAULT_IMBALANCE, DEFAULT_MODEL, IMBALANCE, MODELS  # noqa: F401


@dataclass(frozen=True)
class ClassifierSpec:
    name: str
    title: str
    defaults: dict[str, Any]
    space: dict[str, tuple[Any, ...]]  # what `--search` draws from
    fills_missing: bool = False
    explanation: str = "tree"
    extra: dict[str, Any] = field(default_factory=dict)  # fixed arguments, not tuned


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "lgbm": ClassifierSpec(
        "lgbm", MODELS["lgbm"],
        # 300 trees at 0.07, not 400 at 0.05: the same average precision in `make bench-quality`,
        # and a retrain on a 1.6M-label history in 27 s instead of 33 (README).
        defaults={"n_estimators": 300, "learning_rate": 0.07, "num_leaves": 31, "min_child_samples": 20,
                  "colsample_bytree": 0.8, "subsample": 0.8, "reg_lambda": 1.0},
        space={"n_estimators": (200, 400, 800), "learning_rate": (0.02, 0.05, 0.1), "num_leaves": (15, 31, 63, 127),
               "min_child_samples": (10, 20, 50, 100), "colsample_bytree": (0.5, 0.8, 1.0),
               "subsample": (0.6, 0.8, 1.0), "reg_lambda": (0.0, 1.0, 5.0)},
        extra={"subsample_freq": 1, "verbose": -1}),
    "hgb": ClassifierSpec(
        "hgb", MODELS["hgb"],
        defaults={"max_iter": 300, "learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20,
                  "l2_regularization": 0.0},
        space={"max_iter": (100, 300, 600), "learning_rate": (0.03, 0.1, 0.2), "max_leaf_nodes": (15, 31, 63),
               "min_samples_leaf": (10, 20, 50), "l2_regularization": (0.0, 1.0)}),
    "rf": ClassifierSpec(
        "rf", MODELS["rf"],
        defaults={"n_estimators": 300, "min_samples_leaf": 2, "max_features": "sqrt"},
        space={"n_estimators": (200, 300, 500), "min_samples_leaf": (1, 2, 5), "max_features": ("sqrt", 0.5)},
        fills_missing=True, explanation="permutation"),
}
RESAMPLED_RATIO = 0.1  # under-sampling / SMOTE: one fraud per ten legitimate transactions afterwards
# Past LEGITIMATE_KEPT legitimate labels a model trains on a uniform sample of them (every fraud
# kept): LEGITIMATE_PER_FRAUD per fraud, never fewer than LEGITIMATE_KEPT nor more than
# MAX_LEGITIMATE. On 1.6M handbook-shaped labels (13,484 frauds) the test week's average precision
# was 0.763 on all of them, 0.761 on 540k, 0.761 on 270k (20 per fraud) and 0.765 on 135k (10 per
# fraud, 200 trees), in a seventh of the fitting time. A week of labels (the protocol of `make
# bench-quality`) stays below LEGITIMATE_KEPT, so it trains on every label.
LEGITIMATE_KEPT = 200_000
LEGITIMATE_PER_FRAUD = 10
MAX_LEGITIMATE = 500_000


def legitimate_limit(frauds: int) -> int:
    """How many legitimate labels a model trains on at most, with `frauds` frauds beside them."""
    return min(MAX_LEGITIMATE, max(LEGITIMATE_KEPT, LEGITIMATE_PER_FRAUD * int(frauds)))

LOG_ODDS = ExplanationSupport("tree", "the model's log-odds of fraud, against its mean over the training transactions")
FRAUD_PROBABILITY = ExplanationSupport(
    "permutation", "the model's fraud probability, against its mean over a background sample of training transactions")


def classifier_spec(name: str) -> ClassifierSpec:
    if name not in CLASSIFIERS:
        raise InvalidInput(f"model must be one of {', '.join(CLASSIFIERS)}, not {name!r}.", field="model")
    return CLASSIFIERS[name]


def check_imbalance(imbalance: str) -> str:
    if imbalance not in IMBALANCE:
        raise InvalidInput(f"imbalance must be one of {', '.join(IMBALANCE)}, not {imbalance!r}.", field="imbalance")
    return imbalance


def check_params(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The model's parameters: its defaults overridden by `params` (only known names)."""
    spec = classifier_spec(name)
    unknown = sorted(set(params or {}) - set(spec.defaults))
    if unknown:
        raise InvalidInput(f"{spec.title} has no parameter {unknown[0]!r}; it takes: {', '.join(spec.defaults)}.",
                           field=unknown[0])
    return {**spec.defaults, **(params or {})}


def make_classifier(name: str, params: dict[str, Any], imbalance: str, random_state: int) -> Any:
    """An unfitted estimator with `params`, weighting classes when `imbalance` is "weights"."""
    spec = classifier_spec(name)
    weighted = imbalance == "weights"
    if name == "lgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(**params, **spec.extra, class_weight="balanced" if weighted else None,
                              random_state=random_state, n_jobs=-1)
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(**params, class_weight="balanced" if weighted else None,
                                              random_state=random_state)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**params, class_weight="balanced_subsample" if weighted else None, n_jobs=-1,
                                  random_state=random_state)


def resample(X: np.ndarray, y: np.ndarray, imbalance: str, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """The training rows after under-sampling or SMOTE, towards one fraud per ten legitimate rows;
    as they are when frauds are not that rare (analysts labelling alerts often find more fraud
    than not) or when there are too few to interpolate between."""
    X, y = cap_legitimate(X, y, random_state, legitimate_limit(int(y.sum())))
    frauds, legitimate = int(y.sum()), int(len(y) - y.sum())
    if imbalance not in ("undersample", "smote") or not legitimate or frauds / legitimate >= RESAMPLED_RATIO:
        return X, y
    if imbalance == "undersample":
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(sampling_strategy=RESAMPLED_RATIO, random_state=random_state).fit_resample(X, y)
    if frauds < 2:
        return X, y
    from imblearn.over_sampling import SMOTE

    return SMOTE(sampling_strategy=RESAMPLED_RATIO, k_neighbors=min(5, frauds - 1),
                 random_state=random_state).fit_resample(X, y)


def cap_legitimate(X: np.ndarray, y: np.ndarray, random_state: int,
                   limit: int = MAX_LEGITIMATE) -> tuple[np.ndarray, np.ndarray]:
    """The rows with at most `limit` legitimate ones (a seeded uniform sample, in their order) and
    every fraud; as they are when there are fewer."""
    legitimate = np.flatnonzero(y == 0)
    if len(legitimate) <= limit:
        return X, y
    kept = np.random.default_rng(random_state).choice(legitimate, limit, replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(y != 0), kept]))
    return X[rows], y[rows]


def explanation_for(name: str, classifier: Any) -> ExplanationSupport:
    if classifier_spec(name).explanation == "tree":
        return ExplanationSupport(LOG_ODDS.method, LOG_ODDS.explains, tree_model=classifier)
    return FRAUD_PROBABILITY
