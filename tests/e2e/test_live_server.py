"""The live-scoring server end to end, started as `make run` starts it (`uvicorn serve:app`):
pages and API on one port, keys from the command line, `centinela replay` streaming a file into
it, and a SIGKILL in the middle of a replay that loses no answered batch and half-stores none."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from cli.replay import Client, items, read_transactions
from data.datasets import get_dataset
from data.db import connect
from tests.browser import live_server
from tests.conftest import run_cli
from tests.live import DATASET, prepare


def _get(url: str, key: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live-server")
    db = folder / "centinela.duckdb"
    conn = connect(db)
    setup = prepare(conn, folder, rows=5_000, days=30, live_days=5)
    conn.close()
    return db, setup


def test_keys_from_the_command_line(prepared):
    db, _ = prepared
    plain = run_cli("keys", "create", "terminal-7", "--scope", "score", "--dataset", DATASET, db=db, check=True)
    assert plain.stdout.strip().splitlines()[-1].startswith("cent_")
    created = json.loads(run_cli("keys", "create", "replayer", "--scope", "score,read", "--json", db=db,
                                 check=True).stdout)
    assert created["name"] == "replayer" and created["key"].startswith("cent_")
    listed = json.loads(run_cli("keys", "list", "--json", db=db, check=True).stdout)
    assert {"terminal-7", "replayer"} <= {k["name"] for k in listed}
    assert not any(created["key"] in json.dumps(k) for k in listed)
    run_cli("keys", "revoke", "terminal-7", db=db, check=True)
    states = {k["name"]: k["state"] for k in json.loads(run_cli("keys", "list", "--json", db=db, check=True).stdout)}
    assert states["terminal-7"] == "revoked"
    bad = run_cli("keys", "create", "x", "--scope", "write", db=db)
    assert bad.returncode == 2 and "unknown scope 'write'" in bad.stderr


def test_one_server_serves_pages_api_docs_metrics_and_takes_a_replay(prepared):
    db, setup = prepared
    with live_server(db) as (url, _):
        status, page = _get(url + "/")
        assert status == 200 and b"<html" in page.lower()
        status, body = _get(url + "/api/v1/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert _get(url + "/api/docs")[0] == 200
        assert _get(url + "/api/openapi.json")[0] == 200
        # The command line cannot open the database the server holds: exit status 3.
        assert run_cli("keys", "list", db=db).returncode == 3
        replayed = run_cli("replay", str(setup.live_file), "--dataset", DATASET, "--url", url, "--key",
                           setup.keys["scorer"], "--limit", "300", "--batch", "50", "--rate", "3000", "--json",
                           "--max-seconds", "120", db=db)
        assert replayed.returncode == 0, replayed.stderr
        summary = json.loads(replayed.stdout)
        assert summary["sent"] == 300 and summary["stored"] == 300 and summary["failed_requests"] == 0
        assert summary["latency_ms"]["p50"] is not None
        first = items(read_transactions(str(setup.live_file), 1))[0]["transaction_id"]
        status, body = _get(f"{url}/api/v1/datasets/{DATASET}/transactions/{first}", setup.keys["scorer"])
        assert status == 200 and json.loads(body)["decision"]["api_key"] == "api:scorer"
        status, metrics = _get(url + "/metrics")
        assert status == 200 and b'centinela_transactions_scored_total{dataset="bank"} 300.0' in metrics
        # A retried replay stores nothing twice.
        again = json.loads(run_cli("replay", str(setup.live_file), "--dataset", DATASET, "--url", url, "--key",
                                   setup.keys["scorer"], "--limit", "300", "--batch", "100", "--json", db=db).stdout)
        assert again["stored"] == 0 and again["retried"] == 300


def test_sigkill_during_a_replay_loses_no_answered_batch_and_half_stores_none(prepared):
    db, setup = prepared
    rows = items(read_transactions(str(setup.live_file)))[300:]
    size = 40
    batches = [rows[i:i + size] for i in range(0, len(rows), size)][:60]
    answered: list[int] = []
    with live_server(db) as (url, process):
        client = Client(url, setup.keys["scorer"], timeout=30)

        def send() -> None:
            for i, batch in enumerate(batches):
                try:
                    status, _ = client.post(f"/api/v1/datasets/{DATASET}/transactions", {"transactions": batch})
                except OSError:
                    return
                if status == 200:
                    answered.append(i)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = time.monotonic() + 120
        while len(answered) < 8 and time.monotonic() < deadline and sender.is_alive():
            time.sleep(0.01)
        assert len(answered) >= 8, "the server answered too few batches before the kill"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        sender.join(timeout=60)
        client.close()
    assert len(answered) < len(batches), "the replay finished before the kill: send more batches"

    conn = connect(db)  # as the restarted server opens it
    try:
        table = get_dataset(conn, DATASET).table
        for i, batch in enumerate(batches):
            ids = [r["transaction_id"] for r in batch]
            stored, decided = conn.execute(
                f"SELECT (SELECT count(*) FROM {table} WHERE transaction_id IN (SELECT unnest(CAST($ids AS VARCHAR[])))), "
                "(SELECT count(*) FROM decisions WHERE transaction_id IN (SELECT unnest(CAST($ids AS VARCHAR[]))))",
                {"ids": ids}).fetchall()[0]
            if i in answered:
                assert stored == decided == len(ids), f"answered batch {i} is not fully stored"
            else:
                assert stored == decided and stored in (0, len(ids)), f"batch {i} is half stored ({stored}/{len(ids)})"
    finally:
        conn.close()
    with live_server(db) as (url, _):  # and the restarted server is healthy
        assert json.loads(_get(url + "/api/v1/health")[1])["status"] == "ok"
