"""The Detect & tune page driven through AppTest: fit, move the threshold, compare, tune."""

from __future__ import annotations

import pytest

from detectors.runs import active_run, list_runs
from tests.apptest import app, metric, one, texts

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


def test_a_run_from_the_command_line_outside_the_slider_range(conn, small_dataset):
    from detectors.runs import fit_run

    fit_run(conn, small_dataset, ["hbos"], contamination=0.0002)
    at = _detect_page()
    assert not at.exception
    assert at.slider[0].value == 0.001
    assert metric(at, "Alerts") == f"{round(small_dataset.row_count * 0.001):,}"


def test_a_dataset_without_labels_still_fits_and_says_why_there_are_no_metrics(conn, tmp_path):
    from data.ingest import import_file
    from tests.samples import write_shape

    path, _ = write_shape(tmp_path, "unlabelled_customer", rows=300)
    dataset = import_file(conn, path, "unlabelled").dataset
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
