"""The audit trail records every traceable action with who, what and before/after, and only
ever grows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.audit import audit_log
from data.cases import add_labels, undo_labels, update_cases
from data.datasets import delete_dataset, purge_deleted, restore_dataset
from data.errors import DataError
from data.ingest import import_file
from data.users import add_user, authenticate
from detectors.runs import default_split, fit_run, set_contamination
from detectors.supervised import promote, retrain, rollback


def _last(conn, action: str) -> dict:
    row = audit_log(conn, actions=(action,)).iloc[0]
    return {**row.to_dict(), "before": json.loads(row["before"]) if row["before"] else None,
            "after": json.loads(row["after"]) if row["after"] else None}


def test_every_action_is_recorded_with_who_and_before_after(conn, small_dataset, tmp_path: Path):
    dataset = small_dataset
    run = fit_run(conn, dataset, ["isolation_forest"], train_until=default_split(dataset), created_by="dana")
    assert _last(conn, "fit")["actor"] == "dana" and _last(conn, "fit")["after"]["detector"] == "isolation_forest"

    set_contamination(conn, run.id, 0.02, actor="dana")
    threshold = _last(conn, "threshold")
    assert threshold["before"] == {"contamination": 0.01} and threshold["after"] == {"contamination": 0.02}

    ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} LIMIT 3").fetchall()]
    first = add_labels(conn, dataset, ids[:1], "fraud", "ana", "stolen card")
    add_labels(conn, dataset, ids[:1], "legitimate", "luis")
    label = _last(conn, "label")
    assert label["actor"] == "luis" and label["target"] == ids[0]
    assert label["before"] == {"labels": {ids[0]: "fraud"}} and label["after"]["label"] == "legitimate"
    undo_labels(conn, first, "ana")
    assert _last(conn, "undo_labels")["target"] == first
    update_cases(conn, dataset, ids, "luis", status="closed", reason="duplicate")
    assert _last(conn, "case")["target"] == "3 transactions" and _last(conn, "case")["after"]["status"] == "closed"

    version = retrain(conn, dataset, created_by="dana")
    assert _last(conn, "retrain")["after"]["built_on"] == run.id
    promote(conn, dataset, version.id, "marta")
    assert _last(conn, "promote")["before"] == {"run": run.id} and _last(conn, "promote")["after"] == {"run": version.id}
    rollback(conn, dataset, run.id, "marta")
    assert _last(conn, "rollback")["before"] == {"run": version.id}

    add_user(conn, "rosa", "a long enough password", "manager", "boss")
    authenticate(conn, "rosa", "a long enough password")
    with pytest.raises(DataError):
        authenticate(conn, "rosa", "not the password")
    assert _last(conn, "login")["actor"] == "rosa" and _last(conn, "login_failed")["target"] == "rosa"

    csv = tmp_path / "bank.csv"
    csv.write_text("timestamp,amount\n2024-01-01 10:00,5\n2024-01-02 11:00,7\n")
    imported = import_file(conn, csv, "bank", actor="boss").dataset
    assert _last(conn, "import")["after"]["rows"] == 2 and _last(conn, "import")["actor"] == "boss"
    delete_dataset(conn, "bank", "boss")
    restore_dataset(conn, imported.id, "boss")
    delete_dataset(conn, "bank", "boss")
    purge_deleted(conn, "boss")
    assert [a for a in audit_log(conn, actor="boss")["action"]][:5] == ["purge", "delete", "restore", "delete", "import"]
    assert _last(conn, "purge")["before"] == {"rows": 2}

    # Filters: by text (literally; LIKE wildcards are plain characters) and by action.
    assert list(audit_log(conn, text="stolen card")["action"]) == ["label"]
    assert audit_log(conn, text="%").empty or all("%" in str(v) for v in audit_log(conn, text="%")["after"])


def test_a_rejected_action_leaves_no_audit_row(conn, small_dataset, tmp_path: Path):
    before = len(audit_log(conn))
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,amount\n2024-01-01,ten\n")
    with pytest.raises(DataError):
        import_file(conn, bad, "bad", actor="boss")
    with pytest.raises(DataError):
        add_labels(conn, small_dataset, ["NOPE"], "fraud", "ana")
    with pytest.raises(DataError):
        set_contamination(conn, 9_999, 0.02, actor="boss")
    assert len(audit_log(conn)) == before
