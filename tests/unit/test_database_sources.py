"""Database sources without a PostgreSQL: what an admin may give (URLs, tables, overlaps), the
watermark's arithmetic, Arrow normalisation, the merge by transaction id, error wording and roles.
(tests/e2e/test_database_sources.py runs the whole path against a real PostgreSQL.)"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from application import database_sources as sources
from application import users as app_users
from application.context import Context
from data import database_sources as store
from data.errors import Forbidden, InvalidInput, UserError
from data.ingest import import_file
from tests.conftest import as_user


def settings(**changes) -> store.SourceSettings:
    base = dict(id=1, name="core", dataset="core", dataset_id=None, url="postgresql://r@h/db", relation="card_tx",
                query=None, watermark="updated_at", watermark_type="timestamptz", overlap=600.0,
                mapping={"roles": {"transaction_id": "tx_id", "timestamp": "ts", "amount": "amount"},
                         "categorical": [], "numeric": [], "time_column": None},
                timezone="America/Lima", features=True, created_at=datetime(2026, 12, 1), created_by="test")
    return store.SourceSettings(**{**base, **changes})


def test_urls_with_a_literal_password_are_refused_and_references_are_expanded(monkeypatch):
    assert store.check_url(" postgresql://reader@db.bank.pe:5432/core?sslmode=require ") == \
        "postgresql://reader@db.bank.pe:5432/core?sslmode=require"
    for bad, why in (("mysql://r@h/db", "postgresql://"), ("postgresql://r:hunter2@h/db", "holds a password"),
                     ("postgresql://r@h/db?password=hunter2", "password option"), ("postgresql://r@h:99999/db", "Port")):
        with pytest.raises(InvalidInput) as refused:
            store.check_url(bad)
        assert why in str(refused.value) and refused.value.field == "url"
        assert "hunter2" not in str(refused.value)
    url = store.check_url("postgresql://reader:${CENTINELA_PG_PW}@h/db")
    monkeypatch.setenv("CENTINELA_PG_PW", "p@ss/w:rd")
    assert store.expand(url) == "postgresql://reader:p%40ss%2Fw%3Ard@h/db"  # percent-encoded for libpq
    assert store.redact(url) == url  # a reference is not a secret
    assert store.redact("postgresql://reader:hunter2@h:5432/db") == "postgresql://reader:***@h:5432/db"
    monkeypatch.setenv("PGPASSWORD", "libpq-pw")  # libpq's own variable may be named too
    assert store.expand(store.check_url("postgresql://reader:${PGPASSWORD}@h/db")) == "postgresql://reader:libpq-pw@h/db"
    monkeypatch.delenv("CENTINELA_PG_PW")
    with pytest.raises(InvalidInput, match="CENTINELA_PG_PW"):
        store.expand(url)


def test_only_the_password_may_name_a_variable_and_only_an_allowed_one(monkeypatch):
    """A URL goes to a server of the admin's choosing: it must not carry any other of the syncing
    process's environment there (the password of another variable, or ${...} in an option)."""
    monkeypatch.setenv("CENTINELA_SECRET_KEY", "the-server-s-own-secret")
    monkeypatch.setenv("CENTINELA_PG_PW", "pg-pw")
    for bad, part in (("postgresql://evil:${CENTINELA_SECRET_KEY}@attacker.example/db", "CENTINELA_SECRET_KEY"),
                      ("postgresql://evil:${HOME}@attacker.example/db", "HOME"),
                      ("postgresql://evil:${CENTINELA_PG_PW}@attacker.example/db?application_name=${CENTINELA_SECRET_KEY}",
                       "options"),
                      ("postgresql://${CENTINELA_PG_PW}@attacker.example/db", "user name"),
                      ("postgresql://evil@attacker.example/${CENTINELA_PG_PW}", "database name"),
                      ("postgresql://evil@${CENTINELA_PG_PW}.attacker.example/db", "host"),
                      ("postgresql://evil:x${CENTINELA_PG_PW}@attacker.example/db", "password")):
        with pytest.raises(InvalidInput) as refused:
            store.check_url(bad)
        assert part in str(refused.value) and refused.value.field == "url", str(refused.value)
        with pytest.raises(InvalidInput):  # a URL stored before these checks is refused when it is used
            store.expand(bad)
        assert "the-server-s-own-secret" not in str(refused.value) and "pg-pw" not in str(refused.value)
    # Only the password is expanded; a `$` elsewhere that is no reference stays as written.
    assert store.expand("postgresql://r:${CENTINELA_PG_PW}@h/db?application_name=cost$") == \
        "postgresql://r:pg-pw@h/db?application_name=cost$"
    assert store.secrets_in("postgresql://r:${CENTINELA_PG_PW}@h/db") == ["pg-pw"]


