"""Retraining from labels: better than the detector on later data, promotion, rollback, too few labels."""

from __future__ import annotations

import pytest

from data.alerts import alert_page
from data.cases import add_labels
from data.errors import DataError
from data.synthetic import SyntheticConfig, store_synthetic
from detectors.explain import explain_case, explainer_for_run
from detectors.runs import active_run, default_split, evaluate_run, fit_run, run_scores, threshold_for
from detectors.supervised import promote, promotion_history, retrain, rollback


@pytest.fixture
def labelled(conn):
    dataset = store_synthetic(conn, "labelled", SyntheticConfig(rows=30_000, seed=3, fraud_rate=0.01, days=60))
    split = default_split(dataset)
    base = fit_run(conn, dataset, ["isolation_forest"], train_until=split)
    return dataset, base, split


def test_a_model_trained_on_older_labels_beats_the_detector_on_later_data(conn, labelled):
    dataset, base, split = labelled
    version = retrain(conn, dataset, train_until=split, created_by="ana")
    assert version.kind == "supervised" and version.base_run_id == base.id and version.created_by == "ana"
    assert version.label_counts["fraud"] > 20 and version.metrics["validation"]["rows"] > 0
    later_detector = evaluate_run(conn, dataset, base, start=split)["average_precision"]
    later_model = evaluate_run(conn, dataset, version, start=split)["average_precision"]
    assert later_model > later_detector + 0.1, (later_model, later_detector)
    assert active_run(conn, dataset).id == base.id  # a new version is not promoted by itself
    # Its explanation reads the detector's score as a feature, and adds up to its probability.
    tx_row = int(alert_page(conn, dataset, version.id, 0.5, page_size=1)["tx_row"].iloc[0])
    explained = explain_case(conn, dataset, version.id, tx_row, explainer_factory=lambda: explainer_for_run(conn, dataset, version))
    assert "anomaly_score" in set(explained["attributions"]["feature"])
    assert explained["base_value"] + explained["attributions"]["value"].sum() == pytest.approx(explained["output"])


def test_promotion_changes_the_queue_order_and_rollback_restores_it(conn, labelled):
    dataset, base, split = labelled

    def queue() -> list[str]:
        run = active_run(conn, dataset)
        threshold = threshold_for(run_scores(conn, run.id), run.contamination)
        return list(alert_page(conn, dataset, run.id, threshold, page_size=50)["transaction_id"])

    before = queue()
    version = retrain(conn, dataset, model="rf", train_until=split)
    promote(conn, dataset, version.id, "sup")
    promoted = queue()
    assert active_run(conn, dataset).id == version.id and promoted != before
    rollback(conn, dataset, base.id, "sup")
    assert queue() == before
    history = promotion_history(conn, dataset)
    assert list(history["action"][:2]) == ["rollback", "promote"] and list(history["by"][:2]) == ["sup", "sup"]


def test_too_few_labels_says_how_many_more(conn, labelled):
    dataset, _, _ = labelled
    with pytest.raises(DataError, match=r"0 fraud and 0 legitimate.*Label 20 more fraud and 20 more legitimate"):
        retrain(conn, dataset, use_truth=False)
    ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} ORDER BY tx_row LIMIT 30").fetchall()]
    add_labels(conn, dataset, ids[:5], "fraud", "ana")
    add_labels(conn, dataset, ids[5:], "legitimate", "ana")
    with pytest.raises(DataError, match="5 fraud and 25 legitimate.*Label 15 more fraud cases"):
        retrain(conn, dataset, use_truth=False)
    runs_before = conn.execute("SELECT count(*) FROM runs").fetchall()
    with pytest.raises(DataError, match="model must be one of"):
        retrain(conn, dataset, model="xgboost")
    assert conn.execute("SELECT count(*) FROM runs").fetchall() == runs_before


def test_analyst_labels_alone_train_a_model(conn):
    dataset = store_synthetic(conn, "analysts", SyntheticConfig(rows=8_000, seed=5, fraud_rate=0.03, days=30))
    fit_run(conn, dataset, ["ecod"])
    truth = conn.execute(f"SELECT transaction_id, is_fraud FROM {dataset.table} ORDER BY ts").fetchall()
    fraud = [t for t, f in truth if f][::4][:60]  # spread over the period, as analysts label
    legit = [t for t, f in truth if not f][::40][:150]
    add_labels(conn, dataset, fraud, "fraud", "ana")
    add_labels(conn, dataset, legit, "legitimate", "bob")
    version = retrain(conn, dataset, use_truth=False)
    counts = version.label_counts
    assert (counts["fraud"], counts["legitimate"]) == (60, 150) == (counts["analyst_fraud"], counts["analyst_legitimate"])


def test_registry_lists_versions_with_who_and_the_side_by_side_validation(conn, labelled):
    from detectors.registry import importance_of, model_registry, validation_table

    dataset, base, split = labelled
    first = retrain(conn, dataset, train_until=split, created_by="ana")
    promote(conn, dataset, first.id, "marta")
    second = retrain(conn, dataset, model="rf", train_until=split, created_by="ana")
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
                                  f"#{first.id} hgb, active then (trained on some of these labels)"]
    assert side.loc["Labelled rows"].nunique() == 1 and side.loc["Fraud"].nunique() == 1
    assert side.iloc[0, 0] == pytest.approx(second.metrics["average_precision"])
    assert side.iloc[0, 1] == pytest.approx(second.metrics["baseline"]["average_precision"])
    assert validation_table(base) is None and importance_of(base) is None
    importance = importance_of(second)
    assert set(importance["feature"]) == set(second.features["numeric"])
    assert list(importance["importance"]) == sorted(importance["importance"], reverse=True)


def test_promoting_a_version_that_is_not_this_datasets_changes_nothing(conn, labelled):
    dataset, base, _ = labelled
    other = store_synthetic(conn, "other", SyntheticConfig(rows=2_000, seed=1))
    foreign = fit_run(conn, other, ["hbos"])
    history = len(promotion_history(conn, dataset))
    for run_id in (foreign.id, 9_999):
        with pytest.raises(DataError, match="does not belong to this dataset"):
            promote(conn, dataset, run_id, "sup")
    with pytest.raises(DataError, match="model must be one of"):
        retrain(conn, dataset, model="xgboost")
    assert active_run(conn, dataset).id == base.id and len(promotion_history(conn, dataset)) == history
