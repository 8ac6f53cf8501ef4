"""The Detect & tune page driven through AppTest: fit, move the threshold, compare, tune."""

from __future__ import annotations

import pytest

from application import datasets as app_datasets
from application import runs as app_runs
from data.errors import UserError
from detectors.base import MAX_CONTAMINATION, MIN_CONTAMINATION
from detectors.runs import active_run, alert_count, list_runs, run_scores
from tests.apptest import app, metric, one, texts
from tests.conftest import as_user, digest

pytestmark = pytest.mark.usefixtures("server_like_navigation")


def _detect_page():
    at = app().run()
    at.switch_page("pages/detect.py").run()
    assert not at.exception
    return at


def test_fit_a_detector_then_move_the_slider(conn, small_dataset):
    at = _detect_page()
    assert "No runs yet" in texts(at)
    one(at.button, "Fit and score").click()
    at.run()
    assert not at.exception, at.exception
    run = active_run(conn, small_dataset)
    assert run is not None and run.detector == "isolation_forest"
    assert f"Run #{run.id} is now the active run" in texts(at)
    before = int(metric(at, "Alerts").replace(",", ""))
    assert before == round(small_dataset.row_count * run.contamination)
    at.slider[0].set_value(0.05).run()
    after = int(metric(at, "Alerts").replace(",", ""))
    assert after == round(small_dataset.row_count * 0.05) and after > before
    for contamination in (0.05, 0.013):  # the page's kept sorted scores give alert_count's threshold and count
        at.slider[0].set_value(contamination).run()
        threshold, alerts = alert_count(run_scores(conn, run.id), contamination)
        assert (metric(at, "Threshold"), metric(at, "Alerts")) == (f"{threshold:.4f}", f"{alerts:,}")
    at.slider[0].set_value(0.05).run()
    assert len(list_runs(conn, small_dataset)) == 1  # moving the threshold never refits
    one(at.button, "Save contamination 0.050 for run #1").click()
    at.run()
    assert active_run(conn, small_dataset).contamination == 0.05


def test_an_ensemble_and_a_comparison(conn, small_dataset):
    at = _detect_page()
    at.multiselect(key="detect-detectors").set_value(["ecod", "hbos"]).run()
    one(at.selectbox, "Combine ensemble scores by").set_value("rank")
    one(at.button, "Fit and score").click()
    at.run()
    at.multiselect(key="detect-detectors").set_value(["isolation_forest"]).run()
    one(at.button, "Fit and score").click()
    at.run()
    assert not at.exception
    runs = list_runs(conn, small_dataset)
    assert [r.detector for r in runs] == ["ensemble", "isolation_forest"] and runs[0].params["combine"] == "rank"
    table = next(d.value for d in at.dataframe if "average_precision" in d.value.columns)
    assert len(table) == 2 and table["average_precision"].between(0, 1).all()


def test_a_detector_that_refuses_says_so(conn, small_dataset, monkeypatch):
    from detectors.backends import PyODOCSVM

    monkeypatch.setattr(PyODOCSVM, "max_rows", 100)
    at = _detect_page()
    at.multiselect(key="detect-detectors").set_value(["ocsvm"]).run()
    one(at.button, "Fit and score").click()
    at.run()
    assert "does not scale" in " ".join(e.value for e in at.error)
    assert list_runs(conn, small_dataset) == []


def test_tune_and_save_the_best_trial(conn, small_dataset):
    at = _detect_page()
    at.selectbox(key="tune-detector").set_value("hbos").run()
    at.multiselect(key="tune-hbos-n_bins").set_value([10, 20])
    at.multiselect(key="tune-hbos-alpha").set_value([0.1])
    at.multiselect(key="tune-hbos-tol").set_value([0.5])
    one(at.button, "Start search").click()
    at.run()
    assert not at.exception, at.exception
    trials = next(d.value for d in at.dataframe if "trial" in d.value.columns)
    assert len(trials) == 2
    one(at.button, "Save as a run (fits on the full training period)").click()
    at.run()
    run = active_run(conn, small_dataset)
    assert run.detector == "hbos" and run.note.startswith("from search hbos-")


def test_the_demo_run_shows_its_stored_figures(db_path, monkeypatch):
    """A new database gets the demo data and a default run; the page shows that run's figures."""
    from data.datasets import get_dataset
    from data.db import connect

    monkeypatch.setenv("CENTINELA_DEMO_ROWS", "8000")
    at = _detect_page()
    conn = connect(db_path)
    run = active_run(conn, get_dataset(conn, "demo"))
    assert run.detector == "isolation_forest" and run.train_until is not None and run.contamination == 0.01
    assert metric(at, "Average precision") == f"{run.metrics['average_precision']:.3f}"
    assert metric(at, "Recall") == f"{run.metrics['recall'] * 100:.1f}%"
    assert metric(at, "Alerts") == f"{round(8000 * 0.01):,}"


def test_the_page_and_the_command_line_share_the_contamination_bounds(conn, small_dataset):
    """One range for every front end: what the command line accepts, the slider can show."""
    before = digest(conn)
    with pytest.raises(UserError, match=f"contamination must be between {MIN_CONTAMINATION} and {MAX_CONTAMINATION}"):
        app_runs.fit(as_user(conn, "test"), small_dataset, ["hbos"], contamination=MIN_CONTAMINATION / 5)
    assert digest(conn) == before
    app_runs.fit(as_user(conn, "test"), small_dataset, ["hbos"], contamination=MIN_CONTAMINATION)
    at = _detect_page()
    assert not at.exception
    assert (at.slider[0].min, at.slider[0].max, at.slider[0].value) == (MIN_CONTAMINATION, MAX_CONTAMINATION,
                                                                        MIN_CONTAMINATION)
    assert metric(at, "Alerts") == f"{round(small_dataset.row_count * MIN_CONTAMINATION):,}"


def test_a_dataset_without_labels_still_fits_and_says_why_there_are_no_metrics(conn, tmp_path):
    from tests.samples import write_shape

    path, _ = write_shape(tmp_path, "unlabelled_customer", rows=300)
    dataset = app_datasets.import_dataset(as_user(conn, "test"), path, "unlabelled", features=False).report.dataset
    at = _detect_page()
    one(at.button, "Fit and score").click()
    at.run()
    assert not at.exception, at.exception
    assert active_run(conn, dataset) is not None
    assert "No labels for this dataset yet" in texts(at)
    assert metric(at, "Precision") == "—" and metric(at, "Average precision") == "—"
    one(at.button, "Start search").click()
    at.run()
    assert "tuning needs labelled validation data" in " ".join(e.value for e in at.error)
