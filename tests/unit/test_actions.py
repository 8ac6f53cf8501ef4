"""Every user action of the application layer, called directly: it commits exactly one unit of
work, writes its audit row (who, what, before/after) in that same transaction, and a failure at
any point, the audit row included, leaves the database exactly as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import application.cases
import application.datasets
import application.labels
import application.models
import application.runs
import application.users
from application import cases, datasets, labels, models, runs, users
from application.context import Context
from data.audit import audit_log
from data.db import connect
from data.errors import UserError
from data.synthetic import SyntheticConfig
from detectors.runs import default_split
from tests.conftest import digest

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A database with a dataset (features computed), a detector run and a user, built once."""
    folder = tmp_path_factory.mktemp("actions-template")
    conn = connect(folder / "centinela.duckdb")
    ctx = Context(conn, "setup")
    dataset = datasets.generate(ctx, "bank", SyntheticConfig(rows=5_000, seed=7, fraud_rate=0.02, days=30)).dataset
    runs.fit(ctx, dataset, ["isolation_forest"], train_until=default_split(dataset))
    users.add(ctx, "rosa", PASSWORD, "analyst")
    conn.close()
    return folder


@pytest.fixture
def conn(template, tmp_path, monkeypatch):
    """A fresh copy of the template database (and its model folder) for each test."""
    shutil.copytree(template, tmp_path / "db")
    monkeypatch.setenv("CENTINELA_DB", str(tmp_path / "db" / "centinela.duckdb"))
    connection = connect(tmp_path / "db" / "centinela.duckdb")
    yield connection
    connection.close()


def _ids(conn, n: int = 3) -> list[str]:
    return [r[0] for r in conn.execute("SELECT transaction_id FROM tx_1 ORDER BY tx_row LIMIT ?", [n]).fetchall()]


def _last(conn, action: str) -> dict:
    row = audit_log(conn, actions=(action,)).iloc[0]
    return {**row.to_dict(), "before": json.loads(row["before"]) if row["before"] else None,
            "after": json.loads(row["after"]) if row["after"] else None}


def _models(conn) -> set[str]:
    return {p.name for p in (Path(conn.execute("SELECT path FROM duckdb_databases() WHERE database_name = "
                                               "current_database()").fetchall()[0][0]).parent / "models").glob("*")}


def once(conn, monkeypatch, module, action, actor: str = "ana"):
    """Run `action(ctx)` twice: first with the audit write broken, which must leave the database
    (and the model folder) exactly as it was; then for real, which must commit once."""
    before, files = digest(conn), _models(conn)

    def broken(*args, **kwargs):
        raise RuntimeError("the audit write failed")

    with monkeypatch.context() as patch:
        patch.setattr(module, "record", broken)
        with pytest.raises(RuntimeError, match="audit write failed"):
            action(Context(conn, actor))
    assert digest(conn) == before and _models(conn) == files
    ctx = Context(conn, actor)
    result = action(ctx)
    assert ctx.commits == 1, f"{ctx.commits} commits"
    return result


def test_generate_and_import(conn, monkeypatch, tmp_path):
    created = once(conn, monkeypatch, application.datasets,
                   lambda c: datasets.generate(c, "more", SyntheticConfig(rows=2_000, seed=3)))
    assert created.features is not None and created.dataset.row_count == 2_000
    row = _last(conn, "generate")
    assert (row["actor"], row["target"], row["after"]["rows"], row["after"]["seed"]) == ("ana", "more", 2_000, 3)
    assert row["after"]["features"] == created.features.version
    csv = tmp_path / "bank.csv"
    csv.write_text("timestamp,amount\n2024-01-01 10:00,5\n2024-01-02 11:00,7\n")
    imported = once(conn, monkeypatch, application.datasets, lambda c: datasets.import_dataset(c, csv, "file"))
    assert imported.report.rows_stored == 2 and imported.features is not None
    assert _last(conn, "import")["after"]["rows"] == 2 and _last(conn, "import")["after"]["rows_read"] == 2


def test_compute_features(conn, monkeypatch):
    computed = once(conn, monkeypatch, application.datasets, lambda c: datasets.compute_features(c, "bank", 3))
    row = _last(conn, "features")
    assert row["after"]["label_delay_days"] == 3 and row["after"]["version"] == computed.version
    assert row["before"]["version"] != computed.version  # another delay, another feature version


def test_delete_restore_and_empty_the_trash(conn, monkeypatch):
    deleted = once(conn, monkeypatch, application.datasets, lambda c: datasets.delete(c, "bank"))
    assert _last(conn, "delete")["before"] == {"rows": 5_000}
    once(conn, monkeypatch, application.datasets, lambda c: datasets.restore(c, deleted.id))
    assert _last(conn, "restore")["target"] == "bank"
    datasets.delete(Context(conn, "ana"), "bank")
    assert once(conn, monkeypatch, application.datasets, datasets.empty_trash) == 1
    assert _last(conn, "purge")["target"] == "bank"


