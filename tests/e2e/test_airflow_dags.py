"""The DAGs in deploy/airflow, run by Apache Airflow's own `airflow dags test` (Airflow 3, in its
own virtual environment, .venv-airflow: `make airflow-venv`, which `make test` runs), against a
real Centinela database and a real PostgreSQL source (tests/postgres.py), on loopback only.

The hourly DAG syncs the source; the nightly DAG runs twice: first with the database file free
(each task runs `centinela` on it: labels in, a version trained on labels before the last
labelled week, promoted by the gate because it beats the detector run on that week, a backup),
then while the server holds the file (the `centinela_default` Airflow Connection names it and an
`operate` key: every command runs through the server and is audited as the key). Airflow's
metadata database is SQLite in a temporary AIRFLOW_HOME; its task logs are what `dags test` prints.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from application import datasets as app_datasets
from application import keys as app_keys
from application import runs as app_runs
from data import backup as backup_store
from data.db import connect
from data.synthetic import SyntheticConfig
from detectors.runs import default_split
from tests import postgres
from tests.browser import admin_env, live_server
from tests.conftest import ROOT, as_user, run_cli

AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
CENTINELA = ROOT / ".venv" / "bin" / "centinela"
DAGS = ROOT / "deploy" / "airflow"
KEY_NAME = "airflow"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not AIRFLOW.exists(), reason="Airflow's virtual environment is missing: make airflow-venv"),
    pytest.mark.skipif(not postgres.available(), reason="PostgreSQL is not installed: make postgres"),
]


def airflow(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`airflow ARGS...` in its own environment; the output (task logs included) in the result."""
    started = time.perf_counter()
    done = subprocess.run([str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=env["AIRFLOW_HOME"])
    print(f"airflow {' '.join(args)}: exit {done.returncode} in {time.perf_counter() - started:.0f} s")
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    return done


def returned(log: str, task_id: str) -> str:
    """The line of the task log where `task_id` returned (Airflow logs the value it pushes to XCom)."""
    start = log.index(f"[DAG TEST] starting task_id={task_id} ")
    end = log.index(f"[DAG TEST] end task task_id={task_id} ", start)
    return log[start:end]


def chargebacks(db: Path, path: Path, since: str, until: str) -> int:
    """A night's chargeback file: every transaction in [since, until) with its true label (the
    generator's), as a card issuer would report them; returns its rows."""
    conn = duckdb.connect(str(db), read_only=True)
    try:
        rows = conn.execute("SELECT transaction_id, CASE WHEN is_fraud THEN 'fraud' ELSE 'legitimate' END FROM tx_1 "
                            "WHERE ts >= CAST(? AS TIMESTAMP) AND ts < CAST(? AS TIMESTAMP) ORDER BY ts",
                            [since, until]).fetchall()
    finally:
        conn.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["transaction_id", "label", "note"])
        out.writerows([*r, "chargeback"] for r in rows)
    return len(rows)


@pytest.fixture
def pg():
    with postgres.cluster() as found:
        yield found


