"""Labels and cases: append-only history, undo, workflow, concurrent analysts, safe export."""

from __future__ import annotations

import io
import threading

import pandas as pd
import pytest

from application import cases as app_cases
from application import labels as app_labels
from data.cases import (
    case_history,
    case_state,
    current_labels,
    label_history,
    labelled_cases,
    last_action,
)
from data.db import connect
from data.errors import UserError
from data.export import safe_csv
from tests.conftest import as_user, digest


def _ids(conn, dataset, n: int, offset: int = 0) -> list[str]:
    return [r[0] for r in conn.execute(f"SELECT transaction_id FROM {dataset.table} ORDER BY tx_row LIMIT ? OFFSET ?",
                                       [n, offset]).fetchall()]


def test_latest_label_is_current_and_history_is_kept(conn, small_dataset):
    [tx] = _ids(conn, small_dataset, 1)
    app_labels.label(as_user(conn, "ana"), small_dataset, [tx], "unsure", note="looks odd")
    app_labels.label(as_user(conn, "bob"), small_dataset, [tx], "fraud", note="customer confirmed")
    assert current_labels(conn, small_dataset, [tx]) == {tx: "fraud"}
    history = label_history(conn, small_dataset, tx)
    assert list(history["label"]) == ["fraud", "unsure"] and list(history["analyst"]) == ["bob", "ana"]
    assert list(history["note"]) == ["customer confirmed", "looks odd"]


def test_undo_restores_the_previous_label_without_deleting(conn, small_dataset):
    ids = _ids(conn, small_dataset, 4)
    app_labels.label(as_user(conn, "ana"), small_dataset, ids[:2], "legitimate")
    batch = app_labels.label(as_user(conn, "ana"), small_dataset, ids, "fraud").batch_id
    assert last_action(conn, small_dataset, "ana")["batch_id"] == batch
    assert app_labels.undo(as_user(conn, "ana"), batch) == 4
    assert current_labels(conn, small_dataset, ids) == {ids[0]: "legitimate", ids[1]: "legitimate"}
    assert conn.execute("SELECT count(*) FROM labels").fetchall()[0][0] == 6  # nothing deleted
    assert label_history(conn, small_dataset, ids[0])["undone"].tolist() == [True, False]
    with pytest.raises(UserError, match="already undone"):
        app_labels.undo(as_user(conn, "ana"), batch)
    assert last_action(conn, small_dataset, "ana")["count"] == 2  # the next Undo takes the earlier action back


def test_labels_survive_a_restart(db_path, small_dataset, conn):
    ids = _ids(conn, small_dataset, 3)
    app_labels.label(as_user(conn, "ana"), small_dataset, ids, "fraud")
    conn.close()
    reopened = connect(db_path)
    try:
        assert current_labels(reopened, small_dataset, ids) == dict.fromkeys(ids, "fraud")
    finally:
        reopened.close()


def test_bad_labels_change_nothing(conn, small_dataset):
    ids = _ids(conn, small_dataset, 2)
    before = digest(conn)
    cases = [
        (ids, "maybe", "ana", "label must be one of"),
        (ids + ["NOPE"], "fraud", "ana", "'NOPE' is not in dataset"),
        (ids, "fraud", "  ", "analyst name is required"),
        (ids, "fraud", "a\x00b", "is not allowed"),
        ([], "fraud", "ana", "no transactions selected"),
    ]
    for transaction_ids, label, analyst, message in cases:
        with pytest.raises(UserError, match=message):
            app_labels.label(as_user(conn, analyst), small_dataset, transaction_ids, label)
    with pytest.raises(UserError, match="at most 2,000"):
        app_labels.label(as_user(conn, "ana"), small_dataset, ids, "fraud", note="x" * 2001)
    assert digest(conn) == before


