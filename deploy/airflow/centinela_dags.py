"""Centinela's scheduled work for Apache Airflow 3: every task calls the `centinela` command line.

Two DAGs:

- `centinela_sync` (hourly): `centinela sync NAME --json` for each PostgreSQL source (the
  `centinela_sources` Variable, else every source `centinela source list --json` names), one
  mapped task per source.
- `centinela_nightly` (02:30, away from the hourly syncs): import the night's chargeback labels (`centinela label`), train a
  new version on labels before the last labelled week (`centinela retrain --hold-out-days`), the
  evaluation gate (`centinela promote --if-better`: promoted only if it beats the active version
  on that week), then a backup (`centinela backup`), which runs whatever happened before it.

Where Centinela is: the Airflow Connection `centinela_default` when it exists (host and port: the
app's address, for CENTINELA_URL; password: an `operate`-scope API key, for CENTINELA_API_KEY;
extra `{"database": "/srv/centinela/centinela.duckdb"}` for CENTINELA_DB), else the worker's own
CENTINELA_DB, CENTINELA_URL and CENTINELA_API_KEY. While the app runs it holds the database file
and the command line runs each command through it (the worker must see the same file: run it on
the Centinela host). What to work on: Airflow Variables (or AIRFLOW_VAR_<NAME> in the
environment), see `setting()` below and deploy/airflow/README.md.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Connection, Variable, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

CONNECTION = "centinela_default"
DEFAULTS = {
    "centinela_bin": "centinela",  # the command (split like a shell line), e.g. /srv/centinela/.venv/bin/centinela
    "centinela_dataset": "",  # the dataset the nightly DAG labels, retrains and gates (required)
    "centinela_sources": "",  # comma-separated sources the hourly DAG syncs; empty: every source
    "centinela_chargebacks": "/srv/centinela/chargebacks/{ds}.csv",  # the night's label file ({ds}: the run's date)
    "centinela_backup_dir": "/backups",  # each night's backup: <dir>/centinela-<run's date and time>
    "centinela_gate_days": "7",  # the last labelled days held out of training and judged on
    "centinela_gate_metric": "average_precision",
    "centinela_timeout_minutes": "45",  # a command running longer is stopped and its task fails (inside the
    # tasks' own execution timeouts: 50 minutes for a sync, 2 hours for the nightly's)
}


def setting(name: str) -> str:
    """An Airflow Variable (AIRFLOW_VAR_<NAME> counts), else its default above."""
    return str(Variable.get(name, default=DEFAULTS[name]))


def centinela_env() -> dict[str, str]:
    """The worker's environment, with CENTINELA_URL, CENTINELA_API_KEY and CENTINELA_DB from the
    `centinela_default` Connection where it sets them."""
    env = dict(os.environ)
    try:
        conn = Connection.get(CONNECTION)
    except AirflowNotFoundException:
        return env
    if conn.host:
        scheme = conn.schema if conn.schema in ("http", "https") else "http"
        env["CENTINELA_URL"] = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
    if conn.password:
        env["CENTINELA_API_KEY"] = conn.password
    database = (conn.extra_dejson or {}).get("database")
    if database:
        env["CENTINELA_DB"] = str(database)
    return env


def centinela(*args: str, parse_json: bool = False) -> Any:
    """Run `centinela ARGS...`, its progress lines (stderr) and output in the task log; a non-zero
    exit fails the task with its message. With `parse_json`, the output read as JSON."""
    command = [*shlex.split(setting("centinela_bin")), *args]
    print("$ " + shlex.join(command), flush=True)
    done = subprocess.run(command, env=centinela_env(), capture_output=True, text=True, check=False,
                          timeout=float(setting("centinela_timeout_minutes")) * 60)
    for line in done.stderr.splitlines():
        print(line, flush=True)
    print(done.stdout.rstrip(), flush=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise RuntimeError(f"centinela {args[0]} exited with status {done.returncode}: {last}")
    return json.loads(done.stdout) if parse_json else done.stdout


def _when():
    """The run's logical date, or when it was started for a run triggered without one."""
    context = get_current_context()
    return context.get("logical_date") or context["dag_run"].run_after


def _run_day() -> str:
    return _when().strftime("%Y-%m-%d")


def _run_time() -> str:
    return _when().strftime("%Y%m%dT%H%M%S")


def _dataset() -> str:
    name = setting("centinela_dataset")
    if not name:
        raise ValueError("set the Airflow Variable centinela_dataset (or AIRFLOW_VAR_CENTINELA_DATASET)")
    return name


@dag(dag_id="centinela_sync", schedule="@hourly", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     max_active_runs=1, tags=["centinela"],
     default_args={"retries": 2, "retry_delay": timedelta(minutes=5), "execution_timeout": timedelta(minutes=50)},
     doc_md="New and changed rows from each PostgreSQL source into its dataset (`centinela sync`).")
def centinela_sync():
    @task
    def sources() -> list[str]:
        named = [s.strip() for s in setting("centinela_sources").split(",") if s.strip()]
        if named:
            return named
        return [s["name"] for s in centinela("source", "list", "--json", parse_json=True)]

    # One sync at a time: without a running server each command opens the database file itself,
    # and DuckDB has one writer (through the server they could overlap; one at a time either way).
    @task(map_index_template="{{ source }}", max_active_tis_per_dagrun=1)
    def sync(source: str) -> dict[str, Any]:
        get_current_context()["source"] = source
        return centinela("sync", source, "--json", parse_json=True)

    sync.expand(source=sources())


@dag(dag_id="centinela_nightly", schedule="30 2 * * *", start_date=pendulum.datetime(2026, 1, 1, tz="America/Lima"),
     catchup=False, max_active_runs=1, tags=["centinela"],
     default_args={"retries": 0, "execution_timeout": timedelta(hours=2)},
     doc_md="Chargeback labels, a new version, the evaluation gate, a backup.")
def centinela_nightly():
    @task
    def import_chargebacks() -> str:
        path = Path(setting("centinela_chargebacks").format(ds=_run_day()))
        if not path.is_file():
            raise AirflowSkipException(f"no chargeback file {path} tonight: no new labels, no retrain")
        return centinela("label", _dataset(), "--file", str(path), "--analyst", "chargebacks")

    @task
    def retrain() -> int:
        version = centinela("retrain", _dataset(), "--hold-out-days", setting("centinela_gate_days"), "--json",
                            parse_json=True)
        return int(version["version"])

    @task
    def gate(version: int) -> dict[str, Any]:
        decision = centinela("promote", _dataset(), str(version), "--if-better", "--days", setting("centinela_gate_days"),
                             "--metric", setting("centinela_gate_metric"), "--json", parse_json=True)
        print(f"{'PROMOTED' if decision['promoted'] else 'NOT PROMOTED'} version #{version}: {decision['reason']}",
              flush=True)
        return decision

    @task(trigger_rule="all_done")
    def backup() -> dict[str, Any]:
        folder = Path(setting("centinela_backup_dir")) / f"centinela-{_run_time()}"
        return centinela("backup", str(folder), "--json", parse_json=True)

    @task(trigger_rule="one_failed")
    def report_failure() -> None:
        """The run's state follows its last tasks; the backup runs whatever happened (all_done), so
        without this a failed import, retrain or gate would leave the night green."""
        raise AirflowFailException("a step of tonight's labels, retrain or gate failed: see its log")

    labels, version = import_chargebacks(), retrain()
    labels >> version  # no chargeback file: the retrain and the gate are skipped, the backup still runs
    decided = gate(version)
    decided >> backup()
    [labels, version, decided] >> report_failure()


centinela_sync()
centinela_nightly()
