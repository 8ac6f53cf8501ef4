"""The queue and pattern queries against an independent pandas computation on the same rows."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from application import cases as app_cases
from application import labels as app_labels
from application import runs as app_runs
from application.queue import queue_page
from data.alerts import (
    QueueFilters,
    alert_page,
    count_alerts,
    daily_trend,
    hour_weekday,
    places,
)
from detectors.runs import default_split, run_scores, threshold_for
from tests.conftest import as_user


@pytest.fixture
def scored(conn, small_dataset):
    run = app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], contamination=0.05, train_until=default_split(small_dataset))
    threshold = threshold_for(run_scores(conn, run.id), run.contamination)
    frame = conn.execute(f"SELECT t.*, s.score FROM {small_dataset.table} t JOIN scores s USING (tx_row) WHERE s.run_id = ?",
                         [run.id]).df()
    return small_dataset, run, threshold, frame


def test_queue_is_every_alert_highest_score_first(conn, scored):
    dataset, run, threshold, frame = scored
    alerts = frame[frame["score"] >= threshold].sort_values(["score", "tx_row"], ascending=[False, True])
    queue = queue_page(as_user(conn), dataset, page_size=40)
    rows, total = queue.rows, queue.total
    assert queue.active.threshold == threshold  # kept with the run, equal to NumPy's quantile of its scores
    assert total == len(alerts) == round(0.05 * len(frame))
    assert list(rows["transaction_id"]) == list(alerts["transaction_id"][:40])
    pages = [alert_page(conn, dataset, run.id, threshold, page=p, page_size=40) for p in range(-(-total // 40))]
    assert list(pd.concat(pages)["transaction_id"]) == list(alerts["transaction_id"])


@pytest.mark.parametrize("name", ["city", "merchant", "payment", "amount", "dates", "hours", "weekdays", "search", "combined"])
def test_each_filter_matches_pandas(conn, scored, name):
    dataset, run, threshold, frame = scored
    alerts = frame[frame["score"] >= threshold]
    top = alerts.sort_values("score", ascending=False).iloc[0]
    filters, expected = {
        "city": (QueueFilters(cities=(top["city"],)), alerts["city"] == top["city"]),
        "merchant": (QueueFilters(merchants=(top["merchant_name"],)), alerts["merchant_name"] == top["merchant_name"]),
        "payment": (QueueFilters(payment_methods=(top["payment_method"],)), alerts["payment_method"] == top["payment_method"]),
        "amount": (QueueFilters(amount_min=50.0, amount_max=400.0), alerts["amount"].between(50, 400)),
        "dates": (QueueFilters(start=date(2026, 8, 20), end=date(2026, 8, 25)),
                  (alerts["ts"] >= "2026-08-20") & (alerts["ts"] < "2026-08-26")),
        "hours": (QueueFilters(hours=(0, 1, 2, 23)), alerts["ts"].dt.hour.isin([0, 1, 2, 23])),
        "weekdays": (QueueFilters(weekdays=(6, 7)), alerts["ts"].dt.day_of_week >= 5),
        "search": (QueueFilters(search=top["customer_id"].lower()), alerts["customer_id"] == top["customer_id"]),
        "combined": (QueueFilters(cities=(top["city"],), amount_min=float(top["amount"])),
                     (alerts["city"] == top["city"]) & (alerts["amount"] >= top["amount"])),
    }[name]
    queue = queue_page(as_user(conn), dataset, filters, page_size=1_000)
    rows, total = queue.rows, queue.total
    assert 0 < total == int(expected.sum()) < len(alerts) or name == "search"
    assert set(rows["transaction_id"]) == set(alerts.loc[expected, "transaction_id"])


def test_label_status_and_my_cases(conn, scored):
    dataset, run, threshold, frame = scored
    ids = list(alert_page(conn, dataset, run.id, threshold, page_size=6)["transaction_id"])
    app_labels.label(as_user(conn, "ana"), dataset, ids[:2], "fraud")
    app_labels.label(as_user(conn, "bob"), dataset, ids[2:3], "legitimate")
    app_cases.take(as_user(conn, "carla"), dataset, ids[3:6])
    count = lambda **f: count_alerts(conn, dataset, run.id, threshold, QueueFilters(**f))  # noqa: E731
    total = count()
    assert count(label_status="fraud") == 2 and count(label_status="legitimate") == 1
    assert count(label_status="labelled") == 3 and count(label_status="unlabelled") == total - 3
    assert count(assignee="carla") == 3 and count(case_statuses=("in_review",)) == 3
    assert count(case_statuses=("open",)) == total - 3


def test_search_text_is_literal(conn, scored):
    dataset, run, threshold, _ = scored
    for hostile in ("%", "_", "'; DROP TABLE scores; --", "\\"):
        assert count_alerts(conn, dataset, run.id, threshold, QueueFilters(search=hostile)) == 0
    assert conn.execute("SELECT count(*) FROM scores").fetchall()[0][0] > 0


def test_aggregates_match_pandas(conn, scored):
    dataset, run, threshold, frame = scored
    frame = frame.assign(alert=frame["score"] >= threshold)
    cells = hour_weekday(conn, dataset, run.id, threshold).set_index(["weekday", "hour"])
    expected = frame.groupby([frame["ts"].dt.day_of_week + 1, frame["ts"].dt.hour])["alert"].agg(["size", "sum"])
    assert cells["transactions"].to_dict() == expected["size"].to_dict()
    assert cells["alerts"].to_dict() == expected["sum"].to_dict()
    trend = daily_trend(conn, dataset, run.id, threshold)
    by_day = frame.groupby(frame["ts"].dt.date).agg(transactions=("alert", "size"), alerts=("alert", "sum"),
                                                    fraud=("is_fraud", "sum"))
    assert list(trend["transactions"]) == list(by_day["transactions"]) and list(trend["alerts"]) == list(by_day["alerts"])
    assert list(trend["known_fraud"]) == list(by_day["fraud"]) and trend["confirmed_fraud"].sum() == 0
    cities = places(conn, dataset, run.id, threshold).set_index("city")
    by_city = frame.groupby("city").agg(n=("alert", "size"), a=("alert", "sum"), lat=("lat", "mean"))
    assert cities["transactions"].to_dict() == by_city["n"].to_dict()
    assert cities["alerts"].to_dict() == by_city["a"].to_dict()
    pd.testing.assert_series_equal(cities["lat"].sort_index(), by_city["lat"].sort_index(), check_names=False)


def test_least_certain_order_lists_unlabelled_alerts_nearest_the_threshold(conn, scored):
    dataset, run, threshold, frame = scored
    alerts = frame[frame["score"] >= threshold]
    labelled = list(alerts.sort_values("score")["transaction_id"][:3])  # the three nearest the threshold
    app_labels.label(as_user(conn, "ana"), dataset, labelled, "legitimate")
    expected = alerts[~alerts["transaction_id"].isin(labelled)].assign(gap=lambda f: (f["score"] - threshold).abs())
    expected = expected.sort_values(["gap", "tx_row"])
    queue = queue_page(as_user(conn), dataset, order="uncertain", page_size=20)
    rows = queue.rows
    assert list(rows["transaction_id"]) == list(expected["transaction_id"][:20])
    assert rows["label"].isna().all() and queue.total == len(alerts) - 3  # the count applies the same rule
    around_half = alert_page(conn, dataset, run.id, threshold, order="uncertain", pivot=0.6, page_size=5)
    gaps = (around_half["score"] - 0.6).abs()
    assert list(gaps) == sorted(gaps)
