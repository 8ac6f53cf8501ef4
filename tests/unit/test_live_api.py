"""The HTTP API through its ASGI app (FastAPI's TestClient, in process, on a real DuckDB file):
scoring, retries, reads, labels, keys and scopes, health and metrics, and a hostile-request
corpus that must be refused with 4xx naming the item and field, leaving the database as it was."""

from __future__ import annotations

import json
import time

import pytest

from application import keys as app_keys
from application.context import Context
from tests.conftest import digest
from tests.live import DATASET, bearer, live_client

URL = f"/v1/datasets/{DATASET}/transactions"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with live_client(tmp_path_factory.mktemp("live-api")) as live:
        yield live


def test_the_openapi_document_and_its_page(live):
    client, *_ = live
    document = client.get("/openapi.json").json()
    assert "/v1/datasets/{dataset}/transactions" in document["paths"]
    assert "ScoreRequest" in document["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_health_needs_no_key_and_loads_the_active_models(live):
    client, *_ = live
    body = client.get("/v1/health").json()
    assert body["status"] == "ok" and body["database"] == "open"
    bank = next(d for d in body["datasets"] if d["name"] == DATASET)
    assert bank["model_loaded"] is True and bank["kind"] == "detector"


def test_scoring_stores_the_transaction_its_features_score_and_decision(live):
    client, conn, setup, rows = live
    response = client.post(URL, json={"transactions": rows[:1]}, headers=bearer(setup.keys["scorer"]))
    assert response.status_code == 200, response.text
    body = response.json()
    (decision,) = body["decisions"]
    assert body["stored"] == 1 and decision["transaction_id"] == rows[0]["transaction_id"]
    assert decision["alert"] == (decision["score"] >= decision["threshold"])
    assert decision["model"]["kind"] == "detector" and len(decision["reasons"]) == 3
    assert {"feature", "value", "contribution"} <= set(decision["reasons"][0])
    stored = conn.execute("SELECT api_key, alert FROM decisions WHERE transaction_id = ?", [rows[0]["transaction_id"]]).fetchall()
    assert stored == [("api:scorer", decision["alert"])]
    audit = conn.execute("SELECT actor, action FROM audit ORDER BY id DESC LIMIT 1").fetchall()
    assert audit == [("api:scorer", "score")]


def test_a_retried_batch_returns_the_stored_decisions_and_stores_nothing(live):
    client, conn, setup, rows = live
    first = client.post(URL, json={"transactions": rows[1:6]}, headers=bearer(setup.keys["scorer"])).json()
    before = digest(conn)
    again = client.post(URL, json={"transactions": rows[1:6]}, headers=bearer(setup.keys["scorer"])).json()
    assert digest(conn) == before
    assert again["stored"] == 0 and [d["score"] for d in again["decisions"]] == [d["score"] for d in first["decisions"]]
    # A batch mixing a retry and a new transaction stores only the new one.
    mixed = client.post(URL, json={"transactions": rows[5:7]}, headers=bearer(setup.keys["scorer"])).json()
    assert mixed["stored"] == 1


def test_read_a_transaction_and_label_it_through_the_labelling_path(live):
    client, conn, setup, rows = live
    tx = rows[0]["transaction_id"]
    labelled = client.post(f"/v1/datasets/{DATASET}/labels", json={"transaction_ids": [tx], "label": "fraud",
                                                                   "note": "chargeback"},
                           headers=bearer(setup.keys["labeller"]))
    assert labelled.status_code == 200, labelled.text
    assert conn.execute("SELECT analyst, label, note FROM labels WHERE transaction_id = ?", [tx]).fetchall() == [
        ("api:labeller", "fraud", "chargeback")]
    assert conn.execute("SELECT actor FROM audit WHERE action = 'label' ORDER BY id DESC LIMIT 1").fetchall() == [
        ("api:labeller",)]
    read = client.get(f"{URL}/{tx}", headers=bearer(setup.keys["scorer"])).json()
    assert read["label"] == "fraud" and read["decision"]["api_key"] == "api:scorer"
    assert read["transaction"]["transaction_id"] == tx and read["transaction"]["amount"] == rows[0]["amount"]
    assert client.get(f"{URL}/nope", headers=bearer(setup.keys["scorer"])).status_code == 404


def test_keys_are_stored_hashed_and_checked_for_scope_dataset_and_state(live):
    client, conn, setup, rows = live
    stored = json.dumps(conn.execute("SELECT * FROM api_keys").fetchall(), default=str)
    assert not any(secret in stored for secret in setup.keys.values())
    body = {"transactions": rows[7:8]}
    assert client.post(URL, json=body).status_code == 401
    assert client.post(URL, json=body, headers=bearer("cent_not-a-key")).status_code == 401
    assert client.post(URL, json=body, headers=bearer(setup.keys["revoked"])).status_code == 401
    assert client.post(URL, json=body, headers=bearer(setup.keys["labeller"])).status_code == 403  # scope
    forbidden = client.post(URL, json=body, headers=bearer(setup.keys["other"]))  # another dataset
    assert forbidden.status_code == 403 and forbidden.json()["error"]["field"] == "dataset"
    brief = app_keys.create(Context(conn, "cli:test"), "brief", "score", expires_days=0.00001).secret
    time.sleep(1.0)
    expired = client.post(URL, json=body, headers=bearer(brief))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    assert client.post(URL, json=body, headers={"X-API-Key": setup.keys["all"]}).status_code == 200


def _corpus(rows: list[dict]) -> list[tuple[str, object, int, int | None, str | None, str]]:
    """(name, body (JSON-able, or raw bytes), status, item, field, key) for hostile requests."""
    good = [dict(rows[20]), dict(rows[21])]

    def batch(i: int, **change) -> dict:
        items = [dict(r) for r in good]
        for k, v in change.items():
            if v is KeyError:
                items[i].pop(k, None)
            else:
                items[i][k] = v
        return {"transactions": items}

    stored = rows[0]  # scored by an earlier test
    return [
        ("malformed JSON", b'{"transactions": [', 422, None, "body", "scorer"),
        ("not JSON at all", b"amount=5", 422, None, "body", "scorer"),
        ("non-UTF-8 bytes", b'{"transactions": [{"transaction_id": "\xff\xfe"}]}', 400, None, "body", "scorer"),
        ("deeply nested JSON", b"[" * 100_000 + b"]" * 100_000, 400, None, "body", "scorer"),
        ("nested where a number goes", batch(1, amount=json.loads("[" * 50 + "]" * 50)), 422, 1, "amount", "scorer"),
        ("body not an object", [1, 2, 3], 422, None, "body", "scorer"),
        ("no transactions", {"transactions": []}, 422, None, "transactions", "scorer"),
        ("missing amount", batch(1, amount=KeyError), 422, 1, "amount", "scorer"),
        ("missing timestamp", batch(0, timestamp=KeyError), 422, 0, "timestamp", "scorer"),
        ("missing transaction id", batch(1, transaction_id=KeyError), 422, 1, "transaction_id", "scorer"),
        ("amount as text", batch(1, amount="lots"), 422, 1, "amount", "scorer"),
        ("amount as true", batch(1, amount=True), 422, 1, "amount", "scorer"),
        ("amount NaN", b'{"transactions": [{"transaction_id": "H1", "timestamp": "2024-01-01T10:00:00", "amount": NaN}]}',
         422, 0, "amount", "scorer"),
        ("amount Infinity", b'{"transactions": [{"transaction_id": "H1", "timestamp": "2024-01-01T10:00:00", '
                            b'"amount": -Infinity}]}', 422, 0, "amount", "scorer"),
        ("amount over the import limit", batch(1, amount=5e12), 422, 1, "amount", "scorer"),
        ("date before 1970", batch(1, timestamp="1900-01-01T00:00:00"), 422, 1, "timestamp", "scorer"),
        ("date after 2099", batch(0, timestamp="2150-06-01T00:00:00"), 422, 0, "timestamp", "scorer"),
        ("not a date", batch(1, timestamp="yesterday"), 422, 1, "timestamp", "scorer"),
        ("customer id as a number", batch(1, customer_id=12345), 422, 1, "customer_id", "scorer"),
        ("latitude out of range", batch(0, lat=123.0), 422, 0, "lat", "scorer"),
        ("unknown field", batch(1, favourite_colour="red"), 422, 1, "favourite_colour", "scorer"),
        ("control characters in an id", batch(1, transaction_id="TX\x00\x07"), 422, 1, "transaction_id", "scorer"),
        ("duplicate ids in a batch", batch(1, transaction_id=good[0]["transaction_id"]), 422, 1, "transaction_id",
         "scorer"),
        ("id stored with other values", {"transactions": [dict(good[0]), {**stored, "amount": stored["amount"] + 1}]},
         409, 1, "amount", "scorer"),
        ("batch over 10,000", {"transactions": [{"transaction_id": f"B{i}", "timestamp": "2024-01-01T00:00:00",
                                                 "amount": 1.0} for i in range(10_001)]}, 422, None, "transactions",
         "scorer"),
        ("body over the size limit", b'{"transactions": ["' + b"x" * (9 * 1024 * 1024) + b'"]}', 413, None, "body",
         "scorer"),
        ("body over the size limit, streamed without a length", lambda: (b"x" * 65_536 for _ in range(160)), 413, None,
         "body", "scorer"),
        ("a date with an offset in year 1", batch(1, timestamp="0001-01-01T00:00:00+05:00"), 422, 1, "timestamp",
         "scorer"),
        ("unknown dataset", ("/v1/datasets/nowhere/transactions", batch(0)), 404, None, None, "scorer"),
        ("unknown dataset, with a key for one dataset", ("/v1/datasets/nowhere/labels", {
            "transaction_ids": [stored["transaction_id"]], "label": "fraud"}), 403, None, "dataset", "labeller"),
        ("revoked key", batch(0), 401, None, None, "revoked"),
        ("key without the score scope", batch(0), 403, None, "scope", "labeller"),
        ("label not in the list", ("/v1/datasets/bank/labels", {"transaction_ids": [stored["transaction_id"]],
                                                                "label": "maybe"}), 422, None, "label", "labeller"),
        ("label an unknown transaction", ("/v1/datasets/bank/labels", {"transaction_ids": ["nope"], "label": "fraud"}),
         404, None, "transaction_ids", "labeller"),
    ]


CASES = [c[0] for c in _corpus([{"transaction_id": str(i), "amount": 1.0, "timestamp": "2024-01-01"} for i in range(30)])]


@pytest.mark.parametrize("name", CASES)
def test_hostile_requests_are_refused_and_change_nothing(live, name):
    client, conn, setup, rows = live
    _, body, status, item, field, key = next(c for c in _corpus(rows) if c[0] == name)
    url = URL
    if isinstance(body, tuple):
        url, body = body
    before = digest(conn)
    headers = {**bearer(setup.keys[key]), "Content-Type": "application/json"}
    if callable(body):  # a generator: sent chunked, with no Content-Length
        response = client.post(url, content=body(), headers=headers)
        assert "content-length" not in {k.lower() for k in response.request.headers}
    elif isinstance(body, bytes):
        response = client.post(url, content=body, headers=headers)
    else:
        response = client.post(url, json=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    assert error.get("item") == item, error
    if field is not None:
        assert error.get("field") == field, error
    assert digest(conn) == before


def test_metrics_count_requests_scores_alerts_and_name_the_active_model(live):
    from starlette.requests import Request

    from api.metrics import metrics_endpoint

    client, *_ = live
    text = metrics_endpoint(Request({"type": "http", "method": "GET", "path": "/metrics", "headers": []})).body.decode()
    assert 'centinela_api_requests_total{method="POST",route="/v1/datasets/{dataset}/transactions",status="200"}' in text
    assert "centinela_transactions_scored_total{dataset=\"bank\"}" in text
    assert "centinela_alerts_raised_total" in text and "centinela_score_bucket" in text
    assert 'centinela_active_model{dataset="bank",detector="isolation_forest",kind="detector",run="1"} 1.0' in text
    assert "centinela_api_request_seconds_bucket" in text


@pytest.mark.parametrize("limit", [float("nan"), 0.0, -5.0, float("inf")])
def test_replay_refuses_a_time_limit_that_would_not_bound_it(limit):
    from cli.replay import replay
    from data.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        replay([{"transaction_id": "T1"}], client=None, dataset="bank", max_seconds=limit)
    assert refused.value.field == "max_seconds"