def test_fit_save_threshold_and_activate(conn, monkeypatch):
    run = once(conn, monkeypatch, application.runs, lambda c: runs.fit(c, "bank", ["hbos"], contamination=0.02))
    row = _last(conn, "fit")
    assert row["target"] == f"run #{run.id}" and row["after"]["detector"] == "hbos"
    assert runs.active(Context(conn, "x"), "bank").run.id == run.id  # activated in the same unit of work
    once(conn, monkeypatch, application.runs, lambda c: runs.save_threshold(c, run.id, 0.05))
    assert _last(conn, "threshold")["before"] == {"contamination": 0.02}
    assert runs.active(Context(conn, "x"), "bank").run.threshold is not None
    once(conn, monkeypatch, application.runs, lambda c: runs.activate(c, "bank", 1))
    assert _last(conn, "rollback")["before"] == {"run": run.id} and _last(conn, "rollback")["after"] == {"run": 1}


def test_label_undo_and_case_changes(conn, monkeypatch, tmp_path):
    ids = _ids(conn)
    done = once(conn, monkeypatch, application.labels, lambda c: labels.label(c, "bank", ids, "fraud", close=True))
    row = _last(conn, "label")
    assert row["actor"] == "ana" and row["after"]["batch"] == done.batch_id and row["after"]["closed"]
    once(conn, monkeypatch, application.labels, lambda c: labels.undo(c, done.batch_id))
    assert _last(conn, "undo_labels")["after"] == {"labels": 3}
    once(conn, monkeypatch, application.cases, lambda c: cases.change(c, "bank", ids[:1], status="in_review",
                                                                      assignee="luis"))
    assert _last(conn, "case")["after"] == {"transactions": ids[:1], "status": "in_review", "assignee": "luis"}
    file = tmp_path / "labels.csv"
    file.write_text(f"transaction_id,label\n{ids[0]},fraud\n{ids[1]},legitimate\n")
    from_file = once(conn, monkeypatch, application.labels, lambda c: labels.label_file(c, "bank", str(file)))
    assert from_file.count == 2
    assert _last(conn, "label")["after"]["labels"] == {"fraud": 1, "legitimate": 1}


def test_retrain_promote_and_roll_back(conn, monkeypatch):
    version = once(conn, monkeypatch, application.runs, lambda c: models.retrain(c, "bank"))
    assert _last(conn, "retrain")["after"]["built_on"] == 1 and version.kind == "supervised"
    once(conn, monkeypatch, application.runs, lambda c: models.promote(c, "bank", version.id))
    assert _last(conn, "promote")["after"] == {"run": version.id}
    once(conn, monkeypatch, application.runs, lambda c: models.rollback(c, "bank", 1))
    assert _last(conn, "rollback")["before"] == {"run": version.id}


def test_users_and_sign_in(conn, monkeypatch):
    once(conn, monkeypatch, application.users, lambda c: users.add(c, "mia", PASSWORD, "manager"), actor="boss")
    assert _last(conn, "user_add")["after"] == {"role": "manager"}
    once(conn, monkeypatch, application.users, lambda c: users.change(c, "mia", role="analyst"), actor="boss")
    change = _last(conn, "user_change")
    assert change["before"] == {"role": "manager", "disabled": False} and change["after"]["role"] == "analyst"
    user = once(conn, monkeypatch, application.users, lambda c: users.sign_in(c, "rosa", PASSWORD))
    assert user.role == "analyst" and _last(conn, "login")["actor"] == "rosa"
    once(conn, monkeypatch, application.users, users.sign_out, actor="rosa")
    assert _last(conn, "logout")["target"] == "rosa"


def test_a_failed_sign_in_is_recorded_and_committed(conn):
    ctx = Context(conn, "rosa")
    with pytest.raises(Exception, match="wrong user name or password"):
        users.sign_in(ctx, "rosa", "not the password")
    assert ctx.commits == 1 and _last(conn, "login_failed")["target"] == "rosa"  # what the lock-out counts


def test_a_refused_action_changes_nothing_and_writes_no_audit_row(conn):
    before = digest(conn)
    for refused in (lambda c: labels.label(c, "bank", ["NOPE"], "fraud"),
                    lambda c: runs.fit(c, "bank", ["hbos"], contamination=0.9),
                    lambda c: datasets.generate(c, "bank"),  # the name is taken
                    lambda c: users.change(c, "setup-admin-that-does-not-exist", role="admin"),
                    lambda c: runs.activate(c, "bank", 1)):  # already active
        ctx = Context(conn, "ana")
        with pytest.raises(UserError):
            refused(ctx)
        assert ctx.commits == 0
    assert digest(conn) == before
