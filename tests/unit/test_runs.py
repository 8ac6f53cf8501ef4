"""Runs: recorded fits, stored scores, artifacts only from the model folder, evaluation, tuning, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_score, recall_score

from application import datasets as app_datasets
from application import labels as app_labels
from application import runs as app_runs
from application import tuning as app_tuning
from data.errors import UserError
from data.features import load_feature_set
from detectors.evaluation import (
    card_precision_at_k,
    card_precision_at_k_handbook,
    labelled_frame,
    precision_at_k,
    ranking_metrics,
    threshold_counts,
    threshold_metrics,
)
from detectors.pipeline import FeatureSpec, load_frame
from detectors.runs import (
    active_run,
    alert_count,
    evaluate_run,
    list_runs,
    load_model,
    models_dir,
    run_scores,
)
from detectors.tuning import stored_trials
from tests.conftest import as_user, digest


@pytest.fixture
def run(conn, small_dataset):
    return app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], contamination=0.02, train_until=datetime(2026, 8, 21))


def test_a_run_records_everything_and_stores_a_score_per_transaction(conn, small_dataset, run):
    assert run.detector == "isolation_forest" and run.contamination == 0.02
    assert run.params == {"n_estimators": 200, "max_samples": 256, "max_features": 1.0, "random_state": 0}
    assert run.features["numeric"][:2] == ["amount", "log_amount"] and run.features["categorical"] == []
    assert len(run.dataset_fingerprint) == 16 and run.fit_seconds > 0 and run.score_seconds > 0
    train_rows = conn.execute(f"SELECT count(*) FROM {small_dataset.table} WHERE ts < '2026-08-21'").fetchall()[0][0]
    assert run.fit_rows == train_rows and run.train_until == datetime(2026, 8, 21)
    stored = conn.execute("SELECT count(*), count(DISTINCT tx_row) FROM scores WHERE run_id = ?", [run.id]).fetchall()[0]
    assert stored == (small_dataset.row_count, small_dataset.row_count)
    assert active_run(conn, small_dataset).id == run.id
    assert (models_dir(conn) / run.artifact).is_file()
    # Time-aware: the stored metrics cover only the period after training.
    later = conn.execute(f"SELECT count(*) FROM {small_dataset.table} WHERE ts >= '2026-08-21'").fetchall()[0][0]
    assert run.metrics["rows"] == later and run.metrics["period"]["from"].startswith("2026-08-21")
    assert run.metrics["roc_auc"] > 0.7


def test_load_frame_reads_through_arrow_the_frame_duckdb_gives(conn, small_dataset, run):
    """load_frame reads numeric features through Arrow for speed; the frame is the one `.df()`
    gives, for numeric features with a base run's score and with categorical columns (missing
    values among them), over every row, a period and a period without rows."""
    from detectors.pipeline import PERIOD_SQL, _select_from, categorical_candidates

    feature_set = load_feature_set(conn, small_dataset)
    conn.execute(f"UPDATE {small_dataset.table} SET payment_method = NULL WHERE tx_row % 7 = 0")
    categorical = categorical_candidates(conn, small_dataset)
    assert "payment_method" in categorical
    numeric = run.features["numeric"][:5] + ["anomaly_score"]
    for spec in [FeatureSpec(numeric, base_run_id=run.id), FeatureSpec(numeric[:5], categorical)]:
        for start, end, rows in [(None, None, small_dataset.row_count), (datetime(2026, 8, 10), datetime(2026, 8, 21), None),
                                 (datetime(2031, 1, 1), None, 0)]:
            got = load_frame(conn, small_dataset, feature_set, spec, start=start, end=end)
            select, params = _select_from(small_dataset, feature_set, spec)
            expected = conn.execute(f"{select} WHERE {PERIOD_SQL} ORDER BY t.tx_row",
                                    {**params, "start": start, "end": end}).df()
            assert list(got.dtypes) == list(expected.dtypes)
            pd.testing.assert_frame_equal(got, expected)
            assert rows is None or len(got) == rows


def test_saved_run_reloads_and_scores_identically(conn, small_dataset, run):
    model = load_model(conn, run)
    feature_set = app_datasets.ensure_features(as_user(conn), small_dataset)
    frame = load_frame(conn, small_dataset, feature_set, FeatureSpec(**run.features))
    stored = conn.execute("SELECT score FROM scores WHERE run_id = ? ORDER BY tx_row", [run.id]).fetchnumpy()["score"]
    np.testing.assert_array_equal(model.decision_function(frame), stored)
    rescored = app_runs.rescore(as_user(conn), small_dataset, run.id)
    assert rescored.rows == len(stored)
    again = conn.execute("SELECT score FROM scores WHERE run_id = ? ORDER BY tx_row", [run.id]).fetchnumpy()["score"]
    np.testing.assert_array_equal(again, stored)


def test_a_changed_or_foreign_artifact_is_never_loaded(conn, small_dataset, run):
    path = models_dir(conn) / run.artifact
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(UserError, match="has changed since it was saved"):
        load_model(conn, run)
    conn.execute("UPDATE runs SET artifact = '../evil.joblib' WHERE id = ?", [run.id])
    from detectors.runs import get_run

    with pytest.raises(UserError, match="outside the model directory"):
        load_model(conn, get_run(conn, run.id))


def test_moving_contamination_rethresholds_without_refitting(conn, small_dataset, run):
    scores = run_scores(conn, run.id)
    counts = [alert_count(scores, c)[1] for c in (0.005, 0.01, 0.05)]
    assert counts == [round(len(scores) * c) for c in (0.005, 0.01, 0.05)]
    before = conn.execute("SELECT count(*) FROM runs").fetchall()[0][0]
    app_runs.save_threshold(as_user(conn, "test"), run.id, 0.05)
    assert conn.execute("SELECT count(*), max(contamination) FROM runs").fetchall()[0] == (before, 0.05)
    with pytest.raises(UserError, match="contamination must be between"):
        app_runs.save_threshold(as_user(conn, "test"), run.id, 2)


def test_several_runs_and_the_active_one(conn, small_dataset, run):
    second = app_runs.fit(as_user(conn, "test"), small_dataset, ["ecod", "hbos"], combine="rank", activate=False)
    assert second.detector == "ensemble" and second.params["combine"] == "rank"
    assert [r.id for r in list_runs(conn, small_dataset)] == [run.id, second.id]
    assert active_run(conn, small_dataset).id == run.id
    app_runs.activate(as_user(conn), small_dataset.id, second.id)
    assert active_run(conn, small_dataset).id == second.id


def test_a_refused_fit_changes_nothing(conn, small_dataset, monkeypatch):
    from detectors.backends import PyODLOF

    monkeypatch.setattr(PyODLOF, "max_rows", 1_000)
    before = digest(conn)
    with pytest.raises(UserError, match="LOF \\(PyOD\\) does not scale"):
        app_runs.fit(as_user(conn, "test"), small_dataset, ["lof"])
    assert digest(conn) == before
    with pytest.raises(UserError, match="no transactions before"):
        app_runs.fit(as_user(conn, "test"), small_dataset, ["ecod"], train_until=datetime(2020, 1, 1))
    assert digest(conn) == before


def test_threshold_metrics_agree_with_scikit_learn(conn, small_dataset, run):
    frame = labelled_frame(conn, small_dataset, run.id)
    threshold = alert_count(frame["score"].to_numpy(), 0.03)[0]
    got = threshold_metrics(frame, threshold)
    y, predicted = frame["y"].astype(int), (frame["score"] >= threshold).astype(int)
    assert got["precision"] == pytest.approx(precision_score(y, predicted))
    assert got["recall"] == pytest.approx(recall_score(y, predicted))
    per_scenario = got["recall_by_scenario"]
    assert sum(v["fraud"] for v in per_scenario.values()) == int(y.sum())
    assert sum(v["caught"] for v in per_scenario.values()) == got["confusion"]["tp"]
    later = labelled_frame(conn, small_dataset, run.id, run.train_until)
    metrics = evaluate_run(conn, small_dataset, run)  # time-aware by default
    assert metrics["labelled"] == len(later) < len(frame)
    assert metrics["average_precision"] == pytest.approx(average_precision_score(later["y"].astype(int), later["score"]))


def test_threshold_counts_give_the_frames_metrics_at_every_threshold(conn, small_dataset, run):
    """The sorted-scores summary the Detect page's slider reads equals the per-row computation,
    on the in-sample and the held-out period, with analyst labels (one unsure) over the truth."""
    ids = conn.execute(f"SELECT transaction_id FROM {small_dataset.table} ORDER BY tx_row LIMIT 3").fetchall()
    for (transaction_id,), label in zip(ids, ("fraud", "legitimate", "unsure"), strict=True):
        app_labels.label(as_user(conn, "ana"), small_dataset, [transaction_id], label)
    for start in (None, run.train_until):
        frame = labelled_frame(conn, small_dataset, run.id, start)
        counts = threshold_counts(conn, small_dataset, run.id, start)
        scores = frame["score"].to_numpy()
        thresholds = [*np.quantile(scores, [0, 0.5, 0.9, 0.97, 0.999]), scores.max(), scores.max() + 1, scores.min() - 1]
        for threshold in thresholds:
            assert counts.metrics(threshold) == threshold_metrics(frame, threshold), threshold
        assert counts.metrics(thresholds[3])["recall_by_scenario"]  # the small dataset has scenarios
    # a dataset without its label and scenario roles: analysts' labels only, no scenarios
    bare = replace(small_dataset, columns=[c for c in small_dataset.columns if c.role not in ("label", "fraud_scenario")])
    frame, counts = labelled_frame(conn, bare, run.id), threshold_counts(conn, bare, run.id)
    assert frame["y"].notna().sum() == 2 and not counts.scenarios
    for threshold in (frame["score"].min(), frame["score"].median(), float("nan"), float("inf")):
        assert counts.metrics(threshold) == threshold_metrics(frame, threshold), threshold


def test_analyst_labels_override_the_ground_truth(conn, small_dataset, run):
    frame = labelled_frame(conn, small_dataset, run.id)
    fraud_id = conn.execute(f"SELECT transaction_id FROM {small_dataset.table} WHERE is_fraud LIMIT 1").fetchall()[0][0]
    app_labels.label(as_user(conn, "ana"), small_dataset, [fraud_id], "legitimate")
    app_labels.label(as_user(conn, "ana"), small_dataset, ["TX000000001"], "fraud")
    app_labels.label(as_user(conn, "bob"), small_dataset, ["TX000000001"], "unsure")  # the latest label wins
    after = labelled_frame(conn, small_dataset, run.id)
    assert after["y"].sum() == frame["y"].sum() - 1
    assert after["y"].isna().sum() == 1


def test_precision_at_k_and_card_precision_at_k_by_hand():
    y = np.array([1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.2])
    assert precision_at_k(y, scores, 2) == 0.5 and precision_at_k(y, scores, 3) == pytest.approx(2 / 3)
    frame = pd.DataFrame({
        "day": ["d1"] * 5 + ["d2"] * 3,
        "card": ["a", "a", "b", "c", "d", "a", "b", "c"],
        "score": [0.9, 0.1, 0.8, 0.7, 0.2, 0.3, 0.95, 0.5],
        "y": [0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
    })
    # Day 1: top-2 cards by max score: a (0.9, compromised via its 2nd tx), b (0.8, compromised) -> 2/2.
    # Day 2: top-2: b (0.95, clean), c (0.5, clean) -> 0/2. Mean 0.5.
    assert card_precision_at_k(frame, 2) == 0.5
    # k larger than the cards of a day still divides by k.
    assert card_precision_at_k(frame, 4) == pytest.approx(((3 / 4) + (1 / 4)) / 2)


def test_tuning_stores_each_trial_and_can_stop(conn, small_dataset):
    result = app_tuning.search(as_user(conn), small_dataset, "hbos", space={"n_bins": [10, 20], "alpha": [0.1], "tol": [0.5]}, contaminations=[0.01, 0.05], budget=3, train_until=datetime(2026, 8, 20))
    assert len(result) == 3 and result["average_precision"].between(0, 1).all()
    assert (result["value"] == result["average_precision"]).all()
    assert len(stored_trials(conn, small_dataset)) == 3
    calls = iter([False, True])
    stopped = app_tuning.search(as_user(conn), small_dataset, "ecod", budget=5, metric="precision_at_k", should_stop=lambda: next(calls))
    assert len(stopped) == 1 and stopped["value"].iloc[0] == stopped["precision_at_k"].iloc[0]
    assert len(stored_trials(conn, small_dataset)) == 4


def test_tuning_random_search_respects_the_budget(conn, small_dataset):
    result = app_tuning.search(as_user(conn), small_dataset, "isolation_forest", budget=2, strategy="random")
    assert len(result) == 2 and result["params"].map(json.dumps).nunique() <= 2


def test_purging_a_dataset_removes_its_runs_and_scores(conn, small_dataset, run):

    app_runs.fit(as_user(conn, "test"), small_dataset, ["hbos"])
    app_datasets.delete(as_user(conn, "test"), small_dataset.name)
    assert conn.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 2  # still undoable
    assert app_datasets.empty_trash(as_user(conn, "test")) == 1
    for table in ("runs", "scores", "active_runs", "datasets", "feature_sets"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == 0, table


def test_rescoring_an_ensemble_is_refused_before_loading_rows_when_a_member_does_not_scale(conn, small_dataset, monkeypatch):
    from detectors.backends import PyODLOF

    run = app_runs.fit(as_user(conn, "test"), small_dataset, ["hbos", "lof"])
    before = digest(conn)
    monkeypatch.setattr(PyODLOF, "max_rows", 1_000)

    def no_rows_please(*args, **kwargs):
        raise AssertionError("rows were loaded before the refusal")

    monkeypatch.setattr("detectors.runs.stream_frames", no_rows_please)
    with pytest.raises(UserError, match="LOF \\(PyOD\\) does not scale"):
        app_runs.rescore(as_user(conn), small_dataset, run.id)
    assert digest(conn) == before


@pytest.mark.parametrize("n, levels", [(20_000, 300), (5_000, 5_000_000), (3, 2), (40, 1)])
def test_ranking_metrics_from_one_sort_equal_scikit_learns_scores_and_curves(n, levels):
    """AP, ROC AUC and the two curves the run's figures draw, from one sort of the scores, are
    scikit-learn's own numbers, ties (few distinct scores, or one) and unlabelled rows included."""
    from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

    from detectors.evaluation import _curves

    rng = np.random.default_rng(n)
    y = (rng.random(n) < 0.3).astype(float)
    y[:2] = [0.0, 1.0]  # both classes
    frame = pd.DataFrame({"score": rng.integers(0, levels, n) / levels,  # many ties where levels is small
                          "y": np.where(rng.random(n) < 0.1, np.nan, y), "scenario": None, "card": None, "day": "d1"})
    frame.loc[:1, "y"] = [0.0, 1.0]
    labelled = frame[frame["y"].notna()]
    truth, scores = labelled["y"].astype(int).to_numpy(), labelled["score"].to_numpy()
    got = ranking_metrics(frame)
    assert got["average_precision"] == average_precision_score(truth, scores)
    assert got["roc_auc"] == roc_auc_score(truth, scores)
    _, _, lines = _curves(truth, scores, max_points=10**9)  # every point
    precision, recall, _ = precision_recall_curve(truth, scores)
    fpr, tpr, _ = roc_curve(truth, scores)
    np.testing.assert_array_equal(lines["pr"]["precision"], precision)
    np.testing.assert_array_equal(lines["pr"]["recall"], recall)
    np.testing.assert_array_equal(lines["roc"]["fpr"], fpr)
    np.testing.assert_array_equal(lines["roc"]["tpr"], tpr)
    assert ranking_metrics(frame.assign(y=0.0))["average_precision"] is None  # one class: undefined


