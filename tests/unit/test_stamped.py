"""Reads kept between API requests (application.stamped): whatever an action changes between two
requests — a key revoked, another model activated, a threshold saved, a rule deployed, a dataset
deleted — the next request sees, while requests with nothing changed in between read nothing
again. Through the ASGI app on a real DuckDB file, as the server runs it."""

from __future__ import annotations

import pytest

from application import datasets as app_datasets
from application import keys as app_keys
from application import rules as app_rules
from application import runs as app_runs
from application import stamped
from application.context import Context
from data.datasets import get_dataset
from data.db import database_path
from tests.live import DATASET, bearer, live_client

URL = f"/v1/datasets/{DATASET}/transactions"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with live_client(tmp_path_factory.mktemp("stamped"), rows=3_000, days=30) as live:
        yield live


def _post(client, key, rows):
    return client.post(URL, json={"transactions": rows}, headers=bearer(key))


def test_back_to_back_requests_keep_the_stamp_and_read_nothing_again(live):
    client, conn, setup, rows = live
    assert _post(client, setup.keys["scorer"], rows[:1]).status_code == 200
    statements = []
    original = stamped.kept

    def counting(at, key, read):
        return original(at, key, lambda: statements.append(key) or read())

    stamped.kept = counting
    try:
        for row in rows[1:4]:
            assert _post(client, setup.keys["scorer"], [row]).status_code == 200
    finally:
        stamped.kept = original
    assert statements == []  # the key, the dataset's id and the live state were all kept
    # The kept dataset follows what each request stored, as a fresh read of the registry says.
    here = str(database_path().resolve())  # other modules' databases may keep their own
    (state,) = [v for (database, key), v in stamped._values.items() if database == here and key == ("live", DATASET)]
    assert state.dataset == get_dataset(conn, DATASET)


def test_a_key_revoked_between_requests_is_refused_at_the_next(live):
    client, conn, setup, rows = live
    ctx = Context(conn, "cli:admin")
    secret = app_keys.create(ctx, "short-lived", "score").secret
    assert _post(client, secret, rows[10:11]).status_code == 200
    app_keys.revoke(ctx, "short-lived")
    refused = _post(client, secret, rows[11:12])
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


def test_a_model_activated_or_a_threshold_saved_between_requests_is_used_at_the_next(live):
    client, conn, setup, rows = live
    ctx = Context(conn, "cli:ds")
    first = _post(client, setup.keys["scorer"], rows[20:21]).json()["decisions"][0]
    other = app_runs.fit(ctx, DATASET, ["hbos"])  # fitting makes it the active run
    second = _post(client, setup.keys["scorer"], rows[21:22]).json()["decisions"][0]
    assert first["model"]["run"] != other.id and second["model"]["run"] == other.id
    app_runs.save_threshold(ctx, other.id, 0.3)
    third = _post(client, setup.keys["scorer"], rows[22:23]).json()["decisions"][0]
    assert third["threshold"] == app_runs.active(ctx, DATASET).threshold != second["threshold"]
    app_runs.activate(ctx, DATASET, first["model"]["run"])
    fourth = _post(client, setup.keys["scorer"], rows[23:24]).json()["decisions"][0]
    assert fourth["model"]["run"] == first["model"]["run"]


def test_a_rule_deployed_between_requests_applies_at_the_next(live):
    client, conn, setup, rows = live
    admin = Context(conn, "admin")
    before = _post(client, setup.keys["scorer"], rows[30:31]).json()["decisions"][0]
    assert before["rules"] == []
    app_rules.add(admin, DATASET, "everything", "amount >= 0")
    app_rules.set_status(admin, DATASET, "everything", "active")
    after = _post(client, setup.keys["scorer"], rows[31:32]).json()["decisions"][0]
    assert after["alert"] is True and after["rules"] == ["everything"]
    app_rules.set_status(admin, DATASET, "everything", "retired")
    retired = _post(client, setup.keys["scorer"], rows[32:33]).json()["decisions"][0]
    assert retired["rules"] == []


