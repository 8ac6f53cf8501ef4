"""Detectors: each backend ranks injected fraud above the normal mass; thresholds; the ensemble."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from application import datasets as app_datasets
from data.errors import UserError
from detectors.base import Param, make_detector, registered, threshold_for
from detectors.ensemble import Ensemble
from detectors.pipeline import DetectorModel, default_feature_spec, load_frame
from tests.conftest import as_user

REGISTRY = registered()  # loads the backends


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """Engineered features and ground truth of 6,000 generated transactions (2% fraud)."""
    from data.db import connect
    from data.synthetic import SyntheticConfig

    conn = connect(tmp_path_factory.mktemp("det") / "d.duckdb")
    dataset = app_datasets.generate(as_user(conn), "d", SyntheticConfig(rows=6_000, seed=5, fraud_rate=0.02, days=45), features=False).dataset
    feature_set = app_datasets.ensure_features(as_user(conn), dataset)
    spec = default_feature_spec(feature_set)
    frame = load_frame(conn, dataset, feature_set, spec)
    y = conn.execute(f"SELECT is_fraud FROM {dataset.table} ORDER BY tx_row").fetchnumpy()["is_fraud"].astype(int)
    conn.close()
    return frame, spec, y


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_injected_fraud_scores_above_the_normal_mass(features, name):
    frame, spec, y = features
    model = DetectorModel(make_detector(name, random_state=1), spec).fit(frame)
    scores = model.decision_function(frame)
    assert scores.shape == (len(frame),) and np.isfinite(scores).all()
    assert roc_auc_score(y, scores) > 0.7, name
    assert model.detector.n_features_in_ == len(model.feature_names_)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_fit_returns_self_and_learned_state_ends_in_underscore(features, name):
    frame, spec, _ = features
    detector = make_detector(name)
    X = DetectorModel(detector, spec).fit(frame).transform(frame)
    fresh = make_detector(name)
    params = fresh.get_params()
    assert fresh.fit(X) is fresh
    learned = [a for a in vars(fresh) if a not in params]
    assert learned and all(a.endswith("_") for a in learned), learned
    assert fresh.get_params() == params  # parameters are stored unchanged, also by fit


def test_same_seed_same_scores(features):
    frame, spec, _ = features
    a = DetectorModel(make_detector("isolation_forest", random_state=3), spec).fit(frame).decision_function(frame)
    b = DetectorModel(make_detector("isolation_forest", random_state=3), spec).fit(frame).decision_function(frame)
    c = DetectorModel(make_detector("isolation_forest", random_state=4), spec).fit(frame).decision_function(frame)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("contamination", [0.001, 0.01, 0.05, 0.2])
def test_threshold_follows_contamination(contamination):
    scores = np.random.default_rng(0).normal(size=10_000)
    threshold = threshold_for(scores, contamination)
    alerts = int((scores >= threshold).sum())
    assert alerts == round(10_000 * contamination)


def test_more_contamination_never_fewer_alerts():
    scores = np.random.default_rng(1).exponential(size=5_000).round(2)  # with ties
    counts = [(scores >= threshold_for(scores, c)).sum() for c in (0.01, 0.02, 0.05, 0.1, 0.3)]
    assert counts == sorted(counts) and counts[0] >= 50


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5])
def test_contamination_out_of_range_is_refused(bad):
    with pytest.raises(UserError, match="contamination"):
        threshold_for(np.arange(10.0), bad)


def test_parameters_are_declared_and_checked():
    for cls in REGISTRY.values():
        for p in cls.param_specs:
            assert p.help and p.kind in ("int", "float", "choice", "bool")
            assert p.parse(p.default) == p.default
    with pytest.raises(UserError, match="between 20 and 1000"):
        make_detector("isolation_forest", {"n_estimators": 5})
    with pytest.raises(UserError, match="must be an integer"):
        make_detector("knn", {"n_neighbors": "many"})
    with pytest.raises(UserError, match="one of largest, mean, median"):
        make_detector("knn", {"method": "nearest"})
    with pytest.raises(UserError, match="has no parameter 'depth'"):
        make_detector("hbos", {"depth": 3})
    with pytest.raises(UserError, match="unknown detector"):
        make_detector("magic")
    assert make_detector("knn", {"n_neighbors": "7"}).get_params()["n_neighbors"] == 7
    assert Param("w", "bool", False, "x").parse("yes") is True


def test_detectors_that_do_not_scale_sample_and_refuse(monkeypatch, features):
    frame, spec, _ = features
    detector = make_detector("lof")
    monkeypatch.setattr(type(detector), "fit_sample", 1_000)
    model = DetectorModel(detector, spec).fit(frame)
    assert model.detector.sampled_ and model.detector.n_fit_rows_ == len(frame)
    monkeypatch.setattr(type(detector), "max_rows", 5_000)
    with pytest.raises(UserError, match="does not scale: it can fit on at most 5,000 rows, not 6,000"):
        DetectorModel(make_detector("lof"), spec).fit(frame)


def _zscored(member, X, reference):
    train = member.decision_function(reference)
    return (member.decision_function(X) - train.mean()) / train.std()


def test_ensemble_mean_and_max_combine_z_scores(features):
    frame, spec, _ = features
    X = DetectorModel(make_detector("ecod"), spec).fit(frame).transform(frame)
    ensemble = Ensemble.of(["ecod", "hbos"], combine="mean").fit(X)
    # Independently fitted members, z-scored on the training rows, averaged.
    ecod, hbos = make_detector("ecod").fit(X), make_detector("hbos").fit(X)
    expected = (_zscored(ecod, X, X) + _zscored(hbos, X, X)) / 2
    np.testing.assert_allclose(ensemble.decision_function(X), expected, rtol=1e-9, atol=1e-9)
    maximum = Ensemble.of(["ecod", "hbos"], combine="max").fit(X).decision_function(X)
    np.testing.assert_allclose(maximum, np.maximum(_zscored(ecod, X, X), _zscored(hbos, X, X)), rtol=1e-9, atol=1e-9)
    assert (maximum >= expected - 1e-12).all()


def test_ensemble_rank_average_is_a_percentile(features):
    frame, spec, y = features
    X = DetectorModel(make_detector("ecod"), spec).fit(frame).transform(frame)
    ranked = Ensemble.of(["ecod", "isolation_forest"], combine="rank").fit(X).decision_function(X)
    assert ranked.min() >= 0 and ranked.max() <= 1
    ecod = make_detector("ecod").fit(X).decision_function(X)
    iforest = make_detector("isolation_forest").fit(X).decision_function(X)
    pct = lambda s: (np.searchsorted(np.sort(s), s, side="right")) / len(s)  # noqa: E731
    np.testing.assert_allclose(ranked, (pct(ecod) + pct(iforest)) / 2, atol=1e-12)
    assert roc_auc_score(y, ranked) > 0.7


def test_an_ensemble_needs_two_members():
    with pytest.raises(UserError, match="at least two"):
        Ensemble.of(["ecod"])


def test_ecod_ranks_like_pyod_on_its_training_data(features):
    from pyod.models.ecod import ECOD
    from scipy.stats import spearmanr

    frame, spec, _ = features
    X = DetectorModel(make_detector("ecod"), spec).fit(frame).transform(frame)
    ours = make_detector("ecod").fit(X).decision_function(X)
    theirs = ECOD().fit(X).decision_scores_
    assert spearmanr(ours, theirs).statistic > 0.99


# --- the scikit-learn estimator contract ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_declared_parameters_are_the_constructor_signature(name):
    cls = REGISTRY[name]
    signature = inspect.signature(cls.__init__).parameters
    declared = {p.name: p.default for p in cls.param_specs}
    assert {k: v.default for k, v in signature.items() if k != "self"} == {**declared, "random_state": 0}


def _members() -> list[tuple[str, object]]:
    return [(n, make_detector(n, random_state=2)) for n in ("ecod", "hbos", "isolation_forest")]


@pytest.mark.parametrize("name", [*sorted(REGISTRY), "ensemble"])
def test_clone_fitted_on_the_same_data_scores_identically(features, name):
    frame, spec, _ = features
    X = DetectorModel(make_detector("ecod"), spec).fit(frame).transform(frame)[:3_000]
    detector = Ensemble(_members(), combine="rank", random_state=2) if name == "ensemble" else make_detector(name, random_state=2)
    twin = clone(detector)
    assert twin is not detector and twin.get_params(deep=False).keys() == detector.get_params(deep=False).keys()
    assert not hasattr(twin, "n_features_in_")  # a clone is unfitted
    np.testing.assert_array_equal(detector.fit(X).decision_function(X), twin.fit(X).decision_function(X))
    assert repr(detector).startswith(type(detector).__name__ + "(")


def test_an_ensemble_exposes_and_sets_its_members_parameters():
    ensemble = Ensemble(_members(), combine="max")
    params = ensemble.get_params(deep=True)
    assert params["combine"] == "max" and params["hbos__n_bins"] == 20 and params["isolation_forest__random_state"] == 2
    ensemble.set_params(hbos__n_bins=35, combine="mean")
    assert ensemble.get_params()["hbos__n_bins"] == 35 and ensemble.combine == "mean"
    assert dict(ensemble.detectors)["hbos"].n_bins == 35
    X = np.random.default_rng(0).normal(size=(500, 4))
    ensemble.fit(X)
    assert all(fitted is not member for fitted, (_, member) in zip(ensemble.detectors_, ensemble.detectors, strict=True))
    with pytest.raises(UserError, match="its own name"):
        Ensemble([("hbos", make_detector("hbos")), ("hbos", make_detector("hbos"))]).fit(X)


def test_parameters_are_checked_at_fit_too_not_only_when_built():
    detector = make_detector("hbos").set_params(n_bins=1)
    with pytest.raises(UserError, match="n_bins must be between 5 and 200"):
        detector.fit(np.zeros((10, 2)))


def test_randomness_comes_from_random_state_not_the_global_generator(features):
    frame, spec, _ = features
    X = DetectorModel(make_detector("ecod"), spec).fit(frame).transform(frame)[:2_000]
    np.random.seed(1)
    first = make_detector("loda", random_state=5).fit(X).decision_function(X)
    np.random.seed(99)
    second = make_detector("loda", random_state=5).fit(X).decision_function(X)
    np.testing.assert_array_equal(first, second)


def test_user_errors_are_not_value_errors():
    """A library's ValueError must never be mistaken for the user's mistake, and the reverse."""
    with pytest.raises(UserError) as caught:
        make_detector("isolation_forest", {"n_estimators": 5})
    assert not isinstance(caught.value, ValueError) and caught.value.field == "n_estimators"
