"""Kafka end to end against a real Kafka-protocol broker (tansu) on loopback: 5,000 messages
(20 malformed, 50 retried ids) consumed by the server `make run` starts, which is killed with
SIGKILL part-way and started again. Every valid transaction is stored once with its decision,
every decision is on the decisions topic, the malformed ones are on the dead-letter topic with
their reasons, and /metrics counts them."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest

from cli.replay import items, read_transactions
from data.datasets import get_dataset
from data.db import connect
from tests.browser import live_server, wait_until
from tests.conftest import run_cli
from tests.kafka import broker, create_topics, produce, read_topic
from tests.live import DATASET, prepare

pytestmark = pytest.mark.slow
TOPIC, DECISIONS, DEAD = "card-tx", "card-decisions", "card-tx.dead-letter"


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def _series(url: str, name: str) -> list[float]:
    """Every value of metric `name` (one per label set); empty when it has none."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]


def _malformed(valid: list[dict]) -> list[bytes | None]:
    """Twenty messages the checks must refuse, each for its own reason."""
    base = dict(valid[0])
    other = dict(valid[1], amount=float(valid[1]["amount"]) + 1)  # an id already stored with other values
    as_json = [dict(base, transaction_id="bad-amount-text", amount="lots"),
               dict(base, transaction_id="bad-amount-huge", amount=1e15),
               dict(base, transaction_id="bad-time", timestamp="yesterday"),
               dict(base, transaction_id="bad-year", timestamp="1066-10-14T09:00:00"),
               dict(base, transaction_id="bad-field", favourite_colour="red"),
               {k: v for k, v in dict(base, transaction_id="no-amount").items() if k != "amount"},
               {k: v for k, v in base.items() if k != "transaction_id"},
               dict(base, transaction_id="bad-control\x07"),
               dict(base, transaction_id=12345),
               dict(base, transaction_id="bad-bool-amount", amount=True),
               other, dict(other, amount=float(other["amount"]) + 2)]
    raw = [b"{not json", b"\xff\xfe\x00 not utf-8", b"[1, 2, 3]", b'"a string"', b"{}", None,
           b"{" * 5000 + b"}" * 5000, b'{"transaction_id": "nan-amount", "amount": NaN}']
    return [json.dumps(m).encode() for m in as_json] + raw


def test_consumer_killed_and_restarted_stores_everything_once(tmp_path):
    conn = connect(tmp_path / "centinela.duckdb")
    setup = prepare(conn, tmp_path, rows=16_000, days=30, live_days=10)
    conn.close()
    db = tmp_path / "centinela.duckdb"
    valid = items(read_transactions(str(setup.live_file)))[:4_930]
    assert len(valid) == 4_930, "generate more held-back rows"
    malformed = _malformed(valid)
    assert len(malformed) == 20
    # In time order, with every 100th of the first 5,000 sent again 40 messages later (a producer's retry).
    marked: list[tuple[bool, bytes | None]] = [(False, json.dumps(v).encode()) for v in valid]
    for n, i in enumerate(range(0, 5_000, 100)):
        marked.insert(min(i + 40 + n, len(marked)), (False, json.dumps(valid[i]).encode()))
    for n, bad in enumerate(malformed):
        marked.insert(120 + 240 * n, (True, bad))
    assert len(marked) == 5_000
    bad_positions = {i for i, (bad, _) in enumerate(marked) if bad}
    messages = [m for _, m in marked]
    first, second = messages[:2_500], messages[2_500:]

    with broker(tmp_path) as bootstrap:
        create_topics(bootstrap, TOPIC, DECISIONS, DEAD)
        configured = run_cli("consume", DATASET, "--bootstrap", bootstrap, "--topic", TOPIC, "--decisions-topic",
                             DECISIONS, db=db)
        assert configured.returncode == 0, configured.stderr
        listed = json.loads(run_cli("consume", "--list", "--json", db=db, check=True).stdout)
        assert listed[0]["topic"] == TOPIC and listed[0]["dead_letter_topic"] == DEAD and listed[0]["enabled"]
        produce(bootstrap, TOPIC, first)

        with live_server(db) as (url, process):
            wait_until(lambda: _metric(url, "centinela_kafka_messages_consumed_total") >= 500, 120, "500 consumed")
            at_kill = _metric(url, "centinela_kafka_messages_consumed_total")
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        assert at_kill < len(first), "the first half was consumed before the kill: it did not land part-way"
        produce(bootstrap, TOPIC, second)  # while no consumer runs

        last = valid[-1]["transaction_id"]
        with live_server(db) as (url, _):
            def done() -> bool:
                request = urllib.request.Request(f"{url}/api/v1/datasets/{DATASET}/transactions/{last}",
                                                 headers={"Authorization": f"Bearer {setup.keys['scorer']}"})
                try:
                    with urllib.request.urlopen(request, timeout=10):
                        return True
                except urllib.error.HTTPError:
                    return False

            wait_until(done, 180, "the last transaction to be stored")
            wait_until(lambda: _series(url, "centinela_kafka_consumer_lag") == [0.0], 30, "the lag to be measured at 0")
            # After the restart at least the second half (produced while it was down) was read again.
            consumed = _metric(url, "centinela_kafka_messages_consumed_total")
            assert consumed >= len(second) and consumed + at_kill >= len(messages)
            assert _metric(url, "centinela_kafka_messages_dead_lettered_total") >= sum(
                1 for p in bad_positions if p >= len(first))
            assert _metric(url, "centinela_kafka_decisions_published_total") == consumed - _metric(
                url, "centinela_kafka_messages_dead_lettered_total")
        decisions = read_topic(bootstrap, DECISIONS, len(valid) + 50)
        dead = read_topic(bootstrap, DEAD, 20)

    conn = connect(db)
    try:
        table = get_dataset(conn, DATASET).table
        ids = [v["transaction_id"] for v in valid]
        stored = dict(conn.execute(
            f"SELECT transaction_id, count(*) FROM {table} WHERE transaction_id IN (SELECT unnest(CAST($ids AS VARCHAR[])))"
            " GROUP BY ALL", {"ids": ids}).fetchall())
        assert len(stored) == len(ids) and set(stored.values()) == {1}, "a valid transaction is missing or stored twice"
        scores = dict(conn.execute(
            "SELECT transaction_id, score FROM decisions WHERE transaction_id IN (SELECT unnest(CAST($ids AS VARCHAR[])))",
            {"ids": ids}).fetchall())
        assert len(scores) == len(ids)
        arrived = {r[0] for r in conn.execute("SELECT DISTINCT api_key FROM decisions").fetchall()}
        assert arrived == {f"kafka:{TOPIC}"}
        bad_ids = {"bad-amount-text", "bad-amount-huge", "bad-time", "bad-year", "bad-field", "no-amount",
                   "bad-bool-amount", "nan-amount"}
        assert not conn.execute(f"SELECT count(*) FROM {table} WHERE transaction_id IN "
                                "(SELECT unnest(CAST($ids AS VARCHAR[])))", {"ids": list(bad_ids)}).fetchall()[0][0]
        audited = conn.execute("SELECT count(*) FROM audit WHERE action = 'kafka_consumer_set'").fetchall()[0][0]
        assert audited == 1
        scored = conn.execute("SELECT sum(CAST(after_value->>'stored' AS BIGINT)) FROM audit WHERE action = 'score' "
                              "AND actor = ?", [f"kafka:{TOPIC}"]).fetchall()[0][0]
        assert scored == len(ids), "every stored transaction is in a score row of the audit trail, once"
    finally:
        conn.close()

    published = {}
    for d in decisions:
        published.setdefault(d["transaction_id"], d)
    assert set(ids) <= set(published), f"{len(set(ids) - set(published))} decisions were never published"
    assert all(abs(published[tx]["score"] - scores[tx]) < 1e-12 for tx in ids)
    assert all(d["dataset"] == DATASET for d in decisions)

    offsets = {d["offset"] for d in dead}
    assert offsets == bad_positions, f"dead letters at {sorted(offsets ^ bad_positions)} differ"
    assert all(d["reason"] and d["topic"] == TOPIC for d in dead)
    reasons = {d["offset"]: (d["field"], d["reason"]) for d in dead}
    assert any("not valid JSON" in r for _, r in reasons.values())
    assert any(f == "amount" for f, _ in reasons.values())
    assert sum("is already stored with another amount" in r for _, r in reasons.values()) == 2, reasons