def test_case_workflow_is_append_only(conn, small_dataset):
    [tx] = _ids(conn, small_dataset, 1)
    assert case_state(conn, small_dataset, tx)["status"] == "open"
    app_cases.take(as_user(conn, "ana"), small_dataset, [tx])
    app_cases.change(as_user(conn, "sup"), small_dataset, [tx], assignee="bob")
    with pytest.raises(UserError, match="needs a reason"):
        app_cases.change(as_user(conn, "bob"), small_dataset, [tx], status="closed")
    app_cases.change(as_user(conn, "bob"), small_dataset, [tx], status="closed", reason="duplicate")
    state = case_state(conn, small_dataset, tx)
    assert (state["status"], state["assignee"], state["reason"], state["actor"]) == ("closed", "bob", "duplicate", "bob")
    app_cases.change(as_user(conn, "bob"), small_dataset, [tx], status="open")
    assert case_state(conn, small_dataset, tx)["reason"] is None  # reopening clears the closing reason
    assert list(case_history(conn, small_dataset, tx)["status"]) == ["open", "closed", "in_review", "in_review"]


def test_labelling_with_close_closes_the_cases(conn, small_dataset):
    ids = _ids(conn, small_dataset, 2)
    app_labels.label(as_user(conn, "ana"), small_dataset, ids[:1], "fraud", close=True)
    app_labels.label(as_user(conn, "ana"), small_dataset, ids[1:], "unsure", close=True)
    assert case_state(conn, small_dataset, ids[0])["reason"] == "confirmed fraud"
    assert case_state(conn, small_dataset, ids[1])["status"] == "open"  # unsure leaves the case open


def test_concurrent_analysts_lose_no_label(conn, small_dataset):
    """Eight analysts, each on their own cursor (as Streamlit sessions are), label 600 cases at once,
    in overlapping batches, with case changes in between; every label is found afterwards."""
    ids = _ids(conn, small_dataset, 600)
    errors: list[BaseException] = []

    def analyst(n: int) -> None:
        cursor = conn.cursor()
        try:
            mine = ids[n * 75:(n + 1) * 75]
            for start in range(0, len(mine), 5):
                batch = mine[start:start + 5]
                app_labels.label(as_user(cursor, f"analyst{n}"), small_dataset, batch, ("fraud", "legitimate")[start % 2], close=True)
                app_cases.take(as_user(cursor, f"analyst{n}"), small_dataset, ids[(start * 7) % 600:(start * 7) % 600 + 3])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            cursor.close()

    threads = [threading.Thread(target=analyst, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    labels = current_labels(conn, small_dataset, ids)
    assert len(labels) == 600
    rows = conn.execute("SELECT analyst, count(*) FROM labels GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [(f"analyst{n}", 75) for n in range(8)]
    assert conn.execute("SELECT count(DISTINCT id) FROM labels").fetchall()[0][0] == 600


def test_export_neutralizes_spreadsheet_formulas(conn, small_dataset):
    ids = _ids(conn, small_dataset, 3)
    app_labels.label(as_user(conn, "ana"), small_dataset, ids[:1], "fraud", note='=HYPERLINK("http://evil.example","click")')
    app_labels.label(as_user(conn, "ana"), small_dataset, ids[1:2], "legitimate", note="+51 999 111 222")
    app_labels.label(as_user(conn, "ana"), small_dataset, ids[2:], "fraud", note="@SUM(A1)")
    frame = labelled_cases(conn, small_dataset)
    text = safe_csv(frame).decode("utf-8-sig")
    back = pd.read_csv(io.StringIO(text))
    assert set(back["note"]) == {"'=HYPERLINK(\"http://evil.example\",\"click\")", "'+51 999 111 222", "'@SUM(A1)"}
    assert not any(line.split(",")[0].startswith(("=", "+", "@", "-")) for line in text.splitlines())
    assert (back["amount"] > 0).all()  # numbers stay numbers
    negative = safe_csv(pd.DataFrame({"amount": [-5.0], "text": ["-5"]})).decode("utf-8-sig").splitlines()[1]
    assert negative == "-5.0,'-5"