def test_the_hourly_and_nightly_dags_sync_label_retrain_gate_and_back_up(pg, tmp_path, monkeypatch):
    started = time.perf_counter()
    db = tmp_path / "centinela.duckdb"
    conn = connect(db)
    ctx = as_user(conn, "cli:setup")
    bank = app_datasets.generate(ctx, "bank", SyntheticConfig(rows=5_000, seed=7, fraud_rate=0.02, days=30)).dataset
    assert bank.table == '"tx_1"'  # what `chargebacks` reads
    detector = app_runs.fit(ctx, bank, ["isolation_forest"], train_until=default_split(bank))
    key = app_keys.create(ctx, KEY_NAME, "operate").secret
    conn.close()

    # A PostgreSQL source (the card system's table); the password only in the worker's environment.
    monkeypatch.setenv("CENTINELA_PG_PASSWORD", postgres.READER_PASSWORD)
    pg.execute("CREATE TABLE card_tx (tx_id text PRIMARY KEY, created_at timestamptz NOT NULL, amount numeric(12,2), "
               "customer_id text NOT NULL, merchant_id text NOT NULL, updated_at timestamptz NOT NULL)",
               "INSERT INTO card_tx SELECT 'T' || g, timestamptz '2026-11-01 05:00+00' + g * interval '1 minute', "
               "g % 500 + 1, 'C' || (g % 97), 'M' || (g % 13), timestamptz '2026-11-01 05:00+00' + g * interval '1 minute' "
               "FROM generate_series(1, 1500) g")
    added = run_cli("source", "add", "core", "--url",
                    f"postgresql://reader:${{CENTINELA_PG_PASSWORD}}@127.0.0.1:{pg.port}/core", "--table", "card_tx",
                    "--watermark", "updated_at", "--map", "timestamp=created_at", db=db)
    assert added.returncode == 0, added.stderr

    home = tmp_path / "airflow"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CENTINELA_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        # The Variables the DAGs read, as a deployment would set them (here through the environment).
        "AIRFLOW_VAR_CENTINELA_BIN": f"env PYTHONPATH={ROOT} {CENTINELA}",
        "AIRFLOW_VAR_CENTINELA_DATASET": "bank",
        "AIRFLOW_VAR_CENTINELA_CHARGEBACKS": str(tmp_path / "chargebacks" / "{ds}.csv"),
        "AIRFLOW_VAR_CENTINELA_BACKUP_DIR": str(tmp_path / "backups"),
        "AIRFLOW_VAR_CENTINELA_TIMEOUT_MINUTES": "3",
        "CENTINELA_DB": str(db),
        "CENTINELA_PG_PASSWORD": postgres.READER_PASSWORD,
    })
    airflow(env, "db", "migrate")

    # Hourly: every source `centinela source list` names, one mapped task each.
    log = airflow(env, "dags", "test", "centinela_sync", "2026-12-01T10:00:00").stdout
    assert re.search(r"\$ env PYTHONPATH=\S+ \S+/centinela sync core --json", log), log[-3000:]
    synced = returned(log, "sync")
    assert '"new": 1500' in synced and "Done. Returned value was" in synced
    conn = duckdb.connect(str(db), read_only=True)
    assert conn.execute("SELECT row_count FROM datasets WHERE name = 'core'").fetchall() == [(1500,)]
    conn.close()

    # Nightly, the database file free: the commands open it themselves.
    sent = chargebacks(db, tmp_path / "chargebacks" / "2026-09-01.csv", "2026-08-20", "2026-08-27")
    log = airflow(env, "dags", "test", "centinela_nightly", "2026-09-01").stdout
    assert f"added {sent:,} labels to 'bank'" in returned(log, "import_chargebacks")
    trained = returned(log, "retrain")
    assert "retrain bank --hold-out-days 7 --json" in trained
    decided = returned(log, "gate")
    assert "promote bank" in decided and "--if-better --days 7 --metric average_precision --json" in decided
    assert re.search(r"PROMOTED version #(\d+): #\1 is better: average_precision", decided), decided[-3000:]
    first = int(re.search(r"PROMOTED version #(\d+)", decided).group(1))
    first_backup = tmp_path / "backups" / "centinela-20260901T000000"
    assert f"backup {first_backup} --json" in returned(log, "backup")

    conn = duckdb.connect(str(db), read_only=True)
    assert conn.execute("SELECT count(*) FROM labels WHERE analyst = 'chargebacks'").fetchall() == [(sent,)]
    kind, train_until, newest = conn.execute("SELECT kind, train_until, (SELECT max(ts) FROM tx_1) FROM runs WHERE id = ?",
                                             [first]).fetchall()[0]
    assert kind == "supervised" and (newest - train_until).days == 7  # the week the gate judges on, held out
    assert conn.execute("SELECT run_id FROM active_runs WHERE dataset_id = 1").fetchall() == [(first,)]
    gate = json.loads(conn.execute("SELECT after_value FROM audit WHERE action = 'promote' ORDER BY id DESC LIMIT 1")
                      .fetchall()[0][0])["gate"]
    assert gate["candidate"] > gate["active"] and gate["judged_on"]["fraud"] >= 5
    assert gate["judged_on"]["from"].startswith(str(train_until)[:10])
    audited = conn.execute("SELECT max(id) FROM audit").fetchall()[0][0]
    conn.close()
    manifest = backup_store.verify(first_backup)  # the copy's row counts and every model file's SHA-256
    assert manifest.tables["labels"] == sent and f"run-1-{first}.joblib" in manifest.models

    # Nightly again, while the server holds the file: the Connection gives the address, the key and the file.
    more = chargebacks(db, tmp_path / "chargebacks" / "2026-09-02.csv", "2026-08-27", "2026-08-29")
    with live_server(db, env=admin_env()) as (url, server):
        port = int(url.rsplit(":", 1)[1])
        served = {k: v for k, v in env.items() if k != "CENTINELA_DB"}
        served["AIRFLOW_CONN_CENTINELA_DEFAULT"] = json.dumps({
            "conn_type": "http", "host": "127.0.0.1", "port": port, "password": key, "extra": {"database": str(db)}})
        log = airflow(served, "dags", "test", "centinela_nightly", "2026-09-02").stdout
        server.terminate()
        server.wait(timeout=30)
    assert key not in log  # the operate key goes to the command's environment, never to the task log
    assert f"added {more:,} labels to 'bank'" in returned(log, "import_chargebacks")
    decision = re.search(r"^(NOT PROMOTED|PROMOTED) version #(\d+): (.*)$", returned(log, "gate"), re.M)
    assert decision, returned(log, "gate")[-3000:]
    second = int(decision.group(2))
    conn = duckdb.connect(str(db), read_only=True)
    actors = conn.execute("SELECT action, actor FROM audit WHERE id > ? AND action IN ('label', 'retrain', 'promote', "
                          "'promote_refused', 'backup') ORDER BY id", [audited]).fetchall()
    assert conn.execute("SELECT count(*) FROM labels WHERE analyst = 'chargebacks'").fetchall() == [(sent + more,)]
    assert second > first and conn.execute("SELECT kind FROM runs WHERE id = ?", [second]).fetchall() == [("supervised",)]
    gate_row = conn.execute("SELECT action, after_value FROM audit WHERE target = ? AND action LIKE 'promote%'",
                            [f"run #{second}"]).fetchall()
    active = conn.execute("SELECT run_id FROM active_runs WHERE dataset_id = 1").fetchall()[0][0]
    conn.close()
    [(action, after)] = gate_row
    compared = json.loads(after)["gate"]
    # The same labels as last night (the new ones agree with the label column) train the same model:
    # whatever the gate decided, it is what its comparison says, and the queue follows it.
    better = compared["candidate"] > compared["active"]
    assert (decision.group(1) == "PROMOTED") == better == (action == "promote") == (active == second)
    if not better:
        assert active == first and "is not better" in decision.group(3)
    assert actors == [(a, f"api:{KEY_NAME}") for a in ("label", "retrain", action, "backup")]  # through the server
    backups = sorted((tmp_path / "backups").iterdir())
    assert [b.name for b in backups] == ["centinela-20260901T000000", "centinela-20260902T000000"]
    assert backup_store.verify(backups[1]).tables["labels"] == sent + more
    assert detector.id < first
    print(f"the Airflow test took {time.perf_counter() - started:.0f} s")
