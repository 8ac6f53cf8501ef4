"""A dataset filled by a database source and scored live at the same time: a live request during
a sync waits for the sync's commit (neither fails on DuckDB's write conflicts), and live requests
after a sync get exactly the features the batch computation gives them (the history in memory is
read again over the synced rows). Also: the import's non-fatal problems reach the sync's report,
its audit row and the command line. PostgreSQL is faked here (`FakeSource`: `fetch` answered from
an Arrow table); tests/e2e/test_database_sources.py runs the real driver."""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from application import database_sources as sources
from application import datasets as app_datasets
from application import live
from application import runs as app_runs
from application.context import Context
from cli.database_sources import sync_source
from cli.replay import items, read_transactions
from data import database_sources as store
from data import features as feature_store
from data.datasets import get_dataset
from data.errors import Conflict
from data.features import load_feature_set
from data.synthetic import SyntheticConfig
from detectors.base import DEFAULT_DETECTOR
from tests.conftest import as_user

ADMIN = "cli:ops"


class FakeSource:
    """A PostgreSQL table in memory: what `store.fetch` reads (rows at or past `since` on the
    watermark), changed by the test as the bank's system would change it."""

    def __init__(self, table: pa.Table):
        self.table = table

    def fetch(self, url, relation, query, watermark, since=None, limit_zero=False) -> pa.Table:
        if limit_zero:
            return self.table.slice(0, 0)
        if since is None:
            return self.table
        return self.table.filter(pc.greater_equal(self.table.column(watermark), pa.scalar(since, pa.int64())))


@pytest.fixture
def generated(conn, tmp_path):
    """3,000 generated transactions over 30 days as an Arrow table (with a `version` watermark), and
    the same rows as request items (in time order); the source starts with the first 18 days."""
    ctx = as_user(conn, ADMIN)
    full = app_datasets.generate(ctx, "generated", SyntheticConfig(rows=3_000, seed=11, days=30), features=False).dataset
    export = tmp_path / "all.parquet"
    conn.execute(f"COPY (SELECT * EXCLUDE (tx_row) FROM {full.table} ORDER BY ts, tx_row) TO '{export}' "
                 "(FORMAT parquet)")
    rows = conn.sql(f"SELECT * EXCLUDE (tx_row), row_number() OVER (ORDER BY ts, tx_row) AS version "
                        f"FROM {full.table} ORDER BY ts, tx_row").to_arrow_table()
    return rows, items(read_transactions(str(export)))


def _source(monkeypatch, table: pa.Table) -> FakeSource:
    fake = FakeSource(table)
    monkeypatch.setattr(store, "fetch", fake.fetch)
    monkeypatch.setattr(sources, "_without_watermark", lambda settings: 0)
    return fake


def _cut(rows: pa.Table, start: int, end: int) -> pa.Table:
    return rows.slice(start, end - start)


def _scored_source(conn, monkeypatch, generated, first: int):
    """Source 'core' holding the first `first` rows, synced (the dataset made, with features) and
    the default detector fitted on it: a dataset that is both a source's and scored live."""
    rows, _ = generated
    fake = _source(monkeypatch, _cut(rows, 0, first))
    ctx = as_user(conn, ADMIN)
    sources.add_source(ctx, "core", "postgresql://reader@db.bank.pe/core", table="card_tx", watermark="version",
                       timezone="America/Lima")
    assert sources.sync(ctx, "core").new == first
    dataset = get_dataset(conn, "core")
    app_runs.fit(ctx, dataset, [DEFAULT_DETECTOR])
    return ctx, fake


def _changed(fake: FakeSource, rows: pa.Table, end: int, corrected: list[int]) -> None:
    """The source after the bank's system changed it: rows up to `end`, the amounts of rows
    `corrected` raised by 1,000 (their watermark bumped past every other)."""
    table = _cut(rows, 0, end)
    amount = table.column("amount").to_pylist()
    version = table.column("version").to_pylist()
    for i in corrected:
        amount[i] += 1000.0
        version[i] = end + 1 + i
    table = table.set_column(table.column_names.index("amount"), "amount", pa.array(amount, pa.float64()))
    fake.table = table.set_column(table.column_names.index("version"), "version", pa.array(version, pa.int64()))


