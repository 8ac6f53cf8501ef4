"""Manager KPIs against direct SQL counts and pandas on the same small fixture."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from application import cases as app_cases
from application import labels as app_labels
from application import runs as app_runs
from data.errors import UserError
from data.kpi import available_groupings, confirmed_fraud_cases, kpi_summary, kpis, kpis_with_total
from detectors.runs import default_split, run_scores, threshold_for
from tests.conftest import as_user


@pytest.fixture
def reviewed(conn, small_dataset):
    """A run, and analysts' work on it: fraud and legitimate alerts, an undone action, an
    'unsure', a non-alert confirmed as fraud and a case closed without a label."""
    dataset = small_dataset
    run = app_runs.fit(as_user(conn, "test"), dataset, ["isolation_forest"], contamination=0.05, train_until=default_split(dataset))
    threshold = threshold_for(run_scores(conn, run.id), run.contamination)
    frame = conn.execute(f"SELECT t.*, s.score FROM {dataset.table} t JOIN scores s USING (tx_row) WHERE s.run_id = ? "
                         "ORDER BY s.score DESC, tx_row", [run.id]).df()
    alerts = list(frame.loc[frame["score"] >= threshold, "transaction_id"])
    quiet = list(frame.loc[frame["score"] < threshold, "transaction_id"])
    app_labels.label(as_user(conn, "ana"), dataset, alerts[:12], "fraud")
    app_labels.label(as_user(conn, "luis"), dataset, alerts[12:30], "legitimate", close=True)
    undone = app_labels.label(as_user(conn, "ana"), dataset, alerts[30:35], "fraud").batch_id
    app_labels.undo(as_user(conn, "ana"), undone)
    app_labels.label(as_user(conn, "ana"), dataset, alerts[35:38], "unsure")
    app_labels.label(as_user(conn, "luis"), dataset, alerts[:2], "legitimate")  # changed minds: latest label counts
    app_labels.label(as_user(conn, "ana"), dataset, quiet[:4], "fraud")
    app_cases.change(as_user(conn, "luis"), dataset, alerts[40:43], status="closed", reason="duplicate")
    return dataset, run, threshold


def test_summary_matches_direct_sql(conn, reviewed):
    dataset, run, threshold = reviewed
    as_of = datetime.now() + timedelta(hours=5)
    got = kpi_summary(conn, dataset, run.id, threshold, as_of=as_of)

    def one(sql: str, *params):
        return conn.execute(sql, list(params)).fetchone()[0]

    t = dataset.table
    assert got["transactions"] == one(f"SELECT count(*) FROM {t}") == 5_000
    assert got["amount"] == pytest.approx(one(f"SELECT sum(amount) FROM {t}"))
    alerts = one("SELECT count(*) FROM scores WHERE run_id = ? AND score >= ?", run.id, threshold)
    assert got["alerts"] == alerts and got["alert_rate"] == pytest.approx(alerts / 5_000)
    current = conn.execute(
        "SELECT transaction_id, label FROM labels l WHERE dataset_id = ? AND batch_id NOT IN (SELECT batch_id FROM label_undos) "
        "QUALIFY row_number() OVER (PARTITION BY transaction_id ORDER BY id DESC) = 1", [dataset.id]).df()
    fraud_ids = list(current.loc[current["label"] == "fraud", "transaction_id"])
    assert got["confirmed_fraud"] == len(fraud_ids) == 10 + 4
    assert got["confirmed_fraud_amount"] == pytest.approx(
        one(f"SELECT sum(amount) FROM {t} WHERE transaction_id IN (SELECT unnest(CAST(? AS VARCHAR[])))", fraud_ids))
    assert got["reviewed_alerts"] == 10 + 2 + 18
    assert got["reviewed_precision"] == pytest.approx(10 / 30)
    # Backlog: alerts minus reviewed, minus 'unsure', minus closed-without-label; undone ones are back.
    assert got["backlog"] == alerts - 30 - 3 - 3
    loaded = one("SELECT created_at FROM datasets WHERE id = ?", dataset.id)
    assert got["backlog_oldest_days"] == pytest.approx((as_of - loaded).total_seconds() / 86400, abs=1e-6)
    first = conn.execute(
        "SELECT min(created_at) FROM labels WHERE dataset_id = ? AND label <> 'unsure' AND batch_id NOT IN "
        "(SELECT batch_id FROM label_undos) AND transaction_id IN (SELECT transaction_id FROM scores s JOIN "
        f"{t} USING (tx_row) WHERE s.run_id = ? AND s.score >= ?) GROUP BY transaction_id",
        [dataset.id, run.id, threshold]).df().iloc[:, 0]
    assert len(first) == 30
    hours = ((first - pd.Timestamp(loaded)).dt.total_seconds() / 3600).mean()
    assert got["mean_hours_to_decision"] == pytest.approx(hours, rel=1e-6)


def test_breakdowns_match_pandas_and_date_filter(conn, reviewed):
    dataset, run, threshold = reviewed
    frame = conn.execute(
        f"SELECT t.*, s.score >= ? AS alert, l.label FROM {dataset.table} t JOIN scores s USING (tx_row) "
        "LEFT JOIN current_labels l ON l.dataset_id = ? AND l.transaction_id = t.transaction_id WHERE s.run_id = ?",
        [threshold, dataset.id, run.id]).df()
    frame["fraud"] = frame["label"].eq("fraud")
    for by, key in (("day", frame["ts"].dt.date), ("week", (frame["ts"] - pd.to_timedelta(frame["ts"].dt.day_of_week, "D")).dt.date),
                    ("city", frame["city"]), ("payment_method", frame["payment_method"])):
        expected = frame.groupby(key).agg(transactions=("amount", "size"), amount=("amount", "sum"),
                                          alerts=("alert", "sum"), confirmed_fraud=("fraud", "sum"))
        got = kpis(conn, dataset, run.id, threshold, by=by).set_index("key")
        got.index = [k.date() if hasattr(k, "date") else k for k in got.index]
        assert got["transactions"].sum() == 5_000, by
        for column in ("transactions", "alerts", "confirmed_fraud"):
            assert got[column].to_dict() == expected[column].astype(int).to_dict(), (by, column)
        np.testing.assert_allclose(got.loc[expected.index, "amount"], expected["amount"])

    first, last = frame["ts"].min().date(), frame["ts"].max().date()
    start, end = first + timedelta(days=3), first + timedelta(days=9)
    inside = frame[(frame["ts"].dt.date >= start) & (frame["ts"].dt.date <= end)]
    period = kpi_summary(conn, dataset, run.id, threshold, start=start, end=end)
    assert period["transactions"] == len(inside) and period["alerts"] == int(inside["alert"].sum())
    assert len(kpis(conn, dataset, run.id, threshold, by="day", start=start, end=end)) == 7
    empty = kpi_summary(conn, dataset, run.id, threshold, start=last + timedelta(days=1), end=last + timedelta(days=5))
    assert empty["transactions"] == 0 and empty["reviewed_precision"] is None
    merchants = kpis(conn, dataset, run.id, threshold, by="merchant", limit=5)
    assert len(merchants) == 5 and list(merchants["transactions"]) == sorted(merchants["transactions"], reverse=True)
    assert set(available_groupings(dataset)) == {"day", "week", "city", "merchant", "payment_method"}
    with pytest.raises(UserError, match="group by one of"):
        kpis(conn, dataset, run.id, threshold, by="customer_id")


def test_confirmed_fraud_list_masks_customers(conn, reviewed):
    dataset, _, _ = reviewed
    cases = confirmed_fraud_cases(conn, dataset)
    assert len(cases) == 14
    raw = conn.execute(f"SELECT transaction_id, customer_id FROM {dataset.table}").df().set_index("transaction_id")
    for _, row in cases.iterrows():
        customer = raw.loc[row["transaction_id"], "customer_id"]
        assert row["customer"] == "••••" + customer[-4:] and customer not in row["customer"]
    assert date.today() >= cases["confirmed_at"].max().date()


@pytest.mark.parametrize("by", ["day", "week", "city"])
def test_one_scan_gives_the_trend_and_the_summary_of_two_queries(conn, reviewed, by):
    dataset, run, threshold = reviewed
    as_of = datetime.now() + timedelta(hours=5)
    first = conn.execute(f"SELECT min(ts) FROM {dataset.table}").fetchone()[0].date()
    for start, end in ((None, None), (first + timedelta(days=3), first + timedelta(days=20)),
                       (first - timedelta(days=30), first - timedelta(days=10))):  # the last: no transactions
        trend, summary = kpis_with_total(conn, dataset, run.id, threshold, by, start, end, as_of)
        pd.testing.assert_frame_equal(trend, kpis(conn, dataset, run.id, threshold, by, start, end, as_of))
        assert summary == pytest.approx(kpi_summary(conn, dataset, run.id, threshold, start, end, as_of), nan_ok=True)


def test_transactions_without_a_city_are_one_group_with_their_reviews(conn, reviewed):
    """Totals and analysts' figures come from two queries joined on the group: the group of
    transactions with no city must meet its own reviews (NULL with NULL), not lose them."""
    dataset, run, threshold = reviewed
    conn.execute(f"UPDATE {dataset.table} SET city = NULL WHERE tx_row % 3 = 0")
    frame = conn.execute(
        f"SELECT t.city, s.score >= ? AS alert, l.label FROM {dataset.table} t JOIN scores s USING (tx_row) "
        "LEFT JOIN current_labels l ON l.dataset_id = ? AND l.transaction_id = t.transaction_id WHERE s.run_id = ?",
        [threshold, dataset.id, run.id]).df()
    frame["fraud"] = frame["label"].eq("fraud")
    frame["reviewed"] = frame["alert"] & frame["label"].isin(["fraud", "legitimate"])
    expected = frame.groupby(frame["city"].fillna("(none)")).agg(
        transactions=("alert", "size"), alerts=("alert", "sum"), confirmed_fraud=("fraud", "sum"),
        reviewed_alerts=("reviewed", "sum"))
    got = kpis(conn, dataset, run.id, threshold, by="city")
    got.index = got["key"].fillna("(none)")
    assert got["key"].isna().sum() == 1 and expected.loc["(none)", "confirmed_fraud"] > 0
    for column in ("transactions", "alerts", "confirmed_fraud", "reviewed_alerts"):
        assert got[column].to_dict() == expected[column].astype(int).to_dict(), column
