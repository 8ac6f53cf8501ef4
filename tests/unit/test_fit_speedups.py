"""The two shortcuts in the default fit give scikit-learn's own numbers: the median imputer
(np.nanmedian for np.ma.median) and the isolation forest scored tree by tree without joblib, in
row blocks on threads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer

from detectors import compiled_forest
from detectors.compiled_forest import DESCENT_ROWS, PARALLEL_ROWS, CompiledIsolationForest
from detectors.impute import MedianImputer


def _with_gaps(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.lognormal(size=(rows, 6)).round(2)  # rounded: ties, as amounts have
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 3] = np.nan  # a column never observed
    X[: rows // 2, 4] = np.nan  # half missing
    X[:, 5] = 7.0  # constant
    return X


@pytest.mark.parametrize("rows", [1, 2, 9, 10, 1_001, 20_000])
@pytest.mark.parametrize("keep_empty", [False, True])
def test_median_imputer_equals_simple_imputer(rows, keep_empty):
    X = _with_gaps(rows, seed=rows)
    ours = MedianImputer(keep_empty_features=keep_empty).fit(X)
    theirs = SimpleImputer(strategy="median", keep_empty_features=keep_empty).fit(X)
    np.testing.assert_array_equal(ours.statistics_, theirs.statistics_)  # NaN where theirs has NaN
    new = _with_gaps(50, seed=rows + 1)
    np.testing.assert_array_equal(ours.transform(new), theirs.transform(new))
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())


def test_median_imputer_is_a_scikit_learn_estimator():
    imputer = MedianImputer(keep_empty_features=True)
    assert clone(imputer).get_params() == {"keep_empty_features": True}
    assert imputer.fit(np.array([[1.0], [np.nan], [3.0]])) is imputer and imputer.statistics_.tolist() == [2.0]


@pytest.mark.parametrize("max_features", [1.0, 0.6])
def test_forest_scores_in_row_blocks_are_the_sequential_scores(max_features, monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3 * PARALLEL_ROWS + 17, 5))
    X[5_000:][rng.random((len(X) - 5_000, 5)) < 0.01] = np.nan  # missing values where scored, not fitted
    forest = IsolationForest(n_estimators=50, max_features=max_features, random_state=0).fit(X[:5_000])
    compiled = CompiledIsolationForest(forest)
    np.testing.assert_array_equal(compiled.score_samples(X), forest.score_samples(X))  # bit for bit, in row order
    for rows in (1, DESCENT_ROWS, DESCENT_ROWS + 1, 100):  # each side of the switch, with missing values
        scored = X[5_000:5_000 + rows]
        np.testing.assert_array_equal(compiled.score_samples(scored), forest.score_samples(scored))
    assert np.isnan(X[5_000:5_000 + 100]).any()
    monkeypatch.setattr(compiled_forest, "cores", lambda: 2)  # row blocks on threads on any machine
    np.testing.assert_array_equal(compiled.score_samples(X), forest.score_samples(X))
    with pytest.raises(ValueError, match="fitted on 5 features"):
        compiled.score_samples(X[:100, :4])  # the trees' apply would read past the row unchecked



def _handbook_card_precision_reference(frame, k, known_compromised=()):
    """The definition written the plain way (pandas per day, strings): the oracle for the fast one."""
    import pandas as pd

    data = frame.dropna(subset=["card", "y"])
    per_card = data.groupby(["day", "card"], sort=True).agg(score=("score", "max"), fraud=("y", "max")).reset_index()
    known, precisions = set(known_compromised), []
    for _, day in per_card.groupby("day", sort=True):
        ranked = day[~day["card"].isin(known)].sort_values("score", ascending=False, kind="stable").head(k)
        detected = ranked.loc[ranked["fraud"] == 1, "card"]
        precisions.append(len(detected) / k)
        known.update(detected)
    return float(pd.Series(precisions).mean())


@pytest.mark.parametrize("seed", range(6))
def test_handbook_card_precision_equals_the_plain_definition(seed):
    import pandas as pd

    from detectors.evaluation import card_precision_at_k_handbook

    rng = np.random.default_rng(seed)
    rows = 3_000
    cards = np.array([f"C{i:03d}" for i in rng.integers(0, 150, rows)], dtype=object)
    frame = pd.DataFrame({
        "day": rng.integers(0, 20, rows),
        "card": cards,
        "score": rng.integers(0, 40, rows) / 40,  # coarse: many ties, broken by card order
        "y": np.where(rng.random(rows) < 0.15, 1.0, 0.0),
    })
    frame.loc[rng.random(rows) < 0.05, "y"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "card"] = None
    known = {f"C{i:03d}" for i in rng.integers(0, 150, 10)} | {"not-a-card"}
    for k in (1, 5, 30):
        assert card_precision_at_k_handbook(frame, k, known) == pytest.approx(
            _handbook_card_precision_reference(frame, k, known), abs=1e-12)
        assert card_precision_at_k_handbook(frame, k) == pytest.approx(_handbook_card_precision_reference(frame, k),
                                                                        abs=1e-12)


def test_the_model_trains_on_what_fit_then_transform_gives():
    """DetectorModel.fit transforms the training rows once (fit_transform); the forest it grows is
    the one grown on `fit(...).transform(...)`, so the scores are the same."""
    import pandas as pd

    from detectors.backends import SklearnIsolationForest
    from detectors.pipeline import DetectorModel, FeatureSpec

    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.lognormal(size=(4_000, 4)), columns=list("abcd"))
    frame.loc[rng.random(len(frame)) < 0.2, "a"] = np.nan
    frame["cat"] = rng.choice(["x", "y", None], len(frame))
    spec = FeatureSpec(list("abcd"), ["cat"])
    model = DetectorModel(SklearnIsolationForest(n_estimators=30), spec).fit(frame)
    twice = DetectorModel(SklearnIsolationForest(n_estimators=30), spec)
    columns = twice._columns(frame)
    twice.preprocessor_ = twice._preprocessor().fit(columns)
    twice.detector.fit(twice.preprocessor_.transform(columns))
    np.testing.assert_array_equal(model.decision_function(frame), twice.decision_function(frame))
