"""The evaluation gate (`centinela promote --if-better`): a candidate version is promoted only if
it beats the active one on the same labelled rows of the last labelled days; refused otherwise,
and refused with a clear error when those rows hold too few labels. Real DuckDB, real training."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from application import labels as app_labels
from application import models as app_models
from application import runs as app_runs
from data.errors import Conflict, InvalidInput
from detectors.runs import default_split
from tests.conftest import as_user


def _audit(conn, action: str) -> list[tuple]:
    return conn.execute("SELECT actor, target, before_value, after_value FROM audit WHERE action = ? ORDER BY id",
                        [action]).fetchall()


def test_the_gate_promotes_a_better_version_refuses_an_equal_one_and_audits_both(conn, small_dataset):
    ctx = as_user(conn, "ops")
    detector = app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    window_from, newest = app_models.labelled_window(ctx, small_dataset, 7)
    assert newest == small_dataset.max_ts and window_from == newest - timedelta(days=7)

    first = app_models.retrain(ctx, small_dataset, hold_out_days=7)
    assert first.train_until == window_from  # the week the gate judges on was held out of training
    commits = ctx.commits
    gate = app_models.promote_if_better(ctx, small_dataset, first.id)
    assert ctx.commits == commits + 1  # one unit of work: the promotion and its audit row
    assert gate.promoted and "is better" in gate.reason
    assert app_runs.active(ctx, small_dataset).run.id == first.id
    on = gate.judged_on
    assert on["from"] == window_from and on["until"] == newest and on["labelled"] == gate.candidate["labelled"]
    assert on["labelled"] == gate.active["labelled"] and on["fraud"] == gate.candidate["fraud"] == gate.active["fraud"]
    assert gate.candidate["average_precision"] > gate.active["average_precision"]
    assert not gate.candidate["saw_these_labels"] and not gate.active["saw_these_labels"]  # a detector run learns no label
    assert gate.active["version"] == detector.id
    actor, target, before, after = _audit(conn, "promote")[-1]
    assert (actor, target, json.loads(before)) == ("ops", f"run #{first.id}", {"run": detector.id})
    assert json.loads(after)["gate"]["candidate"] == pytest.approx(gate.candidate["average_precision"])
    assert conn.execute("SELECT action, run_id FROM promotions ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchall() \
        == [("promote", first.id)]

    # The same labels and settings train the same model: not strictly better, so not promoted.
    second = app_models.retrain(ctx, small_dataset, hold_out_days=7)
    refused = app_models.promote_if_better(ctx, small_dataset, second.id)
    assert not refused.promoted and "is not better" in refused.reason
    assert refused.candidate["average_precision"] == pytest.approx(refused.active["average_precision"])
    assert app_runs.active(ctx, small_dataset).run.id == first.id
    actor, target, before, after = _audit(conn, "promote_refused")[-1]
    assert (actor, target, json.loads(before)) == ("ops", f"run #{second.id}", {"run": first.id})
    assert json.loads(after)["gate"]["reason"] == refused.reason

    # A version trained on every label has seen the week it is judged on, and the output says so.
    seen = app_models.retrain(ctx, small_dataset)
    flagged = app_models.promote_if_better(ctx, small_dataset, seen.id, metric="roc_auc")
    assert flagged.candidate["saw_these_labels"] and flagged.metric == "roc_auc"
    assert not flagged.promoted and "trained on labels of the days it is judged on" in flagged.reason
    assert app_runs.active(ctx, small_dataset).run.id == first.id
    assert flagged.judged_on["from"] == window_from  # the active version's cut-off is the window's start

    # The gate promotes only over the version it compared with: another one promoted meanwhile wins.
    with pytest.raises(Conflict, match="became active meanwhile"):
        app_runs.activate(ctx, small_dataset, second.id, "promote", expected_active=detector.id)
    assert app_runs.active(ctx, small_dataset).run.id == first.id
    with pytest.raises(Conflict, match="already ranks the queue"):
        app_models.promote_if_better(ctx, small_dataset, app_runs.active(ctx, small_dataset).run.id)
    with pytest.raises(InvalidInput, match="unknown metric"):
        app_models.promote_if_better(ctx, small_dataset, second.id, metric="accuracy")


def test_too_few_labels_in_the_window_is_a_clear_error_and_changes_nothing(conn, small_dataset, tmp_path):
    ctx = as_user(conn, "ops")
    detector = app_runs.fit(ctx, small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    window_from, _ = app_models.labelled_window(ctx, small_dataset, 7)
    # An analyst marks the last week's frauds 'unsure': they count as unlabelled, the week has no fraud left.
    frauds = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {small_dataset.table} WHERE is_fraud AND ts >= ?",
                                         [window_from]).fetchall()]
    assert frauds
    app_labels.label(ctx, small_dataset, frauds, "unsure")
    candidate = app_runs.fit(ctx, small_dataset, ["hbos"], train_until=default_split(small_dataset), activate=False)
    audit_rows = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    with pytest.raises(InvalidInput, match=r"too few labels to compare version #\d+ .*: 0 fraud and [\d,]+ legitimate; "
                                           r"at least 5 of each"):
        app_models.promote_if_better(ctx, small_dataset, candidate.id)
    assert app_runs.active(ctx, small_dataset).run.id == detector.id
    assert conn.execute("SELECT count(*) FROM audit").fetchone()[0] == audit_rows
    with pytest.raises(InvalidInput, match="1 to 366 days"):
        app_models.promote_if_better(ctx, small_dataset, candidate.id, days=0)
