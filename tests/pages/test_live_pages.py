"""Live scoring on the pages: an admin creates and revokes API keys on Users & audit; alerts
scored through the API show on the queue with an 'N new alerts' line, and the case page says how
the transaction arrived."""

from __future__ import annotations

import pytest

from application import keys as app_keys
from application import live, users
from application import runs as app_runs
from data.errors import Forbidden
from data.keys import key_hash
from detectors.runs import default_split
from tests.apptest import app, one, texts
from tests.conftest import as_user

pytestmark = pytest.mark.usefixtures("server_like_navigation")


@pytest.fixture
def fitted(conn, small_dataset):
    app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    return small_dataset


def _suspicious(conn, dataset, n: int = 5) -> list[dict]:
    """New transactions shaped like the dataset's largest ones, after its last."""
    rows = conn.execute(f"SELECT customer_id, merchant_id, amount FROM {dataset.table} ORDER BY amount DESC LIMIT ?",
                        [n]).fetchall()
    start = dataset.max_ts
    return [{"transaction_id": f"LIVE{i}", "timestamp": (start.replace(microsecond=0)).isoformat(),
             "amount": float(amount) * 20, "customer_id": customer, "merchant_id": merchant}
            for i, (customer, merchant, amount) in enumerate(rows)]


def test_admin_creates_shows_once_and_revokes_a_key(conn, fitted):
    at = app("boss", "admin")
    at.run()
    at.switch_page("pages/admin.py").run()
    at.text_input(key="key-name").input("core-banking")
    at.multiselect(key="key-scopes").set_value(["score", "read"])
    one(at.button, "Create key").click()
    at.run()
    assert not at.exception, at.exception
    (shown,) = [c.value for c in at.code]
    key = app_keys.authenticate(as_user(conn), shown, "read")
    assert key.name == "core-banking" and key.created_by == "boss"
    assert conn.execute("SELECT count(*) FROM api_keys WHERE key_hash = ?", [key_hash(shown)]).fetchall() == [(1,)]
    at.run()  # the next run no longer shows it
    assert not at.code
    at.selectbox(key="key-revoke-name").set_value("core-banking")
    one(at.button, "Revoke").click()
    at.run()
    assert "Revoked key core-banking" in texts(at)
    assert conn.execute("SELECT revoked_by FROM api_keys").fetchall() == [("boss",)]


def test_only_an_admin_manages_keys(conn, fitted):
    users.add(as_user(conn, "cli:test"), "rosa", "a long password here", "analyst")
    with pytest.raises(Forbidden, match="only an admin"):
        app_keys.create(as_user(conn, "rosa"), "x", "score")


def test_queue_shows_new_api_alerts_and_the_case_says_how_it_arrived(conn, fitted):
    at = app("ana", "analyst")
    at.run()
    at.switch_page("pages/queue.py").run()
    assert not at.exception, at.exception
    assert "new alert" not in texts(at)
    scored = live.score(as_user(conn), fitted.name, _suspicious(conn, fitted), api_key="api:core-banking")
    assert scored.alerts >= 1
    at.run()
    assert f"{scored.alerts:,} new alert" in texts(at)
    alert = next(d["transaction_id"] for d in scored.decisions if d["alert"])
    at.query_params["case"] = alert
    at.switch_page("pages/case.py").run()
    assert not at.exception, at.exception
    assert "Arrived through the API with key **core-banking**" in texts(at)


def test_kpi_overview_counts_transactions_scored_live(conn, fitted):
    """The page keeps its scan of every transaction between visits: live rows must still count."""
    at = app("boss", "admin")
    at.run()
    at.switch_page("pages/overview.py").run()
    assert not at.exception, at.exception

    def figure(label: str) -> int:
        return int(one(at.metric, label).value.replace(",", ""))

    before, alerts_before = figure("Transactions"), figure("Alerts")
    assert before == fitted.row_count
    scored = live.score(as_user(conn), fitted.name, _suspicious(conn, fitted), api_key="api:core-banking")
    at.run()
    assert not at.exception, at.exception
    assert figure("Transactions") == before + 5
    assert figure("Alerts") == alerts_before + scored.alerts
    assert figure("Backlog: unreviewed alerts") == alerts_before + scored.alerts


def test_admin_sets_and_stops_a_kafka_consumer(conn, fitted):
    at = app("boss", "admin")
    at.run()
    at.switch_page("pages/admin.py").run()
    assert any("No Kafka consumer yet" in i.value for i in at.info)
    at.selectbox(key="kafka-dataset").set_value(fitted.name)
    at.text_input(key="kafka-bootstrap").input("not a broker")
    at.text_input(key="kafka-topic").input("card-tx")
    one(at.button, "Save and start").click()
    at.run()
    assert "is not HOST:PORT" in texts(at) and "Nothing was changed" in texts(at)
    assert conn.execute("SELECT count(*) FROM kafka_consumers").fetchall() == [(0,)]
    at.text_input(key="kafka-bootstrap").input("127.0.0.1:9092")
    at.text_input(key="kafka-decisions").input("card-decisions")
    one(at.button, "Save and start").click()
    at.run()
    assert not at.exception, at.exception
    assert conn.execute("SELECT topic, decisions_topic, dead_letter_topic, enabled, updated_by FROM kafka_consumers"
                        ).fetchall() == [("card-tx", "card-decisions", "card-tx.dead-letter", True, "boss")]
    (table,) = [d.value for d in at.dataframe if "topic" in d.value.columns]
    assert table["state"].tolist() == ["waiting for the server"]  # no supervisor runs in this test's process
    at.selectbox(key="kafka-stop-dataset").set_value(fitted.name)
    one(at.button, "Stop").click()
    at.run()
    assert conn.execute("SELECT enabled FROM kafka_consumers").fetchall() == [(False,)]
    assert conn.execute("SELECT actor FROM audit WHERE action LIKE 'kafka%' ORDER BY id").fetchall() == [
        ("boss",), ("boss",)]
