"""Retraining from labels: better than the detector on later data, promotion, rollback, too few labels."""

from __future__ import annotations

import pytest

from application import datasets as app_datasets
from application import labels as app_labels
from application import models as app_models
from application import runs as app_runs
from data.alerts import alert_page
from data.errors import UserError
from data.synthetic import SyntheticConfig
from detectors.explain import explain_case, explainer_for_run
from detectors.runs import active_run, default_split, evaluate_run, run_scores, threshold_for
from detectors.supervised import DEFAULT_MODEL, promotion_history
from tests.conftest import as_user


@pytest.fixture
def labelled(conn):
    dataset = app_datasets.generate(as_user(conn), "labelled", SyntheticConfig(rows=30_000, seed=3, fraud_rate=0.01, days=60), features=False).dataset
    split = default_split(dataset)
    base = app_runs.fit(as_user(conn, "test"), dataset, ["isolation_forest"], train_until=split)
    return dataset, base, split


def test_a_model_trained_on_older_labels_beats_the_detector_on_later_data(conn, labelled):
    dataset, base, split = labelled
    version = app_models.retrain(as_user(conn, "ana"), dataset, train_until=split)
    assert version.kind == "supervised" and version.base_run_id == base.id and version.created_by == "ana"
    assert version.label_counts["fraud"] > 20 and version.metrics["validation"]["rows"] > 0
    later_detector = evaluate_run(conn, dataset, base, start=split)["average_precision"]
    later_model = evaluate_run(conn, dataset, version, start=split)["average_precision"]
    assert later_model > later_detector + 0.1, (later_model, later_detector)
    assert active_run(conn, dataset).id == base.id  # a new version is not promoted by itself
    # Its explanation reads the detector's score as a feature, and adds up to its probability.
    tx_row = int(alert_page(conn, dataset, version.id, 0.5, page_size=1)["tx_row"].iloc[0])
    explained = explain_case(conn, dataset, version, tx_row, lambda: explainer_for_run(conn, dataset, version))
    assert "anomaly_score" in set(explained["attributions"]["feature"])
    assert explained["base_value"] + explained["attributions"]["value"].sum() == pytest.approx(explained["output"])


def test_promotion_changes_the_queue_order_and_rollback_restores_it(conn, labelled):
    dataset, base, split = labelled

    def queue() -> list[str]:
        run = active_run(conn, dataset)
        threshold = threshold_for(run_scores(conn, run.id), run.contamination)
        return list(alert_page(conn, dataset, run.id, threshold, page_size=50)["transaction_id"])

    before = queue()
    version = app_models.retrain(as_user(conn, "test"), dataset, model="rf", train_until=split)
    app_models.promote(as_user(conn, "sup"), dataset, version.id)
    promoted = queue()
    assert active_run(conn, dataset).id == version.id and promoted != before
    app_models.rollback(as_user(conn, "sup"), dataset, base.id)
    assert queue() == before
    history = promotion_history(conn, dataset)
    assert list(history["action"][:2]) == ["rollback", "promote"] and list(history["by"][:2]) == ["sup", "sup"]


def test_too_few_labels_says_how_many_more(conn, labelled):
    dataset, _, _ = labelled
    with pytest.raises(UserError, match=r"0 fraud and 0 legitimate.*Label 20 more fraud and 20 more legitimate"):
        app_models.retrain(as_user(conn, "test"), dataset, use_truth=False)
    ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} ORDER BY tx_row LIMIT 30").fetchall()]
    app_labels.label(as_user(conn, "ana"), dataset, ids[:5], "fraud")
    app_labels.label(as_user(conn, "ana"), dataset, ids[5:], "legitimate")
    with pytest.raises(UserError, match="5 fraud and 25 legitimate.*Label 15 more fraud cases"):
        app_models.retrain(as_user(conn, "test"), dataset, use_truth=False)
    runs_before = conn.execute("SELECT count(*) FROM runs").fetchall()
    with pytest.raises(UserError, match="model must be one of"):
        app_models.retrain(as_user(conn, "test"), dataset, model="xgboost")
    assert conn.execute("SELECT count(*) FROM runs").fetchall() == runs_before


