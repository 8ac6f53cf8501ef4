"""MLflow against a real tracking store (MLflow's SQLite store, through MLflow's own client):
fits, retrains and searches are runs with their parameters, metrics and model file; making a
version active registers it (Production, aliases); without $MLFLOW_TRACKING_URI nothing happens,
and an MLflow that cannot be reached never fails the action."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from application import models as app_models
from application import runs as app_runs
from application import tuning as app_tuning
from detectors.runs import default_split
from tests.browser import free_port
from tests.conftest import ROOT, as_user


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    from mlflow import MlflowClient

    return MlflowClient(uri)


def _runs(client, dataset, filter_string: str = ""):
    experiment = client.get_experiment_by_name(f"centinela/{dataset.name}")
    return [] if experiment is None else client.search_runs([experiment.experiment_id], filter_string, max_results=500)


def test_a_fit_is_a_run_with_its_model_and_metrics_and_is_registered(conn, small_dataset, tracking, tmp_path):
    ctx = as_user(conn, "ana")
    run = app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    (logged,) = _runs(tracking, small_dataset)
    assert logged.data.tags["centinela.run_id"] == str(run.id) and logged.info.status == "FINISHED"
    assert logged.data.tags["centinela.feature_version"] == run.feature_version
    assert logged.data.params["detector"] == "isolation_forest" and float(logged.data.params["contamination"]) == run.contamination
    assert logged.data.params["feature_version"] == run.feature_version
    for name in ("roc_auc", "average_precision", "card_precision_at_k_handbook", "precision_at_k"):
        assert logged.data.metrics[name] == pytest.approx(run.metrics[name]), name
    downloaded = tracking.download_artifacts(logged.info.run_id, "model", str(tmp_path / "back"))
    (model_file,) = os.listdir(downloaded)
    assert hashlib.sha256(Path(downloaded, model_file).read_bytes()).hexdigest() == run.artifact_sha256
    assert str(tmp_path) in logged.info.artifact_uri  # beside the SQLite file, not in the working folder
    (found,) = tracking.search_model_versions(f"name = 'centinela-{small_dataset.name}'")
    version = tracking.get_model_version(found.name, found.version)  # a search leaves the stage out
    assert version.tags["centinela.version"] == str(run.id) and version.current_stage == "Production"
    assert tracking.get_model_version_by_alias(f"centinela-{small_dataset.name}", "production").version == version.version
    assert version.run_id == logged.info.run_id


def test_retrain_with_search_promote_and_rollback_move_the_registry(conn, small_dataset, tracking):
    ctx = as_user(conn, "ana")
    detector = app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    version = app_models.retrain(ctx, small_dataset, model="hgb", search=2)
    (logged,) = _runs(tracking, small_dataset, f"tags.`centinela.run_id` = '{version.id}'")
    assert logged.data.tags["centinela.kind"] == "supervised" and logged.data.params["search.trials"] == "2"
    assert logged.data.params["base_run_id"] == str(detector.id)
    assert logged.data.metrics["average_precision"] == pytest.approx(version.metrics["average_precision"])
    assert logged.data.metrics["baseline.average_precision"] == pytest.approx(
        version.metrics["baseline"]["average_precision"])
    name = f"centinela-{small_dataset.name}"
    assert len(tracking.search_model_versions(f"name = '{name}'")) == 1  # trained, not promoted: not registered
    app_models.promote(ctx, small_dataset, version.id)
    app_models.rollback(ctx, small_dataset, detector.id)
    versions = {v.tags["centinela.version"]: tracking.get_model_version(name, v.version)
                for v in tracking.search_model_versions(f"name = '{name}'")}
    assert set(versions) == {str(detector.id), str(version.id)}  # the rollback found the detector's, no third
    assert versions[str(detector.id)].current_stage == "Production"
    assert versions[str(version.id)].current_stage == "Archived"
    assert tracking.get_model_version_by_alias(name, "production").tags["centinela.version"] == str(detector.id)
    assert tracking.get_model_version_by_alias(name, f"centinela-v{version.id}").version == versions[str(version.id)].version
    assert versions[str(detector.id)].tags["centinela.last_action"] == "rollback"


def test_a_detector_search_is_a_parent_run_with_a_run_per_trial(conn, small_dataset, tracking):
    found = app_tuning.search(as_user(conn), small_dataset, "hbos", space={"n_bins": [10, 20], "alpha": [0.1],
                                                                          "tol": [0.5]}, budget=2)
    runs = _runs(tracking, small_dataset)
    (parent,) = [r for r in runs if r.data.tags.get("centinela.kind") == "search"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(found) == 2
    assert sorted(float(c.data.metrics["average_precision"]) for c in children) == pytest.approx(
        sorted(found["average_precision"]))
    assert parent.data.params["trials"] == "2" and parent.data.params["detector"] == "hbos"


def test_an_unreachable_mlflow_never_fails_the_fit(conn, small_dataset, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    lines = []
    ctx = as_user(conn, "ana").with_progress(lambda f, m: lines.append(m))
    started = time.monotonic()
    run = app_runs.fit(ctx, small_dataset, ["hbos"])
    assert app_runs.active(ctx, small_dataset).run.id == run.id
    assert any(m.startswith("MLflow: could not log run") for m in lines), lines
    assert time.monotonic() - started < 60


def test_without_a_tracking_uri_mlflow_is_not_even_imported(db_path):
    code = ("import sys; from application.context import Context; from application import runs; "
            "from application.datasets import generate; from data.db import connect; "
            "from data.synthetic import SyntheticConfig; c = Context(connect(), 'cli:t'); "
            "d = generate(c, 'd', SyntheticConfig(rows=800, seed=1, days=5)).dataset; runs.fit(c, d, ['hbos']); "
            "print('mlflow' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, cwd=db_path.parent,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert not (db_path.parent / "mlruns").exists()
