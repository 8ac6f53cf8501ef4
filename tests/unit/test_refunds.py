"""Refunds and reversals: stored as negative amounts, counted in the import report, marked by
`is_refund`, and kept out of every purchase-amount statistic (a refund is not a large purchase)."""

from __future__ import annotations

import math

import pytest

from application import datasets as app_datasets
from data.features import CATALOGUE, feature_frame
from tests.conftest import as_user

# C1 buys 90, 110, gets 500 back, buys 100, then 130; M1 is the merchant of all of them.
ROWS = [("T1", "2024-01-01 10:00", "90.00"), ("T2", "2024-01-01 11:00", "110.00"), ("T3", "2024-01-01 12:00", "-500.00"),
        ("T4", "2024-01-01 13:00", "100.00"), ("T5", "2024-01-01 14:00", "130.00")]


@pytest.fixture
def refunds(conn, tmp_path):
    path = tmp_path / "refunds.csv"
    path.write_text("transaction_id,timestamp,amount,customer_id,merchant_id\n"
                    + "".join(f"{i},{ts},{amount},C1,M1\n" for i, ts, amount in ROWS))
    return app_datasets.import_dataset(as_user(conn), path, "refunds")


def test_refunds_are_stored_and_counted(conn, refunds):
    assert [r[0] for r in conn.execute(f"SELECT amount FROM {refunds.dataset.table} ORDER BY tx_row").fetchall()] == \
        [90.0, 110.0, -500.0, 100.0, 130.0]
    assert refunds.report.counts["refunds"] == 1
    assert refunds.dataset.import_report["columns"][1]["counts"] == {"refunds": 1}
    assert any("1 refunds or reversals" in note for note in refunds.report.notes)


def test_refunds_are_kept_out_of_purchase_amount_features(conn, refunds):
    features = feature_frame(conn, refunds.features).set_index("tx_row")
    refund, after, last = features.loc[2], features.loc[3], features.loc[4]
    assert refund["is_refund"] == 1 and features.drop(index=2)["is_refund"].eq(0).all()
    assert refund["log_amount"] == pytest.approx(-math.log(501))
    # A refund is no purchase: it has no ratio to the customer's or the merchant's purchases...
    assert math.isnan(refund["amount_ratio_customer"]) and math.isnan(refund["amount_ratio_merchant"])
    assert math.isnan(refund["amount_zscore_customer"])
    # ...and the purchases after it are compared with the earlier purchases only.
    assert after["cust_mean_amount_24h"] == pytest.approx(100.0)  # (90 + 110) / 2, not (90 + 110 - 500) / 3
    assert after["amount_ratio_customer"] == pytest.approx(1.0)
    assert after["amount_ratio_merchant"] == pytest.approx(1.0)
    assert last["amount_zscore_customer"] == pytest.approx(3.0)  # earlier purchases 90, 110, 100: mean 100, sd 10
    # It is still a transaction of the customer's: counts and velocity see it.
    assert after["cust_count_24h"] == 3 and after["cust_history_count"] == 3


def test_feature_descriptions_say_how_refunds_are_treated():
    described = {f.name: f.description for f in CATALOGUE}
    assert "refund" in described["is_refund"].lower()
    for name in ("cust_mean_amount_1h", "cust_mean_amount_24h", "cust_mean_amount_7d", "amount_ratio_customer",
                 "amount_zscore_customer", "amount_ratio_merchant", "log_amount"):
        assert "refund" in described[name], name
