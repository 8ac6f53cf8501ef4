"""The Models and KPI overview pages through AppTest: train from labels, promote, roll back,
drift, and managers' figures against direct SQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from application import labels as app_labels
from application import runs as app_runs
from detectors.drift import drift_report
from detectors.runs import active_run, default_split, get_run, list_runs, run_scores, threshold_for
from tests.apptest import app, metric, one, page, texts
from tests.conftest import as_user

pytestmark = pytest.mark.usefixtures("server_like_navigation")


@pytest.fixture
def fitted(conn, small_dataset, monkeypatch):
    run = app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    return small_dataset, run




def _plotly_titles(at) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def _number(text: str) -> float:
    return float(text.replace("S/", "").replace(",", "").replace("%", "").strip())


def test_train_promote_and_roll_back_from_the_page(conn, fitted):
    dataset, base = fitted
    at = page("pages/models.py")
    registry = at.dataframe[0].value
    assert list(registry["version"]) == [base.id] and registry["active"].tolist() == [True]
    # Without the label column there are no labels yet: the page says how many are needed, and
    # training anyway explains instead of failing.
    assert "label **20 more fraud** and **20 more legitimate**" in texts(at)
    one(at.button, "Train a new version").click()
    at.run()
    assert not at.exception and any("too few labels to train" in e.value for e in at.error)
    assert len(list_runs(conn, dataset)) == 1

    at.checkbox(key="train-truth").check().run()
    assert _number(metric(at, "Fraud labels")) == conn.execute(
        f"SELECT count(*) FILTER (is_fraud) FROM {dataset.table}").fetchone()[0]
    one(at.button, "Train a new version").click()
    at.run()
    assert not at.exception, at.exception
    version = list_runs(conn, dataset)[-1]
    assert version.kind == "supervised" and version.created_by == "ana"
    assert any(f"Version #{version.id} trained" in s.value for s in at.success)
    assert at.dataframe[0].value["version"].tolist() == [version.id, base.id]
    assert at.selectbox(key="models-version").value == version.id  # the new version is shown
    assert active_run(conn, dataset).id == base.id  # ... but not promoted by training

    one(at.button, f"Promote #{version.id}").click()
    at.run()
    assert active_run(conn, dataset).id == version.id
    assert "This version ranks the queue." in texts(at)
    # The investigation pages follow the promoted version, and explain its probability.
    queue = page("pages/queue.py")
    assert queue.dataframe[0].value["score"].between(0, 1).all()
    top = queue.dataframe[0].value["transaction_id"].iloc[0]
    case = app()
    case.query_params["case"] = top
    case.run()
    case.switch_page("pages/case.py").run()
    assert not case.exception, case.exception
    assert any("Why it was flagged" in (json_title or "") for json_title in _plotly_titles(case))
    at.selectbox(key="models-version").set_value(base.id).run()
    one(at.button, f"Roll back to #{base.id}").click()
    at.run()
    assert active_run(conn, dataset).id == base.id
    table = at.dataframe[0].value.set_index("version")
    assert table.loc[version.id, "promoted_by"] == "ana" and table.loc[base.id, "last_action"] == "rollback"


def test_drift_tab_shows_the_report_and_warns(conn, fitted):
    dataset, run = fitted
    at = page("pages/models.py")
    at.number_input(key="drift-days").set_value(5).run()
    assert not at.exception
    expected = drift_report(conn, dataset, get_run(conn, run.id), recent_days=5).table
    shown = next(d.value for d in at.dataframe if "psi" in d.value.columns)
    assert list(shown["feature"]) == list(expected["feature"])
    assert shown["psi"].round(6).tolist() == expected["psi"].round(6).tolist()
    drifted = list(expected.loc[expected["psi"] > 0.2, "feature"])
    warnings = " ".join(w.value for w in at.warning)
    assert (f"{len(drifted)} of {len(expected)} drifted" in warnings) if drifted else "No feature has drifted" in texts(at)


def test_kpi_page_matches_direct_sql_and_follows_labels(conn, fitted):
    dataset, run = fitted
    threshold = threshold_for(run_scores(conn, run.id), run.contamination)
    at = page("pages/overview.py")
    t = dataset.table
    assert _number(metric(at, "Transactions")) == conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    alerts = conn.execute("SELECT count(*) FROM scores WHERE run_id = ? AND score >= ?", [run.id, threshold]).fetchone()[0]
    assert _number(metric(at, "Alerts")) == alerts
    assert _number(metric(at, "Backlog: unreviewed alerts")) == alerts
    assert metric(at, "Confirmed fraud") == "0"

    top = conn.execute(f"SELECT transaction_id, amount FROM scores JOIN {t} USING (tx_row) WHERE run_id = ? "
                       "ORDER BY score DESC, tx_row LIMIT 5", [run.id]).fetchall()
    app_labels.label(as_user(conn, "ana"), dataset, [r[0] for r in top[:3]], "fraud")
    app_labels.label(as_user(conn, "ana"), dataset, [r[0] for r in top[3:]], "legitimate")
    at.run()
    assert metric(at, "Confirmed fraud") == "3"
    exact = one(at.metric, "Confirmed fraud amount").proto.help  # the figure shows S/ 3.42 K; its help, every cent
    assert _number(exact) == pytest.approx(sum(r[1] for r in top[:3]), abs=0.005)
    assert _number(metric(at, "Precision of reviewed alerts")) == pytest.approx(60.0)
    assert _number(metric(at, "Backlog: unreviewed alerts")) == alerts - 5
    confirmed = next(d.value for d in at.dataframe if "confirmed_by" in d.value.columns)
    assert len(confirmed) == 3 and confirmed["customer"].str.startswith("••••").all()
    raw = set(conn.execute(f"SELECT customer_id FROM {t}").df()["customer_id"])
    assert not set(confirmed["customer"]) & raw

    at.selectbox(key="kpi-by").set_value("city").run()
    by_city = at.dataframe[0].value
    assert by_city["transactions"].sum() == _number(metric(at, "Transactions"))

    start = dataset.min_ts.date() + timedelta(days=2)
    end = start + timedelta(days=4)
    at.date_input(key="kpi-period").set_value((start, end)).run()
    assert not at.exception
    in_range = conn.execute(f"SELECT count(*) FROM {t} WHERE CAST(ts AS DATE) BETWEEN ? AND ?", [start, end]).fetchone()[0]
    assert _number(metric(at, "Transactions")) == in_range < dataset.row_count
    assert any(b.label == "Download this table (CSV)" for b in at.get("download_button"))


def test_train_a_model_with_a_parameter_search_from_the_page(conn, fitted):
    dataset, base = fitted
    at = page("pages/models.py")
    at.checkbox(key="train-truth").check().run()
    at.selectbox(key="train-model").set_value("hgb")
    at.selectbox(key="train-imbalance").set_value("undersample")
    at.number_input(key="train-search").set_value(3)
    one(at.button, "Train a new version").click()
    at.run()
    assert not at.exception, at.exception
    version = list_runs(conn, dataset)[-1]
    assert version.kind == "supervised" and version.detector == "hgb" and version.params["imbalance"] == "undersample"
    assert version.metrics["search"]["trials"] == 3
    assert "Parameters searched first: 3 configurations" in texts(at)
