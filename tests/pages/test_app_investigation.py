"""The investigation pages through AppTest: queue, case, geo & time, with labels and undo."""

from __future__ import annotations

import json

import pytest

from application import datasets as app_datasets
from application import runs as app_runs
from data.alerts import QueueFilters, count_alerts
from data.cases import case_state, current_labels
from detectors.runs import default_split, run_scores, threshold_for
from tests.apptest import app, metric, one, open_queue_filters, page, texts
from tests.conftest import as_user

pytestmark = pytest.mark.usefixtures("server_like_navigation")


@pytest.fixture
def fitted(conn, small_dataset, monkeypatch):
    run = app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    return small_dataset, run, threshold_for(run_scores(conn, run.id), run.contamination)




def _count(at) -> int:
    return int(metric(at, "Alerts matching").replace(",", ""))


def _plotly_titles(at) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_queue_lists_the_runs_alerts_and_filters_them(conn, fitted):
    dataset, run, threshold = fitted
    at = page("pages/queue.py")
    expected = int((run_scores(conn, run.id) >= threshold).sum())
    assert _count(at) == expected
    table = at.dataframe[0].value
    assert list(table["score"]) == sorted(table["score"], reverse=True) and (table["score"] >= threshold).all()
    city = table["city"].iloc[0]
    open_queue_filters(at)
    at.multiselect(key="qf-city-0").set_value([city])
    one(at.button, "Apply filters").click()
    at.run()
    assert not at.exception
    narrowed = _count(at)
    assert narrowed == count_alerts(conn, dataset, run.id, threshold, QueueFilters(cities=(city,))) < expected
    assert set(at.dataframe[0].value["city"]) == {city}
    one(at.button, "Clear filters").click()
    at.run()
    assert _count(at) == expected


def test_queue_pages_through_alerts(conn, fitted):
    at = page("pages/queue.py")
    at.selectbox(key="queue-page-size").set_value(25).run()
    first = list(at.dataframe[0].value["transaction_id"])
    at.number_input(key="queue-page-0-score-25").set_value(2).run()
    second = list(at.dataframe[0].value["transaction_id"])
    assert len(first) == 25 and second and not set(first) & set(second)


def test_bulk_label_then_undo(conn, fitted):
    dataset, run, _ = fitted
    at = page("pages/queue.py")
    ids = list(at.dataframe[0].value["transaction_id"])[:3]
    at.multiselect(key="queue-pick-0-1").set_value(ids).run()
    at.radio(key="bulk-label-choice").set_value("fraud")
    one(at.button, "Label 3 selected").click()
    at.run()
    assert not at.exception
    assert current_labels(conn, dataset, ids) == dict.fromkeys(ids, "fraud")
    assert all(case_state(conn, dataset, i)["status"] == "closed" for i in ids)
    assert "Labelled 3 alerts as fraud." in texts(at)
    assert set(at.dataframe[0].value.set_index("transaction_id").loc[ids, "label"]) == {"fraud"}
    one(at.button, "Undo").click()
    at.run()
    assert current_labels(conn, dataset, ids) == {}
    assert "Undone: 3 labels taken back" in texts(at)


def test_take_cases_and_filter_my_cases(conn, fitted):
    dataset, _, _ = fitted
    at = page("pages/queue.py")
    ids = list(at.dataframe[0].value["transaction_id"])[5:7]
    at.multiselect(key="queue-pick-0-1").set_value(ids).run()
    one(at.button, "Take selected").click()
    at.run()
    assert {case_state(conn, dataset, i)["assignee"] for i in ids} == {"ana"}
    open_queue_filters(at)
    at.checkbox(key="qf-mine-0").check()
    one(at.button, "Apply filters").click()
    at.run()
    assert _count(at) == 2 and set(at.dataframe[0].value["transaction_id"]) == set(ids)


def test_open_a_case_explain_and_label_it(conn, fitted):
    dataset, run, _ = fitted
    at = page("pages/queue.py")
    table = at.dataframe[0].value
    case_id = table["transaction_id"].iloc[0]
    unlabelled = table[table["label"] == ""]
    assert len(unlabelled) and not table[["label", "assignee"]].isin(["None"]).any().any()
    assert unlabelled["label"].map(type).eq(str).all() and table["assignee"].eq("").all()
    one(at.button, "Open case").click()
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["case"] == [case_id] or at.query_params["case"] == case_id
    assert any(t.startswith("Why it was flagged") for t in _plotly_titles(at))
    # No stray help box: a conditional expression used as a statement was once written by magic.
    assert not at.get("help_info"), "a stray st.help box on the case page"
    waterfall = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Why it was flagged" in c.proto.spec)
    queue_score = float(table.loc[table["transaction_id"] == case_id, "score"].iloc[0])
    assert waterfall["data"][0]["text"][-1] == f"score {queue_score:.4f}"  # the queue's score, not the path length
    at.switch_page("pages/case.py")  # AppTest stays on the page it was given; a browser follows switch_page
    stored = conn.execute("SELECT method FROM explanations WHERE run_id = ?", [run.id]).fetchall()
    assert stored == [("tree",)]
    at.radio(key="case-label-choice").set_value("legitimate")
    at.text_area(key="case-note").input("known customer, travelling")
    one(at.button, "Save label").click()
    at.run()
    assert not at.exception
    assert current_labels(conn, dataset, [case_id]) == {case_id: "legitimate"}
    assert metric(at, "Label") == "legitimate"
    assert case_state(conn, dataset, case_id)["reason"] == "false positive"
    history = next(d.value for d in at.dataframe if "undone" in d.value.columns)
    assert history["note"].iloc[0] == "known customer, travelling"