def test_a_consumer_set_changed_and_stopped_while_the_server_runs(tmp_path, monkeypatch):
    """The supervisor in this process, as the server runs it: a consumer starts when set, is
    replaced when its settings change (decisions go to the new topic), stops when stopped, and the
    supervisor itself stops cleanly."""
    from application import streams
    from application.context import Context
    from data.db import thread_cursor
    from integrations import kafka

    monkeypatch.setenv("CENTINELA_DB", str(tmp_path / "centinela.duckdb"))
    conn = thread_cursor()
    setup = prepare(conn, tmp_path, rows=3_000, days=20, live_days=4)
    rows = items(read_transactions(str(setup.live_file)))
    ctx = Context(conn, "cli:ops")
    with broker(tmp_path) as bootstrap:
        create_topics(bootstrap, TOPIC, "first-decisions", "second-decisions", DEAD)
        streams.configure_consumer(ctx, DATASET, bootstrap, TOPIC, decisions_topic="first-decisions")
        supervisor = kafka.Supervisor(str(tmp_path / "centinela.duckdb"))
        supervisor.reconcile()
        produce(bootstrap, TOPIC, [json.dumps(r).encode() for r in rows[:20]])
        assert len(read_topic(bootstrap, "first-decisions", 20)) == 20
        (worker,) = supervisor.workers.values()
        streams.configure_consumer(ctx, DATASET, bootstrap, TOPIC, decisions_topic="second-decisions")
        supervisor.reconcile()
        (replacement,) = supervisor.workers.values()
        assert replacement is not worker and not worker.is_alive()
        produce(bootstrap, TOPIC, [json.dumps(r).encode() for r in rows[20:30]])
        second = read_topic(bootstrap, "second-decisions", 10)
        assert [d["transaction_id"] for d in second] == [r["transaction_id"] for r in rows[20:30]]
        assert set(second[0]) >= {"dataset", "transaction_id", "score", "alert", "threshold", "model", "reasons"}
        assert "tx_row" not in second[0] and "T" in second[0]["received_at"]
        streams.stop_consumer(ctx, DATASET)
        supervisor.reconcile()
        assert not supervisor.workers and not replacement.is_alive()
        supervisor.start()
        supervisor.stop()
        supervisor.join(timeout=30)
        assert not supervisor.is_alive()