def _score(ctx: Context, batch: list[dict]) -> None:
    scored = live.score(ctx, "core", batch, api_key="terminal")
    assert scored.stored == len(batch)


def _features(conn):
    dataset = get_dataset(conn, "core")
    return conn.execute(f"SELECT * FROM {load_feature_set(conn, dataset).table} ORDER BY tx_row").df()


def _assert_batch_parity(conn, ctx: Context) -> None:
    """Every stored row's features (computed live, or by the sync) equal the batch computation's."""
    online = _features(conn)
    app_datasets.compute_features(ctx, get_dataset(conn, "core"))
    batch = _features(conn)
    assert list(online.columns) == list(batch.columns) and len(online) == len(batch)
    assert len(online) == get_dataset(conn, "core").row_count
    a, b = online.to_numpy(dtype=float), batch.to_numpy(dtype=float)
    assert (np.isnan(a) == np.isnan(b)).all()
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True)


def test_live_requests_after_a_sync_get_the_batch_features(conn, monkeypatch, generated):
    rows, requests = generated
    ctx, fake = _scored_source(conn, monkeypatch, generated, first=1_800)
    _score(ctx, requests[1_800:1_805])  # one by one would be slower; the in-memory history serves these
    _score(ctx, requests[1_805:2_100])
    # The bank's system then adds rows later than those scored live, and corrects 20 old amounts
    # (which changes the backward windows of those customers' later rows, live ones included).
    source_rows = [*range(0, 1_800), *range(2_100, 2_500)]
    _changed(fake, rows.take(source_rows), len(source_rows), corrected=list(range(100, 1_700, 80)))
    report = sources.sync(ctx, "core")
    assert (report.new, report.updated) == (400, 20), report
    assert get_dataset(conn, "core").row_count == 1_800 + 300 + 400
    _score(ctx, requests[2_500:2_503])
    _score(ctx, requests[2_503:2_800])
    _assert_batch_parity(conn, ctx)


def test_a_live_request_during_a_sync_waits_for_it_and_neither_fails(conn, monkeypatch, generated):
    """The sync replaces the feature table and updates the registry row that every live request
    updates: DuckDB refuses the second writer ("Conflict on update!", or a commit into a table
    another transaction replaced). Live scoring is held while the sync writes, so the request
    waits (longer than its own conflict retries would last) and then scores over the synced rows."""
    rows, requests = generated
    ctx, fake = _scored_source(conn, monkeypatch, generated, first=1_800)
    _score(ctx, requests[1_800:1_900])
    _changed(fake, rows.take([*range(0, 1_800), *range(1_900, 2_200)]), 2_100, corrected=[50, 500])
    inside, release = threading.Event(), threading.Event()
    real = feature_store.compute_features

    def paused(*args, **kwargs):
        result = real(*args, **kwargs)  # the feature table replaced, not yet committed
        inside.set()
        assert release.wait(60)
        return result

    monkeypatch.setattr(feature_store, "compute_features", paused)
    outcome: dict[str, object] = {}

    def run(name, action):
        try:
            outcome[name] = action()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            outcome[name] = exc

    syncing = threading.Thread(target=run, args=("sync", lambda: sources.sync(Context(conn.cursor(), ADMIN), "core")))
    syncing.start()
    assert inside.wait(120), outcome
    scoring = threading.Thread(target=run, args=("score", lambda: live.score(
        Context(conn.cursor(), ADMIN), "core", requests[2_200:2_210], api_key="terminal")))
    scoring.start()
    deadline = time.monotonic() + 4  # well past live scoring's own retries on a conflict (about 0.6 s)
    while "score" not in outcome and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "score" not in outcome, f"the live request did not wait for the sync: {outcome['score']!r}"
    release.set()
    syncing.join(120)
    scoring.join(120)
    assert isinstance(outcome["sync"], sources.SyncReport), outcome["sync"]
    assert (outcome["sync"].new, outcome["sync"].updated) == (300, 2)
    assert isinstance(outcome["score"], live.Scored), outcome["score"]
    assert outcome["score"].stored == 10
    monkeypatch.setattr(feature_store, "compute_features", real)
    assert get_dataset(conn, "core").row_count == 1_800 + 100 + 300 + 10
    _score(ctx, requests[2_210:2_300])
    _assert_batch_parity(conn, ctx)


