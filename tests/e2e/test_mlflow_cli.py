"""MLflow end to end through the command line, as a data scientist works: `centinela fit`,
`retrain --search`, `promote` with $MLFLOW_TRACKING_URI pointing at a real SQLite tracking store;
the runs and the registry are read back with MLflow's own client."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_fit_retrain_and_promote_from_the_command_line_land_in_mlflow(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    db = tmp_path / "centinela.duckdb"
    run_cli("generate", "--rows", "5000", "--seed", "7", "--fraud-rate", "0.02", "--days", "30", "--name", "bank", db=db,
            check=True)
    detector = json.loads(run_cli("fit", "bank", "--json", db=db, check=True).stdout)
    version = json.loads(run_cli("retrain", "bank", "--search", "2", "--json", db=db, check=True).stdout)
    version["id"] = version["version"]
    promoted = run_cli("promote", "bank", str(version["id"]), db=db, check=True)
    assert "MLflow" not in promoted.stderr  # no warning: it was logged

    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("centinela/bank")
    logged = {r.data.tags["centinela.run_id"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(logged) == {str(detector["id"]), str(version["id"])}
    assert logged[str(version["id"])].data.params["search.trials"] == "2"
    assert logged[str(version["id"])].data.metrics["average_precision"] == version["average_precision"]
    production = client.get_model_version_by_alias("centinela-bank", "production")
    assert production.tags["centinela.version"] == str(version["id"])
    assert client.get_model_version("centinela-bank", production.version).current_stage == "Production"
    assert len(client.search_model_versions("name = 'centinela-bank'")) == 2  # the fit's (active then) and this one