def test_tables_queries_names_and_overlaps():
    assert store.check_table('bank."Card Tx"') == 'bank."Card Tx"'
    assert store.select_sql('bank."Card Tx"', None) == 'SELECT * FROM "bank"."Card Tx"'
    # Unquoted parts fold to lower case, as PostgreSQL folds them; quoted ones are kept.
    assert store.select_sql("Public.Card_Tx", None) == 'SELECT * FROM "public"."card_tx"'
    assert store.select_sql('Bank."Card_Tx"', None) == 'SELECT * FROM "bank"."Card_Tx"'
    for bad in ("card_tx; DROP TABLE x", "a.b.c", "", "1tx"):
        with pytest.raises(InvalidInput):
            store.check_table(bad)
    assert store.check_query(" SELECT 1;  ") == "SELECT 1"
    # The watermark is a bind parameter; the admin's query a subquery.
    assert store.source_sql(None, "SELECT * FROM t", "updated_at", since=True) == \
        'SELECT * FROM (SELECT * FROM t\n) AS centinela_source WHERE "updated_at" >= $1'
    # A query ending in a -- comment cannot swallow the closing parenthesis.
    assert store.source_sql(None, "SELECT * FROM t -- the card table", "w", since=False).startswith(
        "SELECT * FROM (SELECT * FROM t -- the card table\n) AS centinela_source WHERE")
    assert store.source_sql("t", None, 'we"ird', since=False).endswith('WHERE "we""ird" IS NOT NULL')
    assert store.parse_overlap(None, "timestamptz") == 600 and store.parse_overlap(None, "integer") == 0
    assert [store.parse_overlap(t, "timestamp") for t in ("90s", "10m", "2h", "1d", "30")] == [90, 600, 7200, 86400, 30]
    assert store.parse_overlap("500", "integer") == 500
    for bad, kind in (("-1m", "timestamp"), ("soon", "timestamp"), ("1.5", "integer"), ("2y", "timestamp")):
        with pytest.raises(InvalidInput):
            store.parse_overlap(bad, kind)
    assert store.describe_overlap(7200, "timestamp") == "2h" and store.describe_overlap(90, "timestamp") == "90s"
    with pytest.raises(InvalidInput):
        store.check_name("no spaces please")


def test_the_next_read_starts_at_the_watermark_minus_the_overlap():
    assert store.since_value(settings()) is None  # the first sync reads everything
    s = settings(last_watermark="2026-11-03T07:00:00")
    assert store.since_value(s) == datetime(2026, 11, 3, 6, 50, tzinfo=UTC)
    assert store.since_value(settings(watermark_type="timestamp", last_watermark="2026-11-03T07:00:00")) == \
        datetime(2026, 11, 3, 6, 50)
    assert store.since_value(settings(watermark_type="integer", overlap=50, last_watermark="1000")) == 950
    assert store.since_value(settings(watermark_type="date", overlap=3600, last_watermark="2026-11-03")) == \
        date(2026, 11, 2)


def test_the_new_watermark_is_the_highest_read_and_never_goes_back():
    zone = pa.timestamp("us", tz="America/Lima")
    table = pa.table({"updated_at": pa.array([datetime(2026, 11, 3, 2, 0, tzinfo=UTC), None], type=pa.timestamp("us", tz="UTC"))
                      .cast(zone)})
    assert store.max_watermark(table, settings()) == "2026-11-03T02:00:00"  # stored in UTC whatever the zone
    assert store.max_watermark(table, settings(last_watermark="2026-11-04T00:00:00")) == "2026-11-04T00:00:00"
    assert store.max_watermark(table.slice(0, 0), settings(last_watermark="x")) == "x"
    ints = pa.table({"updated_at": pa.array([3, 9, 4])})
    assert store.max_watermark(ints, settings(watermark_type="integer", last_watermark="10")) == "10"
    assert store.max_watermark(ints, settings(watermark_type="integer", last_watermark="8")) == "9"
    assert store.watermark_type(ints, "updated_at") == "integer"
    with pytest.raises(InvalidInput, match="must be a timestamp"):
        store.watermark_type(pa.table({"w": pa.array(["a"])}), "w")
    with pytest.raises(InvalidInput, match="no column"):
        store.watermark_type(ints, "nope")


def test_arrow_from_the_driver_is_normalised_for_duckdb():
    class Numeric(pa.ExtensionType):  # what ADBC's driver hands over for `numeric`: an opaque type over text
        def __init__(self):
            super().__init__(pa.string(), "numeric")

        def __arrow_ext_serialize__(self):
            return b""

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type, serialized):
            return cls()

        @property
        def type_name(self):
            return "numeric"

    storage = pa.array(["12.50", "-3", None, "NaN"])
    column = pa.ExtensionArray.from_storage(Numeric(), storage)
    table = store.normalize(pa.table({"amount": column, "id": pa.array(["a", "b", "c", "d"])}))
    assert table.schema.field("amount").type == pa.float64()
    assert table.column("amount").to_pylist() == [12.5, -3.0, None, None]


