"""Backups: a copy taken while analysts keep labelling holds every label acknowledged before it
began (each with its audit row) and nothing half-written; the copy is verified by reopening it;
restore puts it back and refuses a folder that is not a whole backup."""

from __future__ import annotations

import threading
import time

import duckdb
import pytest

from application import backups
from application import datasets as app_datasets
from application import labels as app_labels
from application import runs as app_runs
from application.context import Context
from data.audit import audit_log
from data.backup import MANIFEST, Manifest, sha256
from data.db import connect
from data.errors import Conflict, InvalidInput
from data.synthetic import SyntheticConfig
from detectors.runs import get_run, load_model
from tests.conftest import as_user, digest


def _label_loop(conn, dataset, stop: threading.Event, acked: list[str]) -> None:
    """An analyst labelling one transaction at a time; an id is appended once its label committed."""
    ctx = Context(conn.cursor(), "night-shift")
    ids = [r[0] for r in ctx.conn.execute(f"SELECT transaction_id FROM {dataset.table} ORDER BY tx_row").fetchall()]
    for i, tx in enumerate(ids):
        if stop.is_set():
            return
        app_labels.label(ctx, dataset, [tx], "fraud" if i % 2 else "legitimate")
        acked.append(tx)


def test_a_backup_during_a_labelling_loop_holds_every_acknowledged_label(conn, small_dataset, tmp_path):
    app_runs.fit(as_user(conn), small_dataset, ["isolation_forest"])
    stop, acked = threading.Event(), []
    worker = threading.Thread(target=_label_loop, args=(conn, small_dataset, stop, acked))
    worker.start()
    try:
        while len(acked) < 30:
            time.sleep(0.01)
        before = list(acked)
        done = backups.backup(Context(conn.cursor(), "boss"), tmp_path / "nightly")
        after = list(acked)
        time.sleep(0.2)  # labelling goes on after the backup
    finally:
        stop.set()
        worker.join()
    assert len(acked) > len(after) >= len(before)  # the loop really ran across the backup

    copy = duckdb.connect(str(done.folder / "centinela.duckdb"), read_only=True)
    labelled = [r[0] for r in copy.execute("SELECT transaction_id FROM labels ORDER BY id").fetchall()]
    assert labelled[:len(before)] == before  # every label acknowledged before the backup began
    assert labelled == after[:len(labelled)]  # and then a prefix of the loop's: nothing skipped, nothing partial
    audited = copy.execute("SELECT count(*) FROM audit WHERE action = 'label'").fetchall()[0][0]
    assert audited == len(labelled)  # each label with its audit row, or neither
    assert copy.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 1
    copy.close()

    manifest = Manifest.read(done.folder)
    assert manifest.tables["labels"] == len(labelled) and manifest.tables == done.manifest.tables
    (artifact, expected), = manifest.models.items()
    assert sha256(done.folder / "models" / artifact) == expected
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nightly")]  # no partial folder left
    entry = audit_log(conn, actions=("backup",)).iloc[0]
    assert entry["actor"] == "boss" and entry["target"] == str(done.folder)


def test_a_backup_refuses_a_folder_in_use_and_changes_nothing(conn, small_dataset, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    before = digest(conn)
    with pytest.raises(Conflict, match="already exists"):
        backups.backup(as_user(conn), taken)
    assert digest(conn) == before and [p.name for p in taken.iterdir()] == ["notes.txt"]


def test_restore_round_trip(db_path, tmp_path):
    conn = connect(db_path)
    dataset = app_datasets.generate(as_user(conn), "kept", SyntheticConfig(rows=2_000, seed=3, days=10)).dataset
    app_runs.fit(as_user(conn), dataset, ["isolation_forest"])
    ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} LIMIT 5").fetchall()]
    app_labels.label(as_user(conn, "ana"), dataset, ids, "fraud")
    at_backup = {k: v for k, v in digest(conn).items() if k != "audit"}
    done = backups.backup(as_user(conn, "boss"), tmp_path / "b1")
    # Work after the backup, then a mistake: it is what the restore takes back.
    app_labels.label(as_user(conn, "ana"), dataset, ids, "legitimate")
    app_datasets.delete(as_user(conn), dataset)
    models = sorted(p.name for p in (db_path.parent / "models").iterdir())
    conn.close()
    (db_path.parent / "models" / models[0]).write_bytes(b"damaged")

    restored = backups.restore(done.folder, db_path, actor="cli:ops")
    assert restored.kept.exists()  # the replaced file is kept beside
    conn = connect(db_path)
    assert {k: v for k, v in digest(conn).items() if k != "audit"} == at_backup
    entry = audit_log(conn, actions=("backup_restore",)).iloc[0]
    assert entry["actor"] == "cli:ops" and entry["target"] == str(done.folder)
    assert load_model(conn, get_run(conn, 1)) is not None  # the model file is back, hash checked
    conn.close()


def test_restore_refuses_what_is_not_a_whole_backup(db_path, tmp_path):
    conn = connect(db_path)
    done = backups.backup(as_user(conn), tmp_path / "b1")
    before = digest(conn)
    conn.close()
    with pytest.raises(InvalidInput, match="not a Centinela backup"):
        backups.restore(tmp_path, db_path)
    manifest = (done.folder / MANIFEST).read_text()
    (done.folder / MANIFEST).write_text(manifest.replace('"users": 0', '"users": 1'))
    with pytest.raises(InvalidInput, match="rows differ from the manifest in users"):
        backups.restore(done.folder, db_path)
    conn = connect(db_path)
    assert digest(conn) == before
    conn.close()
