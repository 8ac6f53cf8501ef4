"""Outbound webhooks on a real DuckDB file, delivered by the server's dispatcher to a real HTTP
receiver on loopback: events written with the change they report (and only then), signed,
retried with back-off while the receiver is down or failing, delivered once, and logged."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from application import cases, labels, live, models, users
from application import datasets as app_datasets
from application import runs as app_runs
from application import webhooks as app_webhooks
from application.context import Context
from cli.replay import items, read_transactions
from data import webhooks as store
from data.errors import Conflict, Forbidden, InvalidInput, NotFound
from data.synthetic import SyntheticConfig
from detectors.base import DEFAULT_DETECTOR
from integrations import webhooks as dispatch
from tests.conftest import digest, run_cli
from tests.live import DATASET, prepare
from tests.webhooks import receiver, verified


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("webhooks")
    from data.db import connect

    path = folder / "centinela.duckdb"
    conn = connect(path)
    live_setup = prepare(conn, folder, rows=3_000, days=20, live_days=4)
    yield conn, str(path), items(read_transactions(str(live_setup.live_file)))
    conn.close()


@pytest.fixture
def ctx(setup):
    conn = setup[0]
    context = Context(conn, "cli:test")
    yield context
    for hook in app_webhooks.list_webhooks(context):  # each test registers its own
        app_webhooks.remove_webhook(context, hook.name)


@pytest.fixture
def dispatcher(setup, monkeypatch):
    monkeypatch.setattr(dispatch, "RETRY_SECONDS", 0.2)
    found = dispatch.Dispatcher(setup[1])
    with ThreadPoolExecutor(dispatch.PARALLEL) as pool:
        found.pool = pool
        yield found
    found.client.close()


def _run(dispatcher, rounds: int = 1) -> int:
    return sum(dispatcher.deliver_due(dispatcher.pool) for _ in range(rounds))


def _ids(ctx, n: int, offset: int = 0) -> list[str]:
    table = ctx.dataset(DATASET).table
    return [r[0] for r in ctx.conn.execute(f"SELECT transaction_id FROM {table} ORDER BY tx_row LIMIT ? OFFSET ?",
                                           [n, offset]).fetchall()]


def test_registration_is_checked_and_the_secret_is_shown_once(ctx):
    with pytest.raises(InvalidInput) as bad:
        app_webhooks.add_webhook(ctx, "ops", "ftp://example.org/x", ["label.added"])
    assert bad.value.field == "url"
    with pytest.raises(InvalidInput) as bad:
        app_webhooks.add_webhook(ctx, "ops", "https://u:p@example.org/x", ["label.added"])
    assert bad.value.field == "url"
    with pytest.raises(InvalidInput) as bad:
        app_webhooks.add_webhook(ctx, "ops", "https://example.org/x", "label.added,alert.cleared")
    assert bad.value.field == "events" and "alert.cleared" in str(bad.value)
    with pytest.raises(InvalidInput) as bad:
        app_webhooks.add_webhook(ctx, "no spaces", "https://example.org/x", ["label.added"])
    assert bad.value.field == "name"
    with pytest.raises(NotFound):
        app_webhooks.add_webhook(ctx, "ops", "https://example.org/x", ["label.added"], dataset="nowhere")
    before = digest(ctx.conn)
    added = app_webhooks.add_webhook(ctx, "ops", "https://example.org/x", "label.added, case.changed", dataset=DATASET)
    assert len(added.secret) == 64 and added.webhook.events == ("label.added", "case.changed")
    assert added.webhook.dataset == DATASET and added.webhook.enabled
    with pytest.raises(Conflict):
        app_webhooks.add_webhook(ctx, "ops", "https://example.org/y", ["label.added"])
    audit = ctx.conn.execute("SELECT action, after_value FROM audit WHERE action = 'webhook_add' "
                             "ORDER BY id DESC LIMIT 1").fetchall()[0]
    assert added.secret not in audit[1] and json.loads(audit[1])["url"] == "https://example.org/x"
    assert added.secret not in json.dumps([w.as_dict() for w in app_webhooks.list_webhooks(ctx)], default=str)
    assert digest(ctx.conn)["webhooks"][1] == before["webhooks"][1] + 1


def test_only_admins_manage_webhooks(setup, ctx):
    conn = setup[0]
    users.add(ctx, "ana", "a long enough password 1", "analyst")
    try:
        with pytest.raises(Forbidden):
            app_webhooks.add_webhook(Context(conn, "ana"), "ops", "https://example.org/x", ["label.added"])
    finally:
        conn.execute("DELETE FROM users WHERE username = 'ana'")


def test_an_event_commits_with_its_change_and_reaches_only_its_subscribers(ctx, dispatcher):
    with receiver() as hooks:
        mine = app_webhooks.add_webhook(ctx, "mine", hooks.url, ["label.added"], dataset=DATASET)
        app_webhooks.add_webhook(ctx, "elsewhere", hooks.url, ["label.added"], dataset="elsewhere")
        app_webhooks.add_webhook(ctx, "cases-only", hooks.url, ["case.changed"])
        ids = _ids(ctx, 3)
        before = digest(ctx.conn)
        with pytest.raises(NotFound):  # one unknown id refuses the action: no label, no event
            labels.label(ctx, DATASET, [*ids, "no-such-transaction"], "fraud")
        assert digest(ctx.conn) == before
        done = labels.label(ctx, DATASET, ids, "fraud", note="chargeback 4471")
        assert _run(dispatcher) == 1
        (request,) = hooks.requests
        event = request.event
        assert verified(mine.secret, request, tolerance=60, now=int(time.time()))
        assert not verified("0" * 64, request)
        assert request.headers["centinela-event"] == "label.added" == event["type"]
        assert request.headers["centinela-event-id"] == event["id"] and event["dataset"] == DATASET
        assert event["data"] == {"label": "fraud", "note": "chargeback 4471", "analyst": "cli:test",
                                 "batch": done.batch_id, "closed": False, "transaction_ids": ids, "count": 3,
                                 "truncated": False}
        assert _run(dispatcher, 3) == 0 and len(hooks.requests) == 1  # delivered: never again
        log = app_webhooks.delivery_log(ctx, "mine")
        assert log["state"].tolist() == ["delivered"] and log["attempts"].tolist() == [1]
        assert app_webhooks.delivery_log(ctx, "elsewhere").empty and app_webhooks.delivery_log(ctx, "cases-only").empty


def test_label_with_close_case_change_and_promotion_are_events(ctx, dispatcher):
    with receiver() as hooks:
        app_webhooks.add_webhook(ctx, "all", hooks.url, list(store.EVENTS))
        ids = _ids(ctx, 2, offset=10)
        labels.label(ctx, DATASET, ids[:1], "legitimate", close=True)
        cases.take(ctx, DATASET, ids[1:])
        current = live.require_active(ctx, DATASET).run
        newer = app_runs.fit(ctx, DATASET, [DEFAULT_DETECTOR], random_state=1, activate=False)
        models.promote(ctx, DATASET, newer.id)
        models.rollback(ctx, DATASET, current.id)
        assert _run(dispatcher) == 5
        by_type = {}
        for e in hooks.events():
            by_type.setdefault(e["type"], []).append(e["data"])
        assert by_type["label.added"][0]["label"] == "legitimate" and by_type["label.added"][0]["closed"] is True
        closed, taken = by_type["case.changed"]
        assert closed["status"] == "closed" and closed["reason"] == "false positive" and closed["transaction_ids"] == ids[:1]
        assert taken["status"] == "in_review" and taken["assignee"] == "cli:test" and taken["transaction_ids"] == ids[1:]
        promoted, rolled_back = by_type["model.promoted"]
        assert (promoted["version"], promoted["action"], promoted["previous_version"]) == (newer.id, "promote", current.id)
        assert (rolled_back["version"], rolled_back["action"], rolled_back["previous_version"]) == (
            current.id, "rollback", newer.id)
        assert rolled_back["threshold"] == pytest.approx(live.require_active(ctx, DATASET).threshold)
        assert promoted["kind"] == "detector" and promoted["detector"] == newer.detector


def test_live_alerts_are_events_once_and_retries_are_not(setup, ctx, dispatcher):
    conn, _, rows = setup
    with receiver() as hooks:
        app_webhooks.add_webhook(ctx, "alerts", hooks.url, ["alert.raised"], dataset=DATASET)
        api = Context(conn, "key:scorer")
        batch = rows[:400]
        scored = live.score(api, DATASET, batch, api_key="scorer")
        alerted = [d["transaction_id"] for d in scored.decisions if d["alert"]]
        assert alerted, "the batch should raise alerts (take more rows)"
        assert scored.alerts == len(alerted)
        live.score(api, DATASET, batch[:50], api_key="scorer")  # retried ids: stored decisions, no new events
        _run(dispatcher)
        events = hooks.events()
        assert [e["data"]["transaction_id"] for e in events] == alerted
        first = next(d for d in scored.decisions if d["alert"])
        sent = next(row for row in batch if row["transaction_id"] == first["transaction_id"])
        data = events[0]["data"]
        assert data["score"] == pytest.approx(first["score"]) and data["threshold"] == pytest.approx(first["threshold"])
        assert data["api_key"] == "scorer" and data["transaction"]["amount"] == pytest.approx(sent["amount"])
        assert len(data["reasons"]) == len(first["reasons"])


def test_a_receiver_that_is_down_gets_every_event_later_once_in_order(ctx, dispatcher):
    with receiver() as probe:
        port = int(probe.url.rsplit(":", 1)[1].split("/")[0])
    url = f"http://127.0.0.1:{port}/hooks/centinela"  # nothing listens there now
    app_webhooks.add_webhook(ctx, "later", url, ["case.changed"])
    ids = _ids(ctx, 5, offset=20)
    for tx in ids:
        cases.change(ctx, DATASET, [tx], status="in_review")
    assert _run(dispatcher) == 0
    log = app_webhooks.delivery_log(ctx, "later").sort_values("delivery")
    # The first failed; the other four waited behind its back-off instead of each trying.
    assert log["attempts"].tolist() == [1, 0, 0, 0, 0] and log["state"].tolist() == ["retrying"] + ["pending"] * 4
    assert "Connect" in log["error"].iloc[0]
    time.sleep(0.25)
    assert _run(dispatcher) == 0  # still down: second attempt, back-off doubled
    assert app_webhooks.delivery_log(ctx, "later").sort_values("delivery")["attempts"].tolist() == [2, 0, 0, 0, 0]
    attempts = app_webhooks.attempts(ctx, int(log["delivery"].iloc[0]))
    assert attempts["attempt"].tolist() == [1, 2] and attempts["status"].isna().all()
    with receiver(port) as hooks:
        deadline = time.monotonic() + 10
        while len(hooks.requests) < 5 and time.monotonic() < deadline:
            _run(dispatcher)
            time.sleep(0.1)
        assert [e["data"]["transaction_ids"] for e in hooks.events()] == [[tx] for tx in ids]
        assert len({e["id"] for e in hooks.events()}) == 5
        _run(dispatcher, 2)
        assert len(hooks.requests) == 5
    assert (app_webhooks.delivery_log(ctx, "later")["state"] == "delivered").all()


def test_an_error_status_is_retried_then_given_up_and_can_be_sent_again(ctx, dispatcher, monkeypatch):
    monkeypatch.setattr(dispatch, "ATTEMPTS", 3)
    monkeypatch.setattr(dispatch, "RETRY_SECONDS", 0.05)
    with receiver() as hooks:
        hooks.failing = 3
        app_webhooks.add_webhook(ctx, "flaky", hooks.url, ["case.changed"])
        cases.change(ctx, DATASET, _ids(ctx, 1, offset=30), status="in_review")
        for _ in range(3):
            _run(dispatcher)
            time.sleep(0.25)
        (row,) = app_webhooks.delivery_log(ctx, "flaky").itertuples()
        assert row.state == "failed" and row.attempts == 3 and row.status == 503 and "HTTP 503" in row.error
        assert hooks.requests == []
        _run(dispatcher)
        assert hooks.requests == []  # given up: not tried again by itself
        with pytest.raises(NotFound):
            app_webhooks.redeliver(ctx, 10**9)
        hooks.failing = 2  # the new delivery has its own attempts: two more failures do not give it up
        again = app_webhooks.redeliver(ctx, row.delivery)
        for _ in range(4):
            _run(dispatcher)
            time.sleep(0.25)
        assert len(hooks.requests) == 1
        log = app_webhooks.delivery_log(ctx, "flaky").set_index("delivery")
        assert log.loc[again["id"], "state"] == "delivered" and log.loc[row.delivery, "state"] == "failed"
        assert log.loc[again["id"], "event_id"] == log.loc[row.delivery, "event_id"]
        assert app_webhooks.attempts(ctx, row.delivery)["status"].tolist() == [503, 503, 503]
        assert app_webhooks.attempts(ctx, again["id"])["status"].tolist() == [503, 503, 200]
        app_webhooks.remove_webhook(ctx, "flaky")
        with pytest.raises(Conflict):
            app_webhooks.redeliver(ctx, again["id"])


def test_a_webhook_that_is_down_never_holds_up_another(ctx, dispatcher):
    with receiver() as probe:
        dead = probe.url  # nothing listens there once the block ends
    with receiver() as hooks:
        app_webhooks.add_webhook(ctx, "down", dead, ["case.changed"])
        ids = _ids(ctx, 1, offset=50)
        with ctx.unit_of_work() as conn:  # a backlog bigger than any one read
            store.enqueue(conn, "case.changed", None, None, [{"n": i} for i in range(450)], ctx.clock())
        app_webhooks.add_webhook(ctx, "up", hooks.url, ["case.changed"])
        cases.change(ctx, DATASET, ids, status="in_review")
        _run(dispatcher)
        _run(dispatcher)
        assert [e["data"]["transaction_ids"] for e in hooks.events()] == [ids]
        down = app_webhooks.delivery_log(ctx, "down", limit=1_000)
        assert len(down) == 451 and down["attempts"].sum() == 1  # one attempt, the rest wait behind its back-off


def test_a_url_the_client_cannot_send_to_is_refused_or_a_failed_attempt(ctx, dispatcher):
    for url in ("http://hooks..bank.pe/x", f"http://{'a' * 64}.pe/x", "http://bank.pe/x\x7f", "http://[::1/x",
                "http://bank.pe:99999/x"):
        with pytest.raises(InvalidInput) as bad:
            app_webhooks.add_webhook(ctx, "bad", url, ["case.changed"])
        assert bad.value.field == "url", url
    with receiver() as hooks:
        app_webhooks.add_webhook(ctx, "good", hooks.url, ["case.changed"])
        with ctx.unit_of_work() as conn:  # one stored before these checks existed
            store.insert_webhook(conn, "stored-bad", "http://hooks..bank.pe/x", ("case.changed",), None, "0" * 64,
                                 ctx.clock(), "cli:test")
        cases.change(ctx, DATASET, _ids(ctx, 1, offset=60), status="in_review")
        assert _run(dispatcher) == 1 and len(hooks.requests) == 1
        (bad,) = app_webhooks.delivery_log(ctx, "stored-bad").itertuples()
        assert bad.state == "retrying" and bad.attempts == 1 and bad.error
        _run(dispatcher)
        assert len(hooks.requests) == 1


def test_a_paused_webhook_keeps_its_events_and_removal_gives_them_up(ctx, dispatcher):
    with receiver() as hooks:
        app_webhooks.add_webhook(ctx, "paused", hooks.url, ["case.changed"])
        app_webhooks.set_enabled(ctx, "paused", False)
        with pytest.raises(Conflict):
            app_webhooks.set_enabled(ctx, "paused", False)
        cases.change(ctx, DATASET, _ids(ctx, 1, offset=40), status="in_review")
        assert _run(dispatcher) == 0 and hooks.requests == []
        assert app_webhooks.delivery_log(ctx, "paused")["state"].tolist() == ["pending"]
        app_webhooks.set_enabled(ctx, "paused", True)
        assert _run(dispatcher) == 1 and len(hooks.requests) == 1
        app_webhooks.set_enabled(ctx, "paused", False)
        cases.change(ctx, DATASET, _ids(ctx, 1, offset=41), status="in_review")
        mine = app_webhooks.delivery_log(ctx, "paused")["delivery"].tolist()
        assert app_webhooks.remove_webhook(ctx, "paused") == 1
        log = app_webhooks.delivery_log(ctx).set_index("delivery").loc[mine]
        assert set(log["webhook"]) == {"(removed)"} and sorted(log["state"]) == ["delivered", "failed"]
        assert log["error"].dropna().tolist() == ["the webhook was removed"]


def test_purging_a_dataset_removes_its_events_and_its_webhooks(ctx):
    other = app_datasets.generate(ctx, "to-purge", SyntheticConfig(rows=300, seed=3, days=5)).dataset
    app_webhooks.add_webhook(ctx, "purged-only", "https://example.org/x", ["case.changed"], dataset=other.name)
    app_webhooks.add_webhook(ctx, "everything", "https://example.org/y", ["case.changed"])
    tx = ctx.conn.execute(f"SELECT transaction_id FROM {other.table} LIMIT 1").fetchall()[0][0]
    cases.change(ctx, other.name, [tx], status="in_review")
    assert len(app_webhooks.delivery_log(ctx, "everything")) == 1
    app_datasets.delete(ctx, other.name)
    app_datasets.empty_trash(ctx)
    assert [w.name for w in app_webhooks.list_webhooks(ctx)] == ["everything"]
    assert app_webhooks.delivery_log(ctx, "everything").empty


def test_the_command_line_adds_lists_and_logs(db_path):
    db = db_path
    added = run_cli("webhooks", "add", "cli-hook", "--url", "https://example.org/c", "--events", "model.promoted",
                    db=db, check=True)
    secret = added.stdout.strip().splitlines()[-1]
    assert re.fullmatch("[0-9a-f]{64}", secret)
    listed = run_cli("webhooks", "list", "--json", db=db, check=True)
    (hook,) = [w for w in json.loads(listed.stdout) if w["name"] == "cli-hook"]
    assert hook["events"] == ["model.promoted"] and secret not in listed.stdout
    bad = run_cli("webhooks", "add", "x", "--url", "https://example.org/c", "--events", "everything", db=db)
    assert bad.returncode == 2 and "everything" in bad.stderr
    assert run_cli("webhooks", "log", "--json", db=db, check=True).stdout.strip() == "[]"
    assert run_cli("webhooks", "remove", "cli-hook", db=db, check=True).returncode == 0