def test_analyst_labels_alone_train_a_model(conn):
    dataset = app_datasets.generate(as_user(conn), "analysts", SyntheticConfig(rows=8_000, seed=5, fraud_rate=0.03, days=30), features=False).dataset
    app_runs.fit(as_user(conn, "test"), dataset, ["ecod"])
    truth = conn.execute(f"SELECT transaction_id, is_fraud FROM {dataset.table} ORDER BY ts").fetchall()
    fraud = [t for t, f in truth if f][::4][:60]  # spread over the period, as analysts label
    legit = [t for t, f in truth if not f][::40][:150]
    app_labels.label(as_user(conn, "ana"), dataset, fraud, "fraud")
    app_labels.label(as_user(conn, "bob"), dataset, legit, "legitimate")
    version = app_models.retrain(as_user(conn, "test"), dataset, use_truth=False)
    counts = version.label_counts
    assert (counts["fraud"], counts["legitimate"]) == (60, 150) == (counts["analyst_fraud"], counts["analyst_legitimate"])


def test_registry_lists_versions_with_who_and_the_side_by_side_validation(conn, labelled):
    from detectors.registry import importance_of, model_registry, validation_table

    dataset, base, split = labelled
    first = app_models.retrain(as_user(conn, "ana"), dataset, train_until=split)
    app_models.promote(as_user(conn, "marta"), dataset, first.id)
    second = app_models.retrain(as_user(conn, "ana"), dataset, model="rf", train_until=split)
    table = model_registry(conn, dataset).set_index("version")
    assert list(table.index) == [second.id, first.id, base.id]
    assert table.loc[first.id, "active"] and not table.loc[second.id, "active"]
    assert table.loc[first.id, "promoted_by"] == "marta" and table.loc[first.id, "last_action"] == "promote"
    assert table.loc[second.id, "created_by"] == "ana" and table.loc[second.id, "built_on"] == base.id
    assert table.loc[second.id, "fraud_labels"] == second.label_counts["fraud"]
    assert table.loc[base.id, "kind"] == "detector" and "anomaly_score" in table.loc[first.id, "features"]
    # The new version beside its detector and the version active when it was trained: same rows.
    side = validation_table(second)
    assert list(side.columns) == [f"#{second.id} rf (new)", f"#{base.id} detector",
                                  f"#{first.id} {DEFAULT_MODEL}, active then (trained on some of these labels)"]
    assert side.loc["Labelled rows"].nunique() == 1 and side.loc["Fraud"].nunique() == 1
    assert side.iloc[0, 0] == pytest.approx(second.metrics["average_precision"])
    assert side.iloc[0, 1] == pytest.approx(second.metrics["baseline"]["average_precision"])
    assert validation_table(base) is None and importance_of(base) is None
    importance = importance_of(second)
    assert set(importance["feature"]) == set(second.features["numeric"])
    assert list(importance["importance"]) == sorted(importance["importance"], reverse=True)


def test_promoting_a_version_that_is_not_this_datasets_changes_nothing(conn, labelled):
    dataset, base, _ = labelled
    other = app_datasets.generate(as_user(conn), "other", SyntheticConfig(rows=2_000, seed=1), features=False).dataset
    foreign = app_runs.fit(as_user(conn, "test"), other, ["hbos"])
    history = len(promotion_history(conn, dataset))
    for run_id in (foreign.id, 9_999):
        with pytest.raises(UserError, match="does not belong to this dataset"):
            app_models.promote(as_user(conn, "sup"), dataset, run_id)
    with pytest.raises(UserError, match="model must be one of"):
        app_models.retrain(as_user(conn, "test"), dataset, model="xgboost")
    assert active_run(conn, dataset).id == base.id and len(promotion_history(conn, dataset)) == history
