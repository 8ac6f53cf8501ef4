"""SHAP explanations: one orientation for every detector, additivity, accuracy, storage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble._iforest import _average_path_length

from application import runs as app_runs
from benchmarks.attribution import attribution_accuracy
from detectors.base import make_detector
from detectors.explain import ModelExplainer, explain_case, explainer_for_run, global_importance
from detectors.pipeline import DetectorModel, FeatureSpec
from detectors.runs import default_split, run_scores, threshold_for
from tests.conftest import as_user

NAMES = ["a", "b", "c", "d"]


def _gaussian_model(detector: str, seed: int = 0) -> tuple[DetectorModel, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    train = pd.DataFrame(rng.normal(size=(5_000, len(NAMES))), columns=NAMES)
    return DetectorModel(make_detector(detector, random_state=seed), FeatureSpec(NAMES)).fit(train), train


@pytest.mark.parametrize("detector", ["isolation_forest", "ecod"])
def test_top_suspicious_attribution_names_the_planted_feature(detector):
    """Rows with exactly one deliberately anomalous feature: it must top the attributions in >= 95%."""
    assert attribution_accuracy(detector, n_rows=120) >= 0.95


def test_tree_attributions_add_up_to_the_negative_path_length():
    model, _ = _gaussian_model("isolation_forest")
    rows = pd.DataFrame([[0.1, -0.2, 0.0, 0.3], [6.0, 0.0, 0.1, -0.1], [0.0, 0.0, -7.0, 0.0]], columns=NAMES)
    result = ModelExplainer(model).explain(rows)
    # Independently: scikit-learn's score is 2 ** (-mean path / c(max_samples)).
    forest = model.explanation_support().tree_model
    path = -np.log2(-forest.score_samples(model.transform(rows))) * _average_path_length([forest.max_samples_])[0]
    np.testing.assert_allclose(result.base_value + result.values.sum(axis=1), -path, rtol=1e-5)
    np.testing.assert_allclose(result.output, -path, rtol=1e-5)
    # Orientation: the anomalous feature pushes toward suspicious (positive), the ordinary row scores lowest.
    assert result.values[1, 0] > 0 and result.values[2, 2] > 0
    assert result.top_feature()[1:] == ["a", "c"]
    assert result.output[0] < result.output[1] and result.output[0] < result.output[2]


@pytest.mark.parametrize("detector", ["ecod", "pca", "hbos"])
def test_model_agnostic_attributions_add_up_to_the_score(detector):
    model, train = _gaussian_model(detector)
    rows = pd.DataFrame([[0.0, 5.0, 0.0, 0.0], [0.2, 0.1, -0.3, 0.0]], columns=NAMES)
    result = ModelExplainer(model, train.sample(30, random_state=0)).explain(rows)
    np.testing.assert_allclose(result.base_value + result.values.sum(axis=1), model.decision_function(rows), rtol=1e-6, atol=1e-9)
    assert result.top_feature()[0] == "b" and result.values[0, 1] > 0


def test_one_hot_columns_are_summed_back_to_their_category():
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"a": rng.normal(size=3_000), "city": rng.choice(["Lima", "Cusco", "Piura"], 3_000)})
    model = DetectorModel(make_detector("hbos"), FeatureSpec(["a"], ["city"])).fit(train)
    result = ModelExplainer(model, train.head(20)).explain(pd.DataFrame({"a": [0.0], "city": ["Iquitos"]}))
    assert result.features == ["a", "city"] and result.values.shape == (1, 2)
    np.testing.assert_allclose(result.output, model.decision_function(pd.DataFrame({"a": [0.0], "city": ["Iquitos"]})), rtol=1e-6)


@pytest.mark.parametrize("detectors", [["isolation_forest"], ["ecod", "hbos"]])
def test_a_case_explanation_is_stored_and_reused(conn, small_dataset, detectors):
    run = app_runs.fit(as_user(conn, "test"), small_dataset, detectors, train_until=default_split(small_dataset))
    tx_row = conn.execute("SELECT tx_row FROM scores WHERE run_id = ? ORDER BY score DESC LIMIT 1", [run.id]).fetchall()[0][0]
    built = []

    def factory():
        built.append(1)
        return explainer_for_run(conn, small_dataset, run)

    first = explain_case(conn, small_dataset, run, tx_row, factory)
    again = explain_case(conn, small_dataset, run, tx_row, factory)
    assert built == [1] and not first["cached"] and again["cached"]
    assert first["method"] == ("tree" if detectors == ["isolation_forest"] else "permutation")
    pd.testing.assert_frame_equal(first["attributions"], again["attributions"])
    total = first["base_value"] + first["attributions"]["value"].sum()
    assert total == pytest.approx(first["output"], rel=1e-6)
    if first["method"] == "permutation":  # the explained output is the stored anomaly score itself
        stored = conn.execute("SELECT score FROM scores WHERE run_id = ? AND tx_row = ?", [run.id, tx_row]).fetchall()[0][0]
        assert first["output"] == pytest.approx(stored, rel=1e-6)
    amount = conn.execute(f"SELECT amount FROM {small_dataset.table} WHERE tx_row = ?", [tx_row]).fetchall()[0][0]
    assert first["attributions"].set_index("feature").loc["amount", "raw"] == pytest.approx(amount)


@pytest.mark.parametrize("detector", ["isolation_forest", "hbos"])
def test_global_importance_separates_alerts_from_normal_rows(conn, small_dataset, detector):
    run = app_runs.fit(as_user(conn, "test"), small_dataset, [detector], train_until=default_split(small_dataset))
    threshold = threshold_for(run_scores(conn, run.id), run.contamination)
    result = global_importance(conn, small_dataset, run, threshold, lambda: explainer_for_run(conn, small_dataset, run),
                               alerts=40, normal=40)
    importance = result["importance"]
    assert result["alert_rows"] == 40 and result["normal_rows"] == 40
    assert (importance["alerts"] >= 0).all() and importance["alerts"].is_monotonic_decreasing
    # Alerts are unusual, so features move them further from the usual output than normal rows.
    assert importance["alerts"].sum() > importance["normal"].sum()
    stored = global_importance(conn, small_dataset, run, threshold, lambda: pytest.fail("recomputed"))
    pd.testing.assert_frame_equal(stored["importance"], importance)


def test_the_tree_explainer_is_saved_with_the_run_and_explains_as_a_fresh_one(conn, small_dataset):
    import shap

    from data.features import load_feature_set
    from detectors.pipeline import load_rows
    from detectors.runs import load_model
    from detectors.tree_shap import tree_explainer

    run = app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    model = load_model(conn, run)
    kept = model.tree_explainer_  # built when the run was saved, loaded with the model
    assert isinstance(kept, shap.TreeExplainer) and tree_explainer(model) is kept
    rows = load_rows(conn, small_dataset, load_feature_set(conn, small_dataset), run.spec, [0, 7, 42])
    del model.tree_explainer_
    fresh = ModelExplainer(model).explain(rows)
    model.tree_explainer_ = kept
    stored = ModelExplainer(model).explain(rows)
    assert np.array_equal(stored.values, fresh.values) and stored.base_value == fresh.base_value
    # A detector explained by permutation keeps none.
    ecod = app_runs.fit(as_user(conn, "test"), small_dataset, ["ecod"], train_until=default_split(small_dataset))
    assert getattr(load_model(conn, ecod), "tree_explainer_", None) is None
