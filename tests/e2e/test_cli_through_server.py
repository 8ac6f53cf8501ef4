"""The command line while a real server (started as `make run` starts it) holds the database: with
an `operate` key the commands run through the app, with the same output, exit status and effects,
audited as the key; without one they stop with status 3 and say how to get one."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from application import datasets as app_datasets
from application import keys as app_keys
from data.db import connect
from data.synthetic import SyntheticConfig
from tests.browser import admin_env, live_server
from tests.conftest import as_user, run_cli


@pytest.fixture
def held(tmp_path, monkeypatch):
    """A database with a dataset and keys, a copy of it for local runs, and a server holding it."""
    db = tmp_path / "centinela.duckdb"
    conn = connect(db)
    ctx = as_user(conn, "cli:setup")
    dataset = app_datasets.generate(ctx, "bank", SyntheticConfig(rows=3_000, seed=3, days=20)).dataset
    secrets = {"ops": app_keys.create(ctx, "ops", "operate").secret,
               "scorer": app_keys.create(ctx, "scorer", "score").secret,
               "narrow": app_keys.create(ctx, "narrow", "operate", "bank").secret}
    ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} ORDER BY tx_row LIMIT 3").fetchall()]
    conn.close()
    local = tmp_path / "local" / "centinela.duckdb"
    local.parent.mkdir()
    shutil.copy(db, local)
    labels = tmp_path / "labels.csv"
    labels.write_text("transaction_id,label\n" + "".join(f"{i},fraud\n" for i in ids))
    with live_server(db, env=admin_env()) as (url, server):
        urllib.request.urlopen(f"{url}/api/v1/health", timeout=30).read()  # the server opens (holds) the file
        monkeypatch.setenv("CENTINELA_URL", url)
        monkeypatch.delenv("CENTINELA_API_KEY", raising=False)
        yield db, local, secrets, labels, ids, server


def test_without_an_operate_key_the_command_stops_and_says_how(held, monkeypatch):
    db, _, secrets, _, _, _ = held
    result = run_cli("datasets", db=db)
    assert result.returncode == 3
    assert "CENTINELA_API_KEY" in result.stderr and "'operate' scope" in result.stderr
    monkeypatch.setenv("CENTINELA_API_KEY", secrets["scorer"])
    result = run_cli("datasets", db=db)
    assert result.returncode == 2 and "lacks the 'operate' scope" in result.stderr
    monkeypatch.setenv("CENTINELA_API_KEY", secrets["narrow"])
    result = run_cli("datasets", db=db)
    assert result.returncode == 2 and "is for one dataset" in result.stderr


def test_label_fit_and_users_add_run_through_the_app_and_are_audited(held, monkeypatch, tmp_path):
    db, local, secrets, labels, ids, server = held
    monkeypatch.setenv("CENTINELA_API_KEY", secrets["ops"])
    bad = tmp_path / "bad.csv"
    bad.write_text("transaction_id,label\nNO-SUCH-ID,fraud\n")
    through = run_cli("label", "bank", "--file", str(bad), db=db)
    alone = run_cli("label", "bank", "--file", str(bad), db=local)  # the same command where nothing holds the file
    assert through.returncode == alone.returncode == 2
    assert through.stderr == alone.stderr and "NO-SUCH-ID" in through.stderr

    labelled = run_cli("label", "bank", "--file", str(labels), db=db)
    assert labelled.returncode == 0, labelled.stderr
    assert labelled.stdout == run_cli("label", "bank", "--file", str(labels), db=local).stdout
    fitted = run_cli("fit", "bank", "--detector", "isolation_forest", db=db)
    assert fitted.returncode == 0, fitted.stderr
    assert "%]" in fitted.stderr  # progress lines arrive as the server works
    added = run_cli("users", "add", "carla", "--role", "analyst", "--password-stdin", db=db,
                    stdin="a long password for carla\n")
    assert added.returncode == 0, added.stderr
    listed = json.loads(run_cli("users", "list", "--json", db=db, check=True).stdout)
    assert any(u["username"] == "carla" and u["role"] == "analyst" for u in listed)
    assert run_cli("datasets", "--nope", db=db).returncode == 2  # a usage error, worded by argparse

    server.terminate()  # stopped as an operator stops it: what it committed is in the file
    server.wait(timeout=30)
    conn = connect(db)
    actions = {r[0] for r in conn.execute("SELECT action FROM audit WHERE actor = 'api:ops'").fetchall()}
    assert {"label", "fit", "user_add"} <= actions
    assert conn.execute("SELECT count(*) FROM current_labels WHERE label = 'fraud'").fetchall()[0][0] == len(ids)
    assert conn.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 1
    conn.close()
