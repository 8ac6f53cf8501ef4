"""Webhooks on Users & audit: an admin adds one (the secret shown once), sees its deliveries in
the log as the dispatcher sends them to a real receiver, pauses it, and sends a failed one again."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from application import cases
from integrations import webhooks as dispatch
from tests.apptest import app, one, texts
from tests.conftest import as_user
from tests.webhooks import receiver, verified

pytestmark = pytest.mark.usefixtures("server_like_navigation")


def test_admin_adds_a_webhook_sees_its_deliveries_and_pauses_it(conn, db_path, small_dataset):
    with receiver() as hooks:
        at = app("boss", "admin")
        at.run()
        at.switch_page("pages/admin.py").run()
        assert any("No webhooks yet" in i.value for i in at.info)
        at.text_input(key="webhook-name").input("case-desk")
        at.text_input(key="webhook-url").input("mailto:desk@bank.pe")
        at.multiselect(key="webhook-events").set_value(["case.changed"])
        one(at.button, "Add webhook").click()
        at.run()
        assert "is not an http(s) URL" in texts(at) and "Nothing was changed" in texts(at)
        assert conn.execute("SELECT count(*) FROM webhooks").fetchall() == [(0,)]
        at.text_input(key="webhook-url").input(hooks.url)
        one(at.button, "Add webhook").click()
        at.run()
        assert not at.exception, at.exception
        (secret,) = [c.value for c in at.code]
        assert conn.execute("SELECT name, created_by FROM webhooks").fetchall() == [("case-desk", "boss")]
        at.run()
        assert not at.code  # shown once

        tx = conn.execute(f"SELECT transaction_id FROM {small_dataset.table} LIMIT 1").fetchall()[0][0]
        cases.change(as_user(conn, "cli:test"), small_dataset.name, [tx], status="in_review")
        dispatcher = dispatch.Dispatcher(str(db_path))
        with ThreadPoolExecutor(2) as pool:
            assert dispatcher.deliver_due(pool) == 1
        dispatcher.client.close()
        (request,) = hooks.requests
        assert verified(secret, request) and request.event["data"]["transaction_ids"] == [tx]
        at.run()
        (log,) = [d.value for d in at.dataframe if "delivery" in d.value.columns]
        assert log["state"].tolist() == ["delivered"] and log["event"].tolist() == ["case.changed"]
        (listing,) = [d.value for d in at.dataframe if "url" in d.value.columns]
        assert listing["delivered"].tolist() == [1] and listing["state"].tolist() == ["enabled"]

        at.selectbox(key="webhook-change-name").set_value("case-desk")
        one(at.button, "Pause").click()
        at.run()
        assert "paused" in texts(at)
        assert conn.execute("SELECT enabled FROM webhooks").fetchall() == [(False,)]
        one(at.button, "Send again").click()  # the newest delivery: the one sent
        at.run()
        assert "will be sent again" in texts(at)
        assert conn.execute("SELECT event_id, delivered_at IS NULL FROM webhook_outbox ORDER BY id").fetchall() == [
            (request.event["id"], False), (request.event["id"], True)]  # the same event, a new delivery
        assert [r[0] for r in conn.execute("SELECT actor FROM audit WHERE action LIKE 'webhook%' ORDER BY id")
                .fetchall()] == ["boss", "boss", "boss"]
