"""Webhooks end to end: the server `make run` starts delivers its events to a real HTTP receiver
on loopback. The receiver is down at first (the events wait, their attempts logged), the server
is killed with SIGKILL, the receiver comes up, the server starts again: every event arrives,
signed, exactly once, and nothing more is sent after."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest

from cli.replay import items, read_transactions
from data.db import connect
from tests.browser import free_port, live_server, wait_until
from tests.conftest import run_cli
from tests.live import DATASET, prepare
from tests.webhooks import receiver, verified

pytestmark = pytest.mark.slow


def _post(url: str, key: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _log(db) -> list[dict]:
    return json.loads(run_cli("webhooks", "log", "--json", "--limit", "10000", db=db, check=True).stdout)


def test_events_wait_for_a_receiver_that_is_down_survive_a_kill_and_arrive_once(tmp_path, monkeypatch):
    db = tmp_path / "centinela.duckdb"
    conn = connect(db)
    setup = prepare(conn, tmp_path, rows=5_000, days=30, live_days=5)
    conn.close()
    rows = items(read_transactions(str(setup.live_file)))[:300]
    port = free_port()  # nothing listens here until the receiver starts
    env = {"CENTINELA_WEBHOOK_RETRY_S": "0.5"}
    added = run_cli("webhooks", "add", "fraud-desk", "--url", f"http://127.0.0.1:{port}/hooks/centinela",
                    "--events", "alert.raised,label.added", "--dataset", DATASET, db=db, check=True)
    secret = added.stdout.strip().splitlines()[-1]
    operator = json.loads(run_cli("keys", "create", "ops", "--scope", "operate", "--json", db=db, check=True).stdout)
    monkeypatch.setenv("CENTINELA_API_KEY", operator["key"])  # the commands below run through the server
    with live_server(db, env=env) as (url, process):
        monkeypatch.setenv("CENTINELA_URL", url)
        decisions = _post(f"{url}/api/v1/datasets/{DATASET}/transactions", setup.keys["all"],
                          {"transactions": rows})["decisions"]
        alerted = {d["transaction_id"] for d in decisions if d["alert"]}
        assert alerted, "the batch should raise alerts (send more rows)"
        labelled = sorted(alerted)[:3]
        _post(f"{url}/api/v1/datasets/{DATASET}/labels", setup.keys["all"],
              {"transaction_ids": labelled, "label": "fraud", "note": "chargeback"})
        expected = len(alerted) + 1
        wait_until(lambda: any(d["attempts"] >= 2 for d in _log(db)), 30, "failed attempts in the delivery log")
        log = _log(db)
        assert len(log) == expected and {d["state"] for d in log} <= {"pending", "retrying"}
        assert all("Connect" in d["error"] for d in log if d["attempts"])
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    with receiver(port) as hooks, live_server(db, env=env) as (url, _):
        monkeypatch.setenv("CENTINELA_URL", url)
        wait_until(lambda: len(hooks.requests) >= expected, 60, f"{expected} events at the receiver")
        time.sleep(2)  # and nothing more after them
        assert len(hooks.requests) == expected
        assert all(verified(secret, r, tolerance=120, now=int(time.time())) for r in hooks.requests)
        events = hooks.events()
        assert len({e["id"] for e in events}) == expected
        assert {e["data"]["transaction_id"] for e in events if e["type"] == "alert.raised"} == alerted
        (label_event,) = [e for e in events if e["type"] == "label.added"]
        assert label_event["data"]["transaction_ids"] == labelled and label_event["data"]["label"] == "fraud"
        assert {d["state"] for d in _log(db)} == {"delivered"}
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert f'centinela_webhook_attempts_total{{result="delivered",webhook="fraud-desk"}} {float(expected)}' in metrics
