"""The audit trail records every traceable action with who, what and before/after, and only
ever grows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from application import cases as app_cases
from application import datasets as app_datasets
from application import labels as app_labels
from application import models as app_models
from application import runs as app_runs
from application import users as app_users
from data.audit import audit_log
from data.errors import UserError
from detectors.runs import default_split
from tests.conftest import as_user


def _last(conn, action: str) -> dict:
    row = audit_log(conn, actions=(action,)).iloc[0]
    return {**row.to_dict(), "before": json.loads(row["before"]) if row["before"] else None,
            "after": json.loads(row["after"]) if row["after"] else None}


def test_every_action_is_recorded_with_who_and_before_after(conn, small_dataset, tmp_path: Path):
    dataset = small_dataset
    run = app_runs.fit(as_user(conn, "dana"), dataset, ["isolation_forest"], train_until=default_split(dataset))
    assert _last(conn, "fit")["actor"] == "dana" and _last(conn, "fit")["after"]["detector"] == "isolation_forest"

    app_runs.save_threshold(as_user(conn, "dana"), run.id, 0.02)
    threshold = _last(conn, "threshold")
    assert threshold["before"] == {"contamination": 0.01} and threshold["after"] == {"contamination": 0.02}

    ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} LIMIT 3").fetchall()]
    first = app_labels.label(as_user(conn, "ana"), dataset, ids[:1], "fraud", note="stolen card").batch_id
    app_labels.label(as_user(conn, "luis"), dataset, ids[:1], "legitimate")
    label = _last(conn, "label")
    assert label["actor"] == "luis" and label["target"] == ids[0]
    assert label["before"] == {"labels": {ids[0]: "fraud"}} and label["after"]["label"] == "legitimate"
    app_labels.undo(as_user(conn, "ana"), first)
    assert _last(conn, "undo_labels")["target"] == first
    app_cases.change(as_user(conn, "luis"), dataset, ids, status="closed", reason="duplicate")
    assert _last(conn, "case")["target"] == "3 transactions" and _last(conn, "case")["after"]["status"] == "closed"

    version = app_models.retrain(as_user(conn, "dana"), dataset)
    assert _last(conn, "retrain")["after"]["built_on"] == run.id
    app_models.promote(as_user(conn, "marta"), dataset, version.id)
    assert _last(conn, "promote")["before"] == {"run": run.id} and _last(conn, "promote")["after"] == {"run": version.id}
    app_models.rollback(as_user(conn, "marta"), dataset, run.id)
    assert _last(conn, "rollback")["before"] == {"run": version.id}

    app_users.add(as_user(conn, "boss"), "rosa", "a long enough password", "manager")
    app_users.sign_in(as_user(conn, "rosa"), "rosa", "a long enough password")
    with pytest.raises(UserError):
        app_users.sign_in(as_user(conn, "rosa"), "rosa", "not the password")
    assert _last(conn, "login")["actor"] == "rosa" and _last(conn, "login_failed")["target"] == "rosa"

    csv = tmp_path / "bank.csv"
    csv.write_text("timestamp,amount\n2024-01-01 10:00,5\n2024-01-02 11:00,7\n")
    imported = app_datasets.import_dataset(as_user(conn, "boss"), csv, "bank", features=False).report.dataset
    assert _last(conn, "import")["after"]["rows"] == 2 and _last(conn, "import")["actor"] == "boss"
    app_datasets.delete(as_user(conn, "boss"), "bank")
    app_datasets.restore(as_user(conn, "boss"), imported.id)
    app_datasets.delete(as_user(conn, "boss"), "bank")
    app_datasets.empty_trash(as_user(conn, "boss"))
    assert [a for a in audit_log(conn, actor="boss")["action"]][:5] == ["purge", "delete", "restore", "delete", "import"]
    assert _last(conn, "purge")["before"] == {"rows": 2}

    # Filters: by text (literally; LIKE wildcards are plain characters) and by action.
    assert list(audit_log(conn, text="stolen card")["action"]) == ["label"]
    assert audit_log(conn, text="%").empty or all("%" in str(v) for v in audit_log(conn, text="%")["after"])


def test_a_rejected_action_leaves_no_audit_row(conn, small_dataset, tmp_path: Path):
    before = len(audit_log(conn))
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,amount\n2024-01-01,ten\n")
    with pytest.raises(UserError):
        app_datasets.import_dataset(as_user(conn, "boss"), bad, "bad", features=False)
    with pytest.raises(UserError):
        app_labels.label(as_user(conn, "ana"), small_dataset, ["NOPE"], "fraud")
    with pytest.raises(UserError):
        app_runs.save_threshold(as_user(conn, "boss"), 9_999, 0.02)
    assert len(audit_log(conn)) == before