def test_a_conflict_that_outlasts_the_retries_is_a_conflict_saying_to_sync_again(conn, monkeypatch, generated):
    import duckdb

    rows, _ = generated
    ctx, fake = _scored_source(conn, monkeypatch, generated, first=1_000)
    fake.table = _cut(rows, 0, 1_100)
    attempts = []

    def conflicting(conn_, target):
        attempts.append(1)
        raise duckdb.TransactionException("TransactionContext Error: Conflict on update!")

    monkeypatch.setattr(store, "update_registry", conflicting)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    with pytest.raises(Conflict, match="Sync again"):
        sources.sync(ctx, "core")
    assert len(attempts) == sources.SYNC_ATTEMPTS
    assert get_dataset(conn, "core").row_count == 1_000  # nothing stored
    monkeypatch.undo()


def test_values_set_to_empty_are_reported_by_key_in_the_report_the_audit_and_the_command_line(
        conn, monkeypatch, capsys):
    """An optional value that does not parse is stored as empty (the import's rule) — and, in a
    sync, replaces the stored value: the report, the audit row and `centinela sync` say so, by key."""
    table = pa.table({"tx_id": ["T1", "T2", "T3"], "ts": pa.array([1_700_000_000_000_000 + i * 60_000_000
                                                                   for i in range(3)], pa.timestamp("us")),
                      "amount": [10.0, 20.0, 30.0], "lat": ["-12.05", "-12.06", "-12.07"],
                      "version": pa.array([1, 2, 3], pa.int64())})
    fake = _source(monkeypatch, table)
    ctx = as_user(conn, ADMIN)
    sources.add_source(ctx, "pos", "postgresql://reader@db.bank.pe/core", table="pos_tx", watermark="version",
                       maps=["transaction_id=tx_id", "timestamp=ts", "amount=amount", "lat=lat"])
    first = sources.sync(ctx, "pos")
    assert first.new == 3 and first.problems == [] and first.skipped_rows == 0
    fake.table = table.set_column(3, "lat", pa.array(["-12.05", "north", "-12.07"])).set_column(
        4, "version", pa.array([1, 9, 3], pa.int64()))
    assert sync_source(argparse.Namespace(name="pos", json=False), ctx) == 0  # `centinela sync pos`
    printed = capsys.readouterr().out
    second = sources.source_settings(ctx, "pos").last_sync  # the report, as stored with the source
    assert second["updated"] == 1 and second["changed_columns"] == {"lat": 1}
    assert len(second["problems"]) == 1, second["problems"]
    problem = second["problems"][0]
    assert (problem["column"], problem["role"], problem["count"], problem["keys"], problem["value"]) == \
        ("lat", "lat", 1, ["T2"], "north")
    assert problem["action"] == "value set to empty" and "rows" not in problem
    audited = json.loads(conn.execute("SELECT after_value FROM audit WHERE action = 'source_sync' ORDER BY id DESC "
                                      "LIMIT 1").fetchall()[0][0])
    assert audited["problems"] == second["problems"] and audited["skipped_rows"] == 0 and "notes" in audited
    assert "problem: column 'lat' (lat), 1 value (first tx_id 'T2'): 'north'" in printed, printed
    assert "value set to empty" in printed
