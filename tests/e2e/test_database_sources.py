"""PostgreSQL sources against a real PostgreSQL (Debian's server, a throwaway cluster on a loopback
port, tests/postgres.py): `centinela source add` and `centinela sync` as processes, incremental
syncs after inserts, late rows and updates inside the overlap window, a sync SIGKILLed half-way
and run again, a bad row refused with its key and column, and sync through a running server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from application import database_sources as sources
from application import keys as app_keys
from data.db import connect
from data.errors import InvalidInput
from tests.browser import admin_env, live_server
from tests.conftest import ROOT, as_user, digest, run_cli
from tests.postgres import READER_PASSWORD, cluster

START = "timestamptz '2026-11-01 05:00:00+00'"
COLUMNS = ("tx_id text PRIMARY KEY, created_at timestamptz NOT NULL, amount numeric(12,2), customer_id text NOT NULL, "
           "merchant_id text NOT NULL, channel text, updated_at timestamptz NOT NULL")


def rows_sql(table: str, first: int, last: int, watermark: str | None = None) -> str:
    """Rows first..last, one a minute from START (deterministic: the values are functions of g),
    their watermark their time unless `watermark` (SQL over g) says otherwise (a late row's)."""
    return (f"INSERT INTO {table} SELECT 'T' || lpad(g::text, 7, '0'), {START} + g * interval '1 minute', "
            f"round(((g * 7919) % 50000) / 100.0 + 1, 2), 'C' || (g % 211), 'M' || (g % 37), "
            f"CASE WHEN g % 3 = 0 THEN 'pos' ELSE 'web' END, {watermark or f'{START} + g * interval {chr(39)}1 minute{chr(39)}'} "
            f"FROM generate_series({first}, {last}) g")


@pytest.fixture(scope="module")
def pg():
    with cluster() as found:
        yield found


@pytest.fixture
def password(monkeypatch):
    monkeypatch.setenv("CENTINELA_PG_TEST_PASSWORD", READER_PASSWORD)
    return "${CENTINELA_PG_TEST_PASSWORD}"


def source_url(pg, reference: str) -> str:
    return f"postgresql://reader:{reference}@127.0.0.1:{pg.port}/core"


def compare(pg, conn, table: str, dataset: str) -> int:
    """Every source row is in the dataset exactly once with the source's current amount; returns the count."""
    source = {r[0]: float(r[1]) for r in pg.execute(f"SELECT tx_id, amount FROM {table}")}
    table_name = conn.execute("SELECT table_name FROM datasets WHERE name = ? AND deleted_at IS NULL",
                              [dataset]).fetchall()[0][0]
    stored = conn.execute(f"SELECT transaction_id, amount FROM {table_name}").fetchall()
    ids = [r[0] for r in stored]
    assert len(ids) == len(set(ids)), "a transaction is stored twice"
    assert set(ids) == set(source), (f"missing: {sorted(set(source) - set(ids))[:5]}, "
                                     f"extra: {sorted(set(ids) - set(source))[:5]}")
    wrong = [(i, a, source[i]) for i, a in stored if abs(a - source[i]) > 1e-9]
    assert not wrong, f"amounts differ from the source: {wrong[:5]}"
    rows, registered = conn.execute(f"SELECT count(*), (SELECT row_count FROM datasets WHERE name = ? AND "
                                    f"deleted_at IS NULL) FROM {table_name}", [dataset]).fetchall()[0]
    assert rows == registered
    features = conn.execute(f"SELECT count(*), count(DISTINCT f.tx_row) FROM feat_{table_name[3:]} f "
                            f"JOIN {table_name} t USING (tx_row)").fetchall()[0]
    assert features == (rows, rows), "every row has its features, once"
    return rows


def sync_json(db: Path, name: str) -> dict:
    result = run_cli("sync", name, "--json", db=db)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow  # about 30 s: command-line processes (and a server) on two cores
def test_syncs_after_inserts_late_rows_updates_and_a_kill_lose_and_duplicate_nothing(pg, password, tmp_path):
    pg.execute(f"CREATE TABLE card_tx ({COLUMNS})", rows_sql("card_tx", 1, 3_000))
    db = tmp_path / "centinela.duckdb"
    added = run_cli("source", "add", "core", "--url", source_url(pg, password), "--table", "card_tx", "--watermark",
                    "updated_at", "--overlap", "15m", "--map", "timestamp=created_at", db=db)
    assert added.returncode == 0, added.stderr
    assert "tx_id" in added.stdout and "overlap 15m" in added.stdout

    first = sync_json(db, "core")
    assert (first["rows_read"], first["new"], first["updated"], first["skipped"]) == (3_000, 3_000, 0, 0)
    assert first["created_dataset"] and first["watermark_before"] is None
    watermark = first["watermark_after"]
    assert watermark == "2026-11-03T07:00:00"  # row 3,000: 05:00 + 3,000 minutes, stored as ISO text in UTC

    # Then: 400 new rows; 30 late ones (their watermark 10 minutes behind, inside the 15-minute
    # overlap: committed after the sync had read past them); 25 amounts corrected at the source,
    # the watermark bumped by the update; 8 corrected inside the window with the watermark unchanged.
    pg.execute(rows_sql("card_tx", 3_001, 3_400),
               rows_sql("card_tx", 5_001, 5_030, watermark=f"{START} + (2990 + g % 5) * interval '1 minute'"),
               "UPDATE card_tx SET amount = amount + 1000, updated_at = updated_at + interval '3 days' "
               "WHERE tx_id IN (SELECT 'T' || lpad(g::text, 7, '0') FROM generate_series(100, 2500, 100) g)",
               "UPDATE card_tx SET amount = amount + 0.01 WHERE tx_id IN "
               "(SELECT 'T' || lpad(g::text, 7, '0') FROM generate_series(2991, 2998) g)")
    late = pg.execute(f"SELECT count(*) FROM card_tx WHERE updated_at < timestamptz '{watermark}+00'")[0][0]
    assert late == 2_999 - 25 + 30  # the late rows really are behind the stored watermark
    second = sync_json(db, "core")
    # Read again: the window (rows 2,985-3,000: 16 rows) and everything past the watermark.
    assert second["since"].startswith("2026-11-03 06:45:00")
    assert second["new"] == 430 and second["updated"] == 33, second
    assert second["rows_read"] == 16 + 400 + 30 + 25 and second["skipped"] == 16 - 8
    assert second["changed_columns"] == {"amount": 33}
    assert second["watermark_after"] == "2026-11-05T22:40:00"  # row 2,500's, bumped 3 days by its update
    conn = connect(db)
    assert compare(pg, conn, "card_tx", "core") == 3_430
    conn.close()

    # Nothing new: the window read again, all skipped; the watermark stays.
    third = sync_json(db, "core")
    assert third["new"] == third["updated"] == 0 and third["skipped"] == third["rows_read"] > 0
    assert third["watermark_after"] == second["watermark_after"]

    # A sync killed (SIGKILL) after its rows were checked and while they are merged and their
    # features computed: the old watermark and none of the rows; the next sync does it all.
    pg.execute(rows_sql("card_tx", 10_001, 40_000))
    conn = connect(db)
    before = digest(conn)
    conn.close()
    env = {**os.environ, "CENTINELA_DB": str(db), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "cli", "sync", "core"], env=env, cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if "Computing features" in line or "Merging" in line:
                os.kill(process.pid, signal.SIGKILL)
                break
    finally:
        process.wait(30)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    conn = connect(db)
    assert digest(conn) == before, "a killed sync left something behind"
    conn.close()
    fourth = sync_json(db, "core")
    assert fourth["new"] == 30_000 and fourth["updated"] == 0
    assert fourth["watermark_before"] == second["watermark_after"]
    conn = connect(db)
    assert compare(pg, conn, "card_tx", "core") == 33_430
    syncs, new, updated, last = conn.execute("SELECT syncs, rows_new, rows_updated, last_watermark FROM "
                                             "database_sources WHERE name = 'core'").fetchall()[0]
    assert (syncs, new, updated, last) == (4, 33_430, 33, fourth["watermark_after"])
    audited = conn.execute("SELECT count(*) FROM audit WHERE action = 'source_sync'").fetchall()[0][0]
    assert audited == 4  # the killed one wrote none
    conn.close()


def test_a_bad_row_is_refused_with_its_key_and_column_and_the_dataset_is_unchanged(pg, password, tmp_path):
    pg.execute(f"CREATE TABLE bad_tx ({COLUMNS})", rows_sql("bad_tx", 1, 500))
    conn = connect(tmp_path / "centinela.duckdb")
    ctx = as_user(conn, "cli:ops")
    sources.add_source(ctx, "bad", source_url(pg, password), watermark="updated_at",
                       query="SELECT tx_id, created_at AS timestamp, amount, customer_id, merchant_id, updated_at "
                             "FROM bad_tx WHERE channel IS NOT NULL")
    assert sources.sync(ctx, "bad").new == 500
    pg.execute(rows_sql("bad_tx", 501, 600), "UPDATE bad_tx SET amount = NULL WHERE tx_id = 'T0000577'")
    before = digest(conn)
    with pytest.raises(InvalidInput) as refused:
        sources.sync(ctx, "bad")
    message = str(refused.value)
    assert "source 'bad'" in message and "tx_id 'T0000577'" in message and "column 'amount'" in message, message
    assert refused.value.column == "amount"
    assert digest(conn) == before, "a refused sync changed the database"
    pg.execute("UPDATE bad_tx SET amount = 12.5 WHERE tx_id = 'T0000577'")
    report = sources.sync(ctx, "bad")
    assert (report.new, report.updated) == (100, 0)
    assert compare(pg, conn, "bad_tx", "bad") == 600
    conn.close()


@pytest.mark.slow  # about 30 s: command-line processes (and a server) on two cores
def test_sync_runs_through_a_running_server_and_no_password_is_stored(pg, password, tmp_path, monkeypatch):
    pg.execute(f"CREATE TABLE served_tx ({COLUMNS})", rows_sql("served_tx", 1, 2_000))
    db = tmp_path / "centinela.duckdb"
    conn = connect(db)
    ctx = as_user(conn, "cli:setup")
    secret = app_keys.create(ctx, "ops", "operate").secret
    conn.close()
    refused = run_cli("source", "add", "leaky", "--url", source_url(pg, READER_PASSWORD), "--table", "served_tx",
                      "--watermark", "updated_at", db=db)  # a literal password: refused before anything is stored
    assert refused.returncode == 2 and "holds a password" in refused.stderr
    assert READER_PASSWORD not in refused.stderr
    with live_server(db, env=admin_env()) as (url, server):
        urllib.request.urlopen(f"{url}/api/v1/health", timeout=30).read()  # the server holds the file now
        monkeypatch.setenv("CENTINELA_URL", url)
        monkeypatch.setenv("CENTINELA_API_KEY", secret)
        added = run_cli("source", "add", "served", "--url", source_url(pg, password), "--table", "served_tx",
                        "--watermark", "updated_at", "--map", "timestamp=created_at", db=db)
        assert added.returncode == 0, added.stderr
        synced = run_cli("sync", "served", db=db)
        assert synced.returncode == 0, synced.stderr
        assert "2,000 new" in synced.stdout and "%]" in synced.stderr  # progress lines stream from the server
        pg.execute(rows_sql("served_tx", 2_001, 2_100))
        again = json.loads(run_cli("sync", "served", "--json", db=db, check=True).stdout)
        assert again["new"] == 100
        listed = json.loads(run_cli("source", "list", "--json", db=db, check=True).stdout)
        assert listed[0]["rows_new"] == 2_100 and listed[0]["syncs"] == 2
        server.terminate()
        server.wait(timeout=30)
    conn = connect(db)
    actors = conn.execute("SELECT action, actor FROM audit WHERE action LIKE 'source_%' ORDER BY id").fetchall()
    assert actors == [("source_add", "api:ops"), ("source_sync", "api:ops"), ("source_sync", "api:ops")]
    assert compare(pg, conn, "served_tx", "served") == 2_100
    for table in ("audit", "database_sources", "datasets"):
        text = conn.execute(f"SELECT string_agg(CAST(t AS VARCHAR), ' ') FROM {table} t").fetchall()[0][0] or ""
        assert READER_PASSWORD not in text, f"the password is stored in {table}"
    conn.close()


def test_a_timestamp_watermark_without_zone_a_query_and_driver_errors(pg, password, tmp_path, monkeypatch):
    pg.execute("CREATE TABLE shop_tx (id bigint PRIMARY KEY, at timestamp NOT NULL, total numeric(10,2), "
               "customer text, changed timestamp NOT NULL)",
               "INSERT INTO shop_tx SELECT g, timestamp '2026-11-01 08:00' + g * interval '1 minute', g % 70 + 0.25, "
               "'K' || (g % 13), timestamp '2026-11-01 08:00' + g * interval '1 minute' FROM generate_series(1, 400) g")
    conn = connect(tmp_path / "centinela.duckdb")
    ctx = as_user(conn, "cli:ops")
    query = "SELECT 'S' || id AS transaction_id, at, total AS amount, customer AS customer_id, changed FROM shop_tx"
    added = sources.add_source(ctx, "shop", source_url(pg, password), query=query, watermark="changed",
                               overlap="5m", maps=["timestamp=at"], timezone="UTC")
    assert added.watermark_type == "timestamp" and added.overlap == 300
    first = sources.sync(ctx, "shop")
    assert (first.new, first.watermark_after) == (400, "2026-11-01T14:40:00")  # wall time, as PostgreSQL holds it
    pg.execute("UPDATE shop_tx SET total = 1.5, changed = changed + interval '1 day' WHERE id = 7",
               "INSERT INTO shop_tx VALUES (401, '2026-11-01 14:38', 3.5, 'K1', '2026-11-01 14:38')")  # late
    second = sources.sync(ctx, "shop")
    assert (second.new, second.updated, second.skipped) == (1, 1, 6)  # 14:35-14:40 read again: 6 unchanged
    assert second.since == "2026-11-01 14:35:00"
    assert conn.execute("SELECT amount FROM tx_1 WHERE transaction_id = 'S7'").fetchall() == [(1.5,)]

    wrong = source_url(pg, "${CENTINELA_PG_TEST_WRONG}")
    monkeypatch.setenv("CENTINELA_PG_TEST_WRONG", "not-the-password")
    with pytest.raises(InvalidInput) as refused:
        sources.add_source(ctx, "wrong", wrong, table="shop_tx", watermark="changed")
    assert "password authentication failed" in str(refused.value) and refused.value.field == "url"
    assert "not-the-password" not in str(refused.value)
    with pytest.raises(InvalidInput) as broken:
        sources.add_source(ctx, "broken", source_url(pg, password), query="SELECT nope FROM shop_tx", watermark="x")
    assert "nope" in str(broken.value) and broken.value.field == "query"
    with pytest.raises(InvalidInput, match="must be a timestamp"):
        sources.add_source(ctx, "text-mark", source_url(pg, password), table="shop_tx", watermark="customer")
    with pytest.raises(InvalidInput, match="transaction id"):
        sources.add_source(ctx, "no-id", source_url(pg, password), query="SELECT at, total AS amount, changed "
                           "FROM shop_tx", watermark="changed", maps=["timestamp=at"], dataset="no-id")
    assert [s.name for s in sources.list_sources(ctx)] == ["shop"]
    conn.close()


def test_reads_are_read_only_names_fold_as_postgresql_folds_them_and_a_trailing_comment_is_harmless(
        pg, password, tmp_path):
    pg.execute("CREATE TABLE Pos_Tx (id bigint PRIMARY KEY, at timestamp NOT NULL, total numeric(10,2), "
               "changed bigint NOT NULL)",  # unquoted: PostgreSQL stores it as pos_tx
               "INSERT INTO pos_tx SELECT g, timestamp '2026-11-01 08:00' + g * interval '1 minute', g + 0.5, g "
               "FROM generate_series(1, 50) g",
               "CREATE SEQUENCE side_effects", "GRANT USAGE ON SEQUENCE side_effects TO reader")
    conn = connect(tmp_path / "centinela.duckdb")
    ctx = as_user(conn, "cli:ops")
    roles = ["transaction_id=id", "timestamp=at", "amount=total"]
    sources.add_source(ctx, "pos", source_url(pg, password), table="Public.Pos_Tx", watermark="changed", maps=roles)
    assert sources.sync(ctx, "pos").new == 50
    sources.add_source(ctx, "commented", source_url(pg, password), watermark="changed", maps=roles,
                       query="SELECT id, at, total, changed FROM pos_tx -- the POS table, as the bank names it")
    assert sources.sync(ctx, "commented").new == 50
    # A query that would write (a sequence, a function with side effects): PostgreSQL refuses it,
    # the read is a READ ONLY transaction, and the bank's database is unchanged.
    with pytest.raises(InvalidInput) as refused:
        sources.add_source(ctx, "writes", source_url(pg, password), watermark="changed", maps=roles,
                           query="SELECT id, at, total, changed, nextval('side_effects') AS n FROM pos_tx")
        sources.sync(ctx, "writes")
    assert "read-only transaction" in str(refused.value), str(refused.value)
    assert pg.execute("SELECT is_called FROM side_effects") == [(False,)]
    conn.close()
