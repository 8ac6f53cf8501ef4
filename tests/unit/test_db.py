"""The store: migrations, identifier quoting, transactions, cursors per thread, file locking."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import duckdb
import pytest

from data.db import (
    SCHEMA_VERSION,
    DatabaseInUseError,
    checked_ident,
    connect,
    migrate,
    quote_ident,
    schema_version,
    transaction,
)


def test_new_database_is_migrated_to_current_version(conn):
    assert schema_version(conn) == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"schema_version", "datasets", "feature_sets", "labels"} <= tables


def test_reopening_keeps_data_and_does_not_migrate_twice(db_path):
    first = connect(db_path)
    first.execute("INSERT INTO labels (dataset_id, transaction_id, label, analyst, note, created_at) VALUES (1, 'T1', 'fraud', 'ana', NULL, current_timestamp)")
    first.close()
    again = connect(db_path)
    assert migrate(again) == SCHEMA_VERSION
    assert again.execute("SELECT count(*) FROM schema_version").fetchall()[0][0] == SCHEMA_VERSION
    assert again.execute("SELECT label FROM labels").fetchall() == [("fraud",)]
    again.close()


def test_database_from_newer_version_is_refused(db_path):
    conn = connect(db_path)
    conn.execute("INSERT INTO schema_version VALUES (?, current_timestamp)", [SCHEMA_VERSION + 1])
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        connect(db_path)


def test_quote_ident_cannot_be_broken_out_of(conn):
    hostile = 'x"; DROP TABLE datasets; --'
    conn.execute(f"CREATE TABLE t ({quote_ident(hostile)} INTEGER)")
    conn.execute(f"INSERT INTO t ({quote_ident(hostile)}) VALUES (1)")
    assert conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 't'").fetchall() == [(hostile,)]
    assert conn.execute("SELECT count(*) FROM datasets").fetchall() == [(0,)]


def test_checked_ident_refuses_anything_but_plain_names():
    assert checked_ident("tx_12") == '"tx_12"'
    for bad in ("tx 1", "tx;drop", "", "1tx", 'a"b'):
        with pytest.raises(ValueError):
            checked_ident(bad)


def test_transaction_rolls_back_everything_on_error(conn):
    with pytest.raises(ZeroDivisionError), transaction(conn):
        conn.execute("CREATE TABLE half_done AS SELECT 1 AS x")
        conn.execute("INSERT INTO labels (dataset_id, transaction_id, label, analyst, note, created_at) VALUES (1, 'T1', 'fraud', 'ana', NULL, current_timestamp)")
        1 / 0  # noqa: B018
    assert conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_done'").fetchall() == [(0,)]
    assert conn.execute("SELECT count(*) FROM labels").fetchall() == [(0,)]


def test_one_cursor_per_thread_writes_concurrently(conn):
    def writer(analyst: str) -> None:
        cursor = conn.cursor()
        for i in range(50):
            cursor.execute("INSERT INTO labels (dataset_id, transaction_id, label, analyst, note, created_at) VALUES (1, ?, 'fraud', ?, NULL, current_timestamp)", [f"T{i}", analyst])
        cursor.close()

    threads = [threading.Thread(target=writer, args=(f"analyst{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert conn.execute("SELECT count(*), count(DISTINCT analyst) FROM labels").fetchall() == [(200, 4)]


def test_second_process_gets_a_clear_in_use_error(db_path):
    connect(db_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(db_path)!r}); print('ok', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(DatabaseInUseError, match="open in another process"):
            connect(db_path)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    connect(db_path).close()  # usable again once the other process is gone


def test_duckdb_has_no_network_extensions_loaded(conn):
    # The app must work with the wheel's built-in extensions only.
    loaded = {r[0] for r in conn.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert loaded <= {"core_functions", "icu", "json", "parquet"}
    assert isinstance(conn, duckdb.DuckDBPyConnection)
