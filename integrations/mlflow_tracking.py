"""MLflow tracking and registry, where a bank runs MLflow: with $MLFLOW_TRACKING_URI set, every
detector fit, retrain and parameter search is logged as an MLflow run, and making a version the
one the queue ranks by registers it in MLflow's model registry. Without it nothing here runs
(mlflow is not even imported).

- Experiment `centinela/<dataset>`; one MLflow run per Centinela run, tagged `centinela.run_id`
  (so it is found again), with its parameters, every numeric metric (dotted names:
  `average_precision`, `card_precision_at_k_handbook`, `baseline.average_precision`, ...), the
  feature-set version, and the model file (`model/run-D-N.joblib`) plus `metrics.json`.
- A detector search (`centinela tune`, the Detect page) is a parent run with one nested run per
  trial; a retrain's search (`retrain --search N`) is logged in the version's own run (its trial
  count, best parameters, fold plan in `search.json`).
- Registered model `centinela-<dataset>`. MLflow numbers a model's versions itself (1, 2, ...), so
  each MLflow version carries Centinela's number as the tag `centinela.version` and the alias
  `centinela-v<N>` (MLflow keeps `v<N>` for its own numbers); the version the queue ranks by has
  the stage Production and the alias `production` (the others are archived). A Centinela version promoted again (a rollback) is found by its tag
  and moved back to Production, not registered twice. A run fitted before MLflow was set up is
  logged when it is first promoted.

Logging happens after the action has committed: an MLflow server that is down or refuses leaves
the action done and is reported as a warning (on the progress line and in the server log), never
as the action's failure.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from data.datasets import Dataset
from detectors.runs import Run, models_dir

LOG = logging.getLogger(__name__)
URI_ENV = "MLFLOW_TRACKING_URI"
RUN_TAG, VERSION_TAG = "centinela.run_id", "centinela.version"
PRODUCTION = "production"
_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")
MAX_PARAM = 6_000  # characters MLflow keeps of a parameter's value


def configured() -> str | None:
    """The tracking URI, or None: then nothing is logged."""
    return os.environ.get(URI_ENV) or None


def _client():
    # MLflow's own defaults retry an unreachable server for minutes; an analyst's fit waits on this.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    # With a tracking server, MLflow prints "View run ... at: URL" to standard output when a run
    # ends: that would sit before a command's --json output (and break the Airflow DAGs' parsing).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow import MlflowClient

    return MlflowClient(configured())


def experiment_name(dataset: Dataset) -> str:
    return f"centinela/{dataset.name}"


def model_name(dataset: Dataset) -> str:
    return f"centinela-{dataset.name}"


def artifact_location() -> str | None:
    """Where a new experiment keeps its files: $CENTINELA_MLFLOW_ARTIFACTS; for a SQLite store,
    `mlflow-artifacts/` beside its file (MLflow's default is ./mlruns in whatever folder the
    process runs in); for a server, None (the server decides)."""
    if os.environ.get("CENTINELA_MLFLOW_ARTIFACTS"):
        return os.environ["CENTINELA_MLFLOW_ARTIFACTS"]
    uri = configured() or ""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlflow-artifacts").as_uri()
    return None


def _experiment(client, dataset: Dataset) -> str:
    found = client.get_experiment_by_name(experiment_name(dataset))
    if found is not None:
        return found.experiment_id
    return client.create_experiment(experiment_name(dataset), artifact_location=artifact_location(),
                                    tags={"centinela.dataset": dataset.name})


def flat_metrics(metrics: dict[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """Every finite number in a nested metrics dict, by dotted key (lists and texts left out)."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        name = _KEY.sub("_", f"{prefix}{key}")[:250]
        if isinstance(value, dict):
            out.update(flat_metrics(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text[:MAX_PARAM]


def run_params(run: Run) -> dict[str, str]:
    params: dict[str, Any] = {
        "detector": run.detector, "kind": run.kind, "contamination": run.contamination,
        "train_from": run.train_from, "train_until": run.train_until, "fit_rows": run.fit_rows,
        "sampled": run.sampled, "feature_version": run.feature_version, "base_run_id": run.base_run_id,
        "features": run.features.get("numeric"), "categorical": run.features.get("categorical"),
        "label_counts": run.label_counts}
    params.update({f"model.{_KEY.sub('_', str(k))}"[:250]: v for k, v in (run.params or {}).items()})
    search = (run.metrics or {}).get("search")
    if search:
        params["search.trials"] = search.get("trials")
        params.update({f"search.best.{k}"[:250]: v for k, v in (search.get("best", {}).get("params") or {}).items()})
    return {k: _param(v) for k, v in params.items() if v is not None}


def _find_run(client, experiment_id: str, run_id: int):
    """The finished MLflow run of a Centinela run; one left unfinished (a crash, a refused
    request half-way) is deleted, so the run is logged again whole."""
    found = client.search_runs([experiment_id], f"tags.`{RUN_TAG}` = '{int(run_id)}'", max_results=50)
    for run in found:
        if run.info.status == "FINISHED":
            return run
    for run in found:
        client.delete_run(run.info.run_id)
    return None


def log_run(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run) -> str | None:
    """Log a fitted run or trained version (once; a second call finds the first). Returns the
    MLflow run id, or None when MLflow is not configured."""
    if not configured():
        return None
    client = _client()
    experiment_id = _experiment(client, dataset)
    existing = _find_run(client, experiment_id, run.id)
    if existing is not None:
        return existing.info.run_id
    tags = {RUN_TAG: str(run.id), "centinela.dataset": dataset.name, "centinela.kind": run.kind,
            "centinela.feature_version": run.feature_version or "", "centinela.artifact_sha256": run.artifact_sha256,
            "centinela.created_by": run.created_by, "mlflow.user": run.created_by}
    if run.note:
        tags["mlflow.note.content"] = run.note
    name = f"{'version' if run.kind == 'supervised' else 'detector run'} #{run.id} {run.detector}"
    created = client.create_run(experiment_id, start_time=int(pd.Timestamp(run.created_at).timestamp() * 1000),
                                tags=tags, run_name=name)
    mlflow_id = created.info.run_id
    try:
        from mlflow.entities import Metric, Param

        metrics = {**flat_metrics(run.metrics), "fit_seconds": run.fit_seconds, "score_seconds": run.score_seconds}
        at = int(pd.Timestamp(run.created_at).timestamp() * 1000)
        metric_list = [Metric(k, v, at, 0) for k, v in metrics.items()]
        param_list = [Param(k, v) for k, v in run_params(run).items()]
        for start in range(0, max(len(metric_list), len(param_list)), 100):  # MLflow takes 100 params a batch
            client.log_batch(mlflow_id, metrics=metric_list[start:start + 100], params=param_list[start:start + 100])
        artifact = models_dir(conn) / run.artifact
        if artifact.exists():
            client.log_artifact(mlflow_id, str(artifact), "model")
        client.log_dict(mlflow_id, run.metrics or {}, "metrics.json")
        search = (run.metrics or {}).get("search")
        if search:
            client.log_dict(mlflow_id, search, "search.json")
        client.set_terminated(mlflow_id, "FINISHED")
    except BaseException:
        client.set_terminated(mlflow_id, "FAILED")
        raise
    return mlflow_id


def log_search(dataset: Dataset, trials: pd.DataFrame, *, detector: str, metric: str, strategy: str) -> str | None:
    """Log a detector's parameter search: a parent run and a nested run per trial. Returns the
    parent's MLflow run id (None when not configured or no trial finished)."""
    if not configured() or trials.empty:
        return None
    from mlflow.entities import Metric, Param

    client = _client()
    experiment_id = _experiment(client, dataset)
    study = str(trials["study"].iloc[0])
    parent = client.create_run(experiment_id, run_name=f"search {study}",
                               tags={"centinela.study": study, "centinela.dataset": dataset.name,
                                     "centinela.kind": "search"}).info.run_id
    best = trials.sort_values("value", ascending=False).iloc[0]
    client.log_batch(parent, params=[Param("detector", detector), Param("metric", metric), Param("strategy", strategy),
                                     Param("trials", str(len(trials))), Param("best.trial", str(int(best["trial"]))),
                                     Param("best.params", _param(best["params"]))],
                     metrics=[Metric(f"best.{metric}", float(best["value"]), 0, 0)])
    for row in trials.itertuples(index=False):
        child = client.create_run(experiment_id, run_name=f"{study} trial {row.trial}",
                                  tags={"mlflow.parentRunId": parent, "centinela.study": study,
                                        "centinela.trial": str(row.trial)}).info.run_id
        numbers = {k: getattr(row, k) for k in ("average_precision", "precision_at_k", "f1", "seconds", "value")}
        client.log_batch(child, metrics=[Metric(k, float(v), 0, 0) for k, v in numbers.items()
                                         if v is not None and math.isfinite(float(v))],
                         params=[Param("contamination", str(row.contamination)),
                                 *[Param(f"model.{k}"[:250], _param(v)) for k, v in (row.params or {}).items()]])
        client.set_terminated(child, "FINISHED")
    client.set_terminated(parent, "FINISHED")
    return parent


def register_active(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, action: str):
    """Register (or find) `run`'s MLflow model version, make it Production (archiving the others)
    and point the `production` alias at it. Returns the ModelVersion (None when not configured)."""
    if not configured():
        return None
    client = _client()
    mlflow_run = log_run(conn, dataset, run)
    name = model_name(dataset)
    if client.search_registered_models(f"name = '{name}'", max_results=1) == []:
        client.create_registered_model(name, tags={"centinela.dataset": dataset.name},
                                       description=f"Centinela's versions of dataset {dataset.name}")
    found = client.search_model_versions(f"name = '{name}' and tag.`{VERSION_TAG}` = '{run.id}'")
    if found:
        version = found[0]
    else:
        source = f"{client.get_run(mlflow_run).info.artifact_uri}/model"
        version = client.create_model_version(name, source, mlflow_run,
                                              tags={VERSION_TAG: str(run.id), "centinela.kind": run.kind},
                                              description=f"Centinela version #{run.id} ({run.kind}, {run.detector})")
        client.set_registered_model_alias(name, f"centinela-v{run.id}", version.version)
    import warnings

    with warnings.catch_warnings():  # stages are deprecated in MLflow 2.9+, still what many registries show
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version.version, "Production", archive_existing_versions=True)
    client.set_registered_model_alias(name, PRODUCTION, version.version)
    client.set_model_version_tag(name, version.version, "centinela.last_action", action)
    return client.get_model_version(name, version.version)


def safely(what: str, call, *args, **kwargs) -> str | None:
    """Run an MLflow call; a failure is logged and returned as a message, never raised."""
    if not configured():
        return None
    try:
        call(*args, **kwargs)
    except Exception as exc:  # the server down, a refused request: the action stands
        LOG.warning("MLflow: could not %s: %s", what, exc)
        return f"MLflow: could not {what} ({type(exc).__name__}: {str(exc)[:200]}); the action itself is done."
    return None

