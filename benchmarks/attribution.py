"""Attribution accuracy: does SHAP name the feature that was made anomalous? (A benchmark
figure, `make bench-investigation`, and a test's yardstick, tests/unit/test_explain.py.)"""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.base import make_detector
from detectors.explain import BACKGROUND_ROWS, ModelExplainer
from detectors.pipeline import DetectorModel, FeatureSpec


def attribution_accuracy(detector: str, n_features: int = 8, n_train: int = 20_000, n_rows: int = 200,
                         shift: float = 6.0, seed: int = 0) -> float:
    """Share of rows whose top 'toward suspicious' feature is the one deliberately made anomalous.

    Training rows are standard normal; each test row has every feature within +-2 standard
    deviations except one (cycling through the features), set to +-`shift`.
    """
    rng = np.random.default_rng(seed)
    names = [f"feature_{i}" for i in range(n_features)]
    train = pd.DataFrame(rng.normal(size=(n_train, n_features)), columns=names)
    model = DetectorModel(make_detector(detector, random_state=seed), FeatureSpec(names)).fit(train)
    rows = np.clip(rng.normal(size=(n_rows, n_features)), -2.0, 2.0)
    planted = np.arange(n_rows) % n_features
    rows[np.arange(n_rows), planted] = np.where(rng.random(n_rows) < 0.5, -shift, shift)
    explainer = ModelExplainer(model, train.sample(BACKGROUND_ROWS, random_state=seed), seed=seed)
    top = explainer.explain(pd.DataFrame(rows, columns=names)).top_feature()
    return float(np.mean(np.asarray(top) == np.asarray(names)[planted]))