def test_a_dataset_deleted_between_requests_is_gone_at_the_next(live):
    client, conn, setup, rows = live
    ctx = Context(conn, "cli:admin")
    assert _post(client, setup.keys["scorer"], rows[40:41]).status_code == 200
    app_datasets.delete(ctx, DATASET)
    try:
        gone = _post(client, setup.keys["scorer"], rows[41:42])
        assert gone.status_code == 404, gone.text
    finally:
        app_datasets.restore(ctx, conn.execute("SELECT id FROM datasets WHERE name = ?", [DATASET]).fetchall()[0][0])
    assert _post(client, setup.keys["scorer"], rows[42:43]).status_code == 200


def test_what_is_kept_is_per_database_and_only_under_the_current_stamp(tmp_path):
    import duckdb

    stamped.clear()
    a, b = duckdb.connect(), duckdb.connect()
    for conn in (a, b):
        conn.execute("CREATE TABLE audit (id INTEGER)")
    at_a, at_b = stamped.stamp(a, "a"), stamped.stamp(b, "b")
    assert stamped.kept(at_a, "k", lambda: "from a") == "from a"
    assert stamped.kept(at_b, "k", lambda: "from b") == "from b"  # same count, another database
    assert stamped.kept(at_a, "k", lambda: "read again") == "from a"
    a.execute("INSERT INTO audit VALUES (1)")  # any action's audit row
    moved = stamped.stamp(a, "a")
    assert stamped.kept(moved, "k", lambda: "new") == "new"
    assert stamped.kept(at_a, "k2", lambda: "late") == "late"  # read under an old stamp: not kept
    assert stamped.kept(moved, "k2", lambda: "fresh") == "fresh"
    # Its own one audit row: the stamp moves on and what is kept stays.
    a.execute("INSERT INTO audit VALUES (2)")
    ahead = stamped.advance(moved)
    assert stamped.stamp(a, "a") == ahead and stamped.kept(ahead, "k", lambda: "read again") == "new"
    # Someone else's row as well: the next stamp drops it all.
    a.execute("INSERT INTO audit VALUES (3)")
    a.execute("INSERT INTO audit VALUES (4)")
    stamped.advance(ahead)
    assert stamped.kept(stamped.stamp(a, "a"), "k", lambda: "read again") == "read again"
    assert stamped.kept(stamped.stamp(a, None), "k", lambda: "never kept") == "never kept"
    assert stamped.kept(at_b, "k", lambda: "read again") == "from b"
    stamped.clear()


def test_an_advance_while_another_request_counts_drops_what_is_kept(monkeypatch):
    """A request counts the audit rows while another's commit is moved on: the count it read may
    hold a third party's row (a revoked key) that the advance took for the scorer's own, so what
    was kept must not be served under it."""
    import duckdb

    from application import stamped as module

    stamped.clear()
    conn = duckdb.connect()
    conn.execute("CREATE TABLE audit (id INTEGER)")
    scorer = stamped.stamp(conn, "db")  # N rows
    assert stamped.kept(scorer, "key", lambda: "active key row") == "active key row"
    conn.execute("INSERT INTO audit VALUES (1)")  # someone revokes the key: N + 1
    counted = module.audit_rows

    def count_then_advance(c):
        rows = counted(c)  # this request sees N + 1 (the revocation) ...
        conn.execute("INSERT INTO audit VALUES (2)")  # ... then the scorer commits its own row
        stamped.advance(scorer)  # and moves the stamp from N to N + 1
        return rows

    monkeypatch.setattr(module, "audit_rows", count_then_advance)
    other = stamped.stamp(conn, "db")
    monkeypatch.setattr(module, "audit_rows", counted)
    assert stamped.kept(other, "key", lambda: "revoked key row") == "revoked key row"
    stamped.clear()
