"""Models that learn from labels: the classifiers, the imbalance options, and the time-aware search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from application import models as app_models
from application import runs as app_runs
from data.errors import UserError
from detectors.classifiers import (
    CLASSIFIERS,
    IMBALANCE,
    LEGITIMATE_KEPT,
    MAX_LEGITIMATE,
    RESAMPLED_RATIO,
    cap_legitimate,
    legitimate_limit,
    resample,
)
from detectors.pipeline import FeatureSpec
from detectors.runs import default_split
from detectors.search import SearchStopped, draw_configurations, prequential_folds, search
from detectors.supervised import LearnedModel
from tests.conftest import as_user, digest


def _frame(n: int = 4_000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two informative features (one with gaps) and noise; about 5% fraud over 40 days."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(int)
    a = rng.normal(size=n) + 2.5 * y
    b = np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n) - 1.5 * y)
    ts = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 40, n)), unit="D")
    return pd.DataFrame({"ts": ts, "a": a, "b": b, "noise": rng.normal(size=n)}), y


@pytest.mark.parametrize("model", sorted(CLASSIFIERS))
@pytest.mark.parametrize("imbalance", sorted(IMBALANCE))
def test_every_classifier_and_imbalance_option_learns_and_scores_every_row(model, imbalance):
    frame, y = _frame()
    learned = LearnedModel(model, FeatureSpec(["a", "b", "noise"]), 0, None, imbalance).fit(frame, y)
    scores = learned.decision_function(frame)
    assert scores.shape == (len(frame),) and np.isfinite(scores).all() and 0 <= scores.min() <= scores.max() <= 1
    assert scores[y == 1].mean() > scores[y == 0].mean() + 0.2
    assert learned.params()["imbalance"] == imbalance and learned.params()["model"] == CLASSIFIERS[model].title


def test_resampling_changes_only_the_training_rows_and_in_the_stated_ratio():
    X = np.random.default_rng(1).normal(size=(5_000, 3))
    y = np.r_[np.ones(50, dtype=int), np.zeros(4_950, dtype=int)]
    under_X, under_y = resample(X, y, "undersample", 0)
    assert under_y.sum() == 50 and (under_y == 0).sum() == round(50 / RESAMPLED_RATIO)
    smote_X, smote_y = resample(X, y, "smote", 0)
    assert (smote_y == 0).sum() == 4_950 and smote_y.sum() == round(4_950 * RESAMPLED_RATIO)
    assert len(smote_X) == len(smote_y) and np.isfinite(smote_X).all()
    for kept in ("none", "weights"):
        same_X, same_y = resample(X, y, kept, 0)
        assert same_X is X and same_y is y


def test_past_the_cap_a_seeded_sample_of_legitimate_rows_and_every_fraud():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3_000, 2))
    y = (rng.random(3_000) < 0.02).astype(int)
    capped_X, capped_y = cap_legitimate(X, y, 0, limit=1_000)
    assert (capped_y == 0).sum() == 1_000 and capped_y.sum() == y.sum()
    assert {tuple(r) for r in capped_X[capped_y == 1]} == {tuple(r) for r in X[y == 1]}
    again_X, _ = cap_legitimate(X, y, 0, limit=1_000)
    assert np.array_equal(again_X, capped_X) and not np.array_equal(cap_legitimate(X, y, 1, limit=1_000)[0], capped_X)
    same_X, same_y = cap_legitimate(X, y, 0, limit=5_000)
    assert same_X is X and same_y is y


def test_a_large_label_set_trains_on_ten_legitimate_per_fraud_within_the_bounds():
    assert legitimate_limit(500) == LEGITIMATE_KEPT  # a week of labels: never below the floor
    assert legitimate_limit(30_000) == 10 * 30_000
    assert legitimate_limit(1_000_000) == MAX_LEGITIMATE
    rng = np.random.default_rng(3)
    n = LEGITIMATE_KEPT + 60_000
    X = rng.normal(size=(n, 2))
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, 800, replace=False)] = 1
    kept_X, kept_y = resample(X, y, "none", 0)  # no resampling asked for: the cap alone
    assert (kept_y == 0).sum() == LEGITIMATE_KEPT and kept_y.sum() == 800
    smoted_X, smoted_y = resample(X, y, "smote", 0)  # then SMOTE up to one fraud per ten
    assert (smoted_y == 0).sum() == LEGITIMATE_KEPT and smoted_y.sum() == int(RESAMPLED_RATIO * LEGITIMATE_KEPT)


def test_class_weights_are_set_only_for_the_weights_option():
    frame, y = _frame(1_000)
    weighted = LearnedModel("lgbm", FeatureSpec(["a", "b"]), imbalance="weights").fit(frame, y)
    plain = LearnedModel("lgbm", FeatureSpec(["a", "b"]), imbalance="none").fit(frame, y)
    assert weighted.classifier_.class_weight == "balanced" and plain.classifier_.class_weight is None


def test_no_fold_trains_on_its_own_test_days_or_inside_the_gap():
    frame, y = _frame()
    folds = prequential_folds(frame["ts"], y, n_folds=3, gap_days=2)
    assert len(folds) == 3
    previous_end = None
    for fold in folds:
        train_ts, test_ts = frame["ts"].iloc[fold.train], frame["ts"].iloc[fold.test]
        assert train_ts.max() < fold.test_from - pd.Timedelta(days=2) <= test_ts.min()
        assert test_ts.max() < fold.test_until
        assert previous_end is None or fold.test_from >= previous_end  # windows roll forward, never overlap
        previous_end = fold.test_until
    assert folds[-1].test_until > frame["ts"].max()  # the newest labels are tested on


def test_too_few_labels_for_any_fold_is_a_clear_error():
    frame, y = _frame(300)
    with pytest.raises(UserError, match="too few labels over time to search"):
        prequential_folds(frame["ts"], np.zeros_like(y))


def test_the_search_tries_distinct_configurations_defaults_first_and_can_stop():
    configurations = draw_configurations("lgbm", 6, random_state=3)
    assert configurations[0] == CLASSIFIERS["lgbm"].defaults and len({str(c) for c in configurations}) == 6
    frame, y = _frame()
    folds = prequential_folds(frame["ts"], y)
    spec = FeatureSpec(["a", "b", "noise"])
    trials = search(lambda p: LearnedModel("lgbm", spec, 0, p, "none"), frame, y, folds, configurations[:3])
    assert len(trials) == 3 and trials["average_precision"].is_monotonic_decreasing
    assert all(len(per_fold) == len(folds) for per_fold in trials["per_fold"])
    calls = iter([False, True])
    with pytest.raises(SearchStopped, match="after 1 of 3 trials"):
        search(lambda p: LearnedModel("lgbm", spec, 0, p, "none"), frame, y, folds, configurations[:3],
               should_stop=lambda: next(calls))


def test_retrain_with_a_search_records_it_and_a_stopped_search_stores_nothing(conn, small_dataset):
    ctx = as_user(conn, "ana")
    app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    version = app_models.retrain(ctx, small_dataset, model="lgbm", search=3)
    searched = version.metrics["search"]
    assert searched["trials"] == 3 and searched["folds"] and version.params["model"] == "LightGBM"
    for fold in searched["folds"]:
        assert pd.Timestamp(fold["until"]) <= pd.Timestamp(version.metrics["validation"]["from"])  # never the validation labels
    before = digest(conn)
    calls = iter([False, False, True])
    with pytest.raises(SearchStopped):
        app_models.retrain(ctx, small_dataset, search=5, should_stop=lambda: next(calls))
    assert digest(conn) == before
    with pytest.raises(UserError, match="imbalance must be one of"):
        app_models.retrain(ctx, small_dataset, imbalance="oversample")
    assert digest(conn) == before