def test_merge_appends_new_ids_updates_changed_ones_and_skips_the_rest(conn, tmp_path):
    def parquet(name, rows):
        path = tmp_path / f"{name}.parquet"
        store.write_parquet(pa.table({"tx_id": [r[0] for r in rows], "ts": [datetime(2026, 11, 1, r[1]) for r in rows],
                                      "amount": [r[2] for r in rows], "customer_id": ["C1"] * len(rows)}), path)
        return path

    conn.execute("BEGIN")
    target = import_file(conn, parquet("first", [("A", 1, 10.0), ("B", 2, 20.0), ("C", 3, 30.0)]), "core").dataset
    staged = import_file(conn, parquet("next", [("C", 3, 30.0), ("B", 2, 25.0), ("D", 4, 40.0), ("E", 5, 50.0)]),
                         "staging").dataset
    tx_row_b = conn.execute(f"SELECT tx_row FROM {target.table} WHERE transaction_id = 'B'").fetchall()[0][0]
    merged = store.merge(conn, staged, target)
    store.drop_staging(conn, staged)
    # The registry row (what live scoring updates with every request) is not written by the merge:
    # the sync writes it last, just before it commits.
    assert conn.execute("SELECT row_count FROM datasets WHERE name = 'core'").fetchall() == [(3,)]
    rows, low, high = store.table_counts(conn, target)
    store.update_registry(conn, replace(target, row_count=rows, min_ts=low, max_ts=high))
    conn.execute("COMMIT")
    assert (merged.new, merged.updated, merged.skipped) == (2, 1, 1)
    assert merged.updated_ids == ["B"] and merged.changed_columns == {"amount": 1}
    rows = conn.execute(f"SELECT transaction_id, tx_row, amount FROM {target.table} ORDER BY tx_row").fetchall()
    assert rows == [("A", 0, 10.0), ("B", 1, 25.0), ("C", 2, 30.0), ("D", 3, 40.0), ("E", 4, 50.0)]
    assert tx_row_b == 1  # updated in place: its labels, case and scores stay attached
    assert conn.execute("SELECT name, row_count FROM datasets").fetchall() == [("core", 5)]
    assert not conn.execute(f"SELECT 1 FROM information_schema.tables WHERE table_name = '{staged.table_name}'").fetchall()


def test_merge_refuses_rows_whose_columns_changed(conn, tmp_path):
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    store.write_parquet(pa.table({"tx_id": ["A"], "ts": [datetime(2026, 11, 1)], "amount": [1.0]}), first)
    store.write_parquet(pa.table({"tx_id": ["B"], "ts": [datetime(2026, 11, 1)], "amount": [1.0], "channel": ["pos"]}),
                        second)
    conn.execute("BEGIN")
    target = import_file(conn, first, "core").dataset
    staged = import_file(conn, second, "staging").dataset
    with pytest.raises(InvalidInput, match="no longer have the dataset's columns"):
        store.merge(conn, staged, target)
    conn.execute("ROLLBACK")


def test_an_import_error_is_said_in_the_source_s_terms():
    table = pa.table({"tx_id": ["T1", "T2", "T3"]})
    error = InvalidInput("an empty value is not an amount (2 such values in this column; first rows: 2, 3).",
                         file="source core", row=2, column="amount", hint="Fix those values, or import with 'skip bad "
                         "rows' (--skip-bad-rows) to leave such rows out; they are counted and listed.")
    said = store.rephrase(error, settings(), table)
    assert str(said).startswith("source 'core', column 'amount': tx_id 'T2': an empty value is not an amount")
    assert "first keys: 'T2', 'T3'" in str(said) and "--skip-bad-rows" not in str(said)
    assert said.column == "amount" and said.row is None
    twice = store.rephrase(InvalidInput("transaction id 'T1' appears 2 times (rows 1 and 3).", file="x", row=3,
                                        column="tx_id"), settings(), table)
    assert "(at tx_id 'T1' and tx_id 'T3')" in str(twice)
    plain = UserError("no rows")
    assert store.rephrase(plain, settings(), table) is plain


def test_only_admins_manage_and_sync_sources(conn):
    app_users.add(as_user(conn, "cli:setup"), "ana", "a long password for ana", "analyst")
    analyst = Context(conn, "ana")
    for action in (lambda: sources.add_source(analyst, "core", "postgresql://r@h/db", watermark="w", table="t"),
                   lambda: sources.sync(analyst, "core"), lambda: sources.remove_source(analyst, "core")):
        with pytest.raises(Forbidden):
            action()
    with pytest.raises(InvalidInput, match="either --table or --query"):
        sources.add_source(as_user(conn, "cli:ops"), "core", "postgresql://r@h/db", watermark="w")
    with pytest.raises(UserError, match="no database source"):
        sources.sync(as_user(conn, "cli:ops"), "nope")