def test_alert_count_on_sorted_scores_equals_the_quantile_and_count():
    """The slider's index-and-binary-search gives alert_count's threshold and count, ties included."""
    from detectors.runs import alert_count_sorted

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 1_000, 12_345):
        scores = rng.integers(0, max(n // 3, 1), n).astype(float)  # many ties
        ordered = np.sort(scores)
        for contamination in np.round(np.arange(0.001, 0.5, 0.007), 3):
            assert alert_count_sorted(ordered, contamination) == alert_count(scores, contamination), (n, contamination)
    assert alert_count_sorted(np.empty(0), 0.01)[1] == 0
    with pytest.raises(UserError):
        alert_count_sorted(ordered, 0.9)


def test_handbook_card_precision_at_k_by_hand():
    """Day 1: cards ranked a (0.9, fraud), b (0.8, fraud), c (0.7): top 2 = a, b -> 2/2, both now known.
    Day 2: a and b leave the ranking (known), so the top 2 are c (0.5, fraud) and d (0.4) -> 1/2, not
    the simple metric's b (0.95) and a (0.6). Day 3: e was known compromised before the period, so
    the top 2 are f (0.2) and g (0.1, fraud) -> 1/2. Mean: (1 + 0.5 + 0.5) / 3."""
    frame = pd.DataFrame({
        "day": ["d1"] * 4 + ["d2"] * 4 + ["d3"] * 3,
        "card": ["a", "a", "b", "c", "b", "a", "c", "d", "e", "f", "g"],
        "score": [0.9, 0.3, 0.8, 0.7, 0.95, 0.6, 0.5, 0.4, 0.99, 0.2, 0.1],
        "y": [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0],
    })
    assert card_precision_at_k_handbook(frame, 2, known_compromised={"e"}) == pytest.approx((1 + 0.5 + 0.5) / 3)
    # Without removing anything it would be the simple per-day precision.
    assert card_precision_at_k(frame, 2) == pytest.approx((2 / 2 + 2 / 2 + 1 / 2) / 3)
    # A day with fewer cards than k still divides by k.
    assert card_precision_at_k_handbook(frame.iloc[:4], 5) == pytest.approx(2 / 5)
    assert card_precision_at_k_handbook(frame.assign(y=np.nan), 2) is None


def test_evaluate_reports_the_handbook_card_precision_with_cards_known_before_the_period(conn, small_dataset, run):
    frame = labelled_frame(conn, small_dataset, run.id, run.train_until)
    assert evaluate_run(conn, small_dataset, run)["card_precision_at_k_handbook"] == pytest.approx(
        card_precision_at_k_handbook(frame, 100))  # no analyst has confirmed a card yet
    # Analysts confirm frauds before the period: those cards are known, and leave the ranking.
    confirmed = conn.execute(f"SELECT transaction_id, customer_id FROM {small_dataset.table} WHERE ts < ? AND is_fraud "
                             "LIMIT 15", [run.train_until]).fetchall()
    app_labels.label(as_user(conn, "ana"), small_dataset, [tx for tx, _ in confirmed], "fraud")
    known = {card for _, card in confirmed}
    frame = labelled_frame(conn, small_dataset, run.id, run.train_until)
    metrics = evaluate_run(conn, small_dataset, run)
    assert metrics["card_precision_at_k_handbook"] == pytest.approx(card_precision_at_k_handbook(frame, 100, known))
    assert metrics["card_precision_at_k_handbook"] != pytest.approx(card_precision_at_k_handbook(frame, 100))


def test_a_detector_trains_on_a_deterministic_sample_when_the_period_holds_more_rows_than_it_needs(
        conn, small_dataset, monkeypatch):
    """Past FIT_ROWS a detector trains on a sample drawn from the whole period (the same one each
    time) and still scores every row, streamed in chunks; the run says how many rows the period
    held and that it was sampled."""
    from detectors import runs as run_store

    monkeypatch.setattr(run_store, "FIT_ROWS", 1_000)
    monkeypatch.setattr(run_store, "SCORE_CHUNK", 1)  # a chunk per DuckDB vector: three on 5,000 rows
    first = app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], activate=False)
    again = app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], activate=False)
    rows, last = conn.execute(f"SELECT count(*), max(ts) FROM {small_dataset.table}").fetchone()
    assert first.sampled and first.fit_rows == rows > 2 * 2_048
    scored = conn.execute("SELECT count(*), count(DISTINCT tx_row) FROM scores WHERE run_id = ?", [first.id]).fetchone()
    assert scored == (rows, rows)
    def by_row(run_id: int) -> np.ndarray:
        return conn.execute("SELECT score FROM scores WHERE run_id = ? ORDER BY tx_row", [run_id]).fetchnumpy()["score"]

    assert np.array_equal(by_row(first.id), by_row(again.id))
    feature_set = load_feature_set(conn, small_dataset)
    train, period_rows, _ = run_store.training_rows(conn, small_dataset, feature_set, FeatureSpec(**first.features), None)
    assert len(train) == 1_000 and period_rows == rows
    assert train["tx_row"].is_unique and pd.Timestamp(train["ts"].max()) > pd.Timestamp(last) - pd.Timedelta(days=7)
    model = load_model(conn, first)  # streamed in chunks or scored from the whole frame: the same scores
    tx_rows, streamed = run_store.score_rows(conn, small_dataset, feature_set, model)
    whole = load_frame(conn, small_dataset, feature_set, model.spec)
    assert np.array_equal(tx_rows, whole["tx_row"].to_numpy())
    assert np.array_equal(streamed, run_store.score_in_chunks(model, whole))
