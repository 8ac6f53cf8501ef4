"""Durability: a process killed with SIGKILL in the middle of an import or of labelling leaves a
database that opens, keeps every label committed before the kill, and holds nothing of the
interrupted import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from application import datasets as app_datasets
from application import labels as app_labels
from data.datasets import list_datasets
from data.db import connect
from data.synthetic import SyntheticConfig
from tests.conftest import ROOT, as_user, digest

LABELLER = """
import sys
from application import labels
from application.context import Context
from data.datasets import get_dataset
from data.db import connect

conn = connect(sys.argv[1])
dataset = get_dataset(conn, "kept")
ctx = Context(conn, "night-shift")
ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} ORDER BY tx_row").fetchall()]
for i, tx in enumerate(ids):
    labels.label(ctx, dataset, [tx], "fraud" if i % 2 else "legitimate")
    print(tx, flush=True)  # printed only once the label is committed
"""


def _tables(db: Path) -> set[str]:
    conn = duckdb.connect(str(db))
    try:
        return {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        conn.close()


def _kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_killed_during_import_leaves_nothing_behind(db_path, tmp_path):
    conn = connect(db_path)
    app_datasets.generate(as_user(conn), "kept", SyntheticConfig(rows=2_000, seed=1), features=False)
    before = digest(conn)
    big = tmp_path / "big.csv"
    conn.execute(f"""COPY (SELECT 'T' || i AS transaction_id, TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND AS timestamp,
                            (i % 997) + 0.5 AS amount, 'C' || (i % 5000) AS customer_id, 'Lima' AS city
                     FROM range(4000000) t(i)) TO '{big}' (HEADER)""")
    conn.close()
    env = {**os.environ, "CENTINELA_DB": str(db_path)}
    process = subprocess.Popen([sys.executable, "-m", "cli", "import", str(big), "--name", "interrupted"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Kill while it writes the dataset table: its progress line says when reading starts.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "Reading" not in process.stderr.readline():
        pass
    time.sleep(0.5)
    assert process.poll() is None, "the import finished before it could be interrupted: make the file larger"
    _kill(process)

    conn = connect(db_path)  # opens (DuckDB replays or discards its write-ahead log)
    assert [d.name for d in list_datasets(conn)] == ["kept"]
    assert digest(conn) == before  # not a row of the interrupted import, in any table
    conn.close()
    assert not {t for t in _tables(db_path) if t.startswith("tx_")} - {"tx_1"}


def test_killed_while_labelling_keeps_every_committed_label(db_path):
    conn = connect(db_path)
    dataset = app_datasets.generate(as_user(conn), "kept", SyntheticConfig(rows=2_000, seed=1), features=False).dataset
    conn.close()
    process = subprocess.Popen([sys.executable, "-c", LABELLER, str(db_path)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    committed = []
    while len(committed) < 40:
        line = process.stdout.readline()
        assert line, process.stderr.read()
        committed.append(line.strip())
    _kill(process)  # mid-stream: more labels were being written

    conn = connect(db_path)
    stored = dict(conn.execute("SELECT transaction_id, label FROM current_labels").fetchall())
    assert set(committed) <= set(stored)  # every label reported as committed survived
    assert all(stored[tx] in ("fraud", "legitimate") for tx in committed)
    audited = conn.execute("SELECT count(*) FROM audit WHERE action = 'label'").fetchone()[0]
    assert audited == len(stored)  # each label and its audit row landed together, or neither did
    app_labels.label(as_user(conn, "day-shift"), dataset, [committed[0]], "unsure")  # and the database takes writes again
    conn.close()