def test_case_workflow_status_needs_a_reason(conn, fitted):
    dataset, run, threshold = fitted
    case_id = conn.execute("SELECT t.transaction_id FROM scores s JOIN tx_1 t USING (tx_row) WHERE run_id = ? "
                           "ORDER BY score DESC LIMIT 1", [run.id]).fetchall()[0][0]
    at = page("pages/case.py", case=case_id)
    assert one(at.metric, "Score").delta == f"rank 1 of {dataset.row_count:,}"  # the highest score
    one(at.button, "Take this case").click()
    at.run()
    assert case_state(conn, dataset, case_id)["status"] == "in_review"
    at.selectbox(key="case-status").set_value("closed").run()
    one(at.button, "Update status").click()
    at.run()
    assert "closing a case needs a reason" in "\n".join(e.value for e in at.error)
    assert case_state(conn, dataset, case_id)["status"] == "in_review"
    at.selectbox(key="case-reason").set_value("duplicate")
    one(at.button, "Update status").click()
    at.run()
    assert case_state(conn, dataset, case_id) | {"updated_at": None} == {
        "status": "closed", "assignee": "ana", "reason": "duplicate", "actor": "ana", "updated_at": None}


def test_case_page_without_a_case_or_with_an_unknown_one(fitted):
    at = page("pages/case.py")
    assert "No case is open" in texts(at)
    at = page("pages/case.py", case="NOT-A-TX")
    assert "'NOT-A-TX' is not in dataset" in at.error[0].value


def test_patterns_map_time_and_drivers(conn, fitted):
    dataset, run, threshold = fitted
    at = page("pages/patterns.py")
    titles = _plotly_titles(at)
    assert any(t.startswith("Where alerts happen") for t in titles)
    assert any(t.startswith("Alerts by hour") for t in titles) and any(t.startswith("Daily trend") for t in titles)
    cities = next(d.value for d in at.dataframe if "alert_rate" in d.value.columns)
    assert cities["transactions"].sum() == dataset.row_count
    assert cities["alerts"].sum() == int((run_scores(conn, run.id) >= threshold).sum())
    one(at.button, "Compute feature importance").click()
    at.run()
    assert not at.exception
    assert any(t.startswith("Mean |SHAP|") for t in _plotly_titles(at))
    assert conn.execute("SELECT alert_rows FROM global_importance WHERE run_id = ?", [run.id]).fetchall()[0][0] > 0


def test_a_time_selection_filters_the_queue(conn, fitted):
    dataset, run, threshold = fitted
    at = page("pages/patterns.py")
    at.multiselect(key="patterns-hours-[]").set_value([20, 21])
    at.run()
    at.button(key="patterns-time-to-queue").click()
    at.run()
    assert not at.exception
    assert _count(at) == count_alerts(conn, dataset, run.id, threshold, QueueFilters(hours=(20, 21)))
    assert set(at.dataframe[0].value["ts"].dt.hour) <= {20, 21}


def test_labels_are_recorded_under_the_signed_in_user(conn, fitted):
    at = app(user="bea", role="analyst")
    at.run()
    at.switch_page("pages/queue.py").run()
    assert not at.exception, at.exception
    [tx] = list(at.dataframe[0].value["transaction_id"])[:1]
    at.multiselect(key="queue-pick-0-1").set_value([tx]).run()
    at.radio(key="bulk-label-choice").set_value("unsure")
    one(at.button, "Label 1 selected").click()
    at.run()
    assert conn.execute("SELECT analyst, label FROM current_labels").fetchall() == [("bea", "unsure")]
    assert conn.execute("SELECT actor, action, target FROM audit WHERE action = 'label'").fetchall() == \
        [("bea", "label", tx)]
    assert any("Download all 1 labelled cases" in str(b.proto.label) for b in at.get("download_button"))


@pytest.mark.parametrize("shape", ["unlabelled_customer", "location_payment"])
def test_pages_work_on_imported_files_of_other_shapes(conn, tmp_path, shape, monkeypatch):
    """Files without merchants, devices or coordinates still get a queue, a case and patterns."""
    from tests.samples import write_shape

    path, _ = write_shape(tmp_path, shape, rows=400)
    dataset = app_datasets.import_dataset(as_user(conn, "test"), path, shape, features=False).report.dataset
    app_runs.fit(as_user(conn, "test"), dataset, ["ecod"], contamination=0.05)
    at = page("pages/queue.py", dataset=shape)
    assert _count(at) == 20
    case_id = at.dataframe[0].value["transaction_id"].iloc[0]
    at = page("pages/case.py", dataset=shape, case=case_id)
    assert any(t.startswith("Why it was flagged") for t in _plotly_titles(at))
    at.radio(key="case-label-choice").set_value("fraud")
    one(at.button, "Save label").click()
    at.run()
    assert not at.exception and current_labels(conn, dataset, [case_id]) == {case_id: "fraud"}
    at = page("pages/patterns.py", dataset=shape)
    assert any(t.startswith("Alerts by hour") for t in _plotly_titles(at))
