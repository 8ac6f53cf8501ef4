"""The two shortcuts in the default fit give scikit-learn's own numbers: the median imputer
(np.nanmedian for np.ma.median) and the isolation forest scored in row blocks on threads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer

from detectors.backends import PARALLEL_ROWS, score_in_row_blocks
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


def test_forest_scores_in_row_blocks_are_the_sequential_scores():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3 * PARALLEL_ROWS + 17, 5))
    forest = IsolationForest(n_estimators=50, random_state=0).fit(X[:5_000])
    blocked = score_in_row_blocks(forest, X)
    np.testing.assert_array_equal(blocked, forest.score_samples(X))  # bit for bit, in row order
    few = X[:100]
    np.testing.assert_array_equal(score_in_row_blocks(forest, few), forest.score_samples(few))
