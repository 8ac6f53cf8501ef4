"""Features: SQL results against a straightforward pandas reference, no leakage, skipped reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from application import datasets as app_datasets
from application import labels as app_labels
from data.errors import UserError
from data.features import CATALOGUE, compute_features, feature_catalogue, feature_frame, load_feature_set
from data.geography import haversine_km
from tests.conftest import as_user


@pytest.fixture
def features(conn, small_dataset):
    fs = compute_features(conn, small_dataset, label_delay_days=7)
    rows = conn.execute(f"SELECT * FROM {small_dataset.table}").df()
    return fs, rows.merge(feature_frame(conn, fs), on="tx_row", suffixes=("", "_f")).sort_values(["ts", "tx_row"])


def _reference(rows: pd.DataFrame) -> pd.DataFrame:
    """Row-by-row reference implementation of the customer, merchant and device features."""
    out = {}
    for _, group in rows.groupby("customer_id"):
        group = group.sort_values(["ts", "tx_row"])
        ts = group["ts"].to_numpy()
        amounts = group["amount"].to_numpy()
        seen_devices: set = set()
        for i, (idx, row) in enumerate(group.iterrows()):
            earlier = amounts[:i]
            rec = {"history": i}
            rec["secs_prev"] = (ts[i] - ts[i - 1]) / np.timedelta64(1, "s") if i else np.nan
            for label, width in (("1h", "1h"), ("24h", "24h"), ("7d", "7D")):
                others = (ts >= ts[i] - pd.Timedelta(width)) & (ts <= ts[i])
                others[i] = False
                rec[f"count_{label}"] = others.sum()
                rec[f"mean_{label}"] = amounts[others].mean() if others.any() else np.nan
            rec["ratio"] = row["amount"] / earlier.mean() if i else np.nan
            rec["z"] = (row["amount"] - earlier.mean()) / earlier.std(ddof=1) if i >= 3 else np.nan
            if i:
                lat, lon = group["lat"].to_numpy()[:i].mean(), group["lon"].to_numpy()[:i].mean()
                rec["dist"] = float(haversine_km(lat, lon, row["lat"], row["lon"]))
            else:
                rec["dist"] = np.nan
            device = row["device_id"]
            rec["new_device"] = np.nan if pd.isna(device) else float(device not in seen_devices and i > 0)
            if not pd.isna(device):
                seen_devices.add(device)
            out[idx] = rec
    ref = pd.DataFrame.from_dict(out, orient="index")
    merchant_ratio = {}
    for _, group in rows.groupby("merchant_id"):
        group = group.sort_values(["ts", "tx_row"])
        prior = group["amount"].expanding().mean().shift()
        merchant_ratio.update((group["amount"] / prior).to_dict())
    ref["merchant_ratio"] = pd.Series(merchant_ratio)
    return ref


def test_customer_merchant_and_device_features_match_the_reference(features):
    _, rows = features
    ref = _reference(rows).loc[rows.index]
    pairs = {
        "cust_history_count": "history", "secs_since_prev": "secs_prev",
        "cust_count_1h": "count_1h", "cust_count_24h": "count_24h", "cust_count_7d": "count_7d",
        "cust_mean_amount_1h": "mean_1h", "cust_mean_amount_24h": "mean_24h", "cust_mean_amount_7d": "mean_7d",
        "amount_ratio_customer": "ratio", "amount_zscore_customer": "z", "distance_from_usual_km": "dist",
        "is_new_device": "new_device", "amount_ratio_merchant": "merchant_ratio",
    }
    for feature, reference in pairs.items():
        got, want = rows[feature].to_numpy(float), ref[reference].to_numpy(float)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=feature)
    assert rows["cust_count_24h"].max() > 0 and rows["is_new_device"].sum() > 0


def test_calendar_features(features):
    _, rows = features
    assert (rows["hour"] == rows["ts"].dt.hour).all()
    assert (rows["day_of_week"] == rows["ts"].dt.day_of_week + 1).all()
    assert (rows["is_weekend"] == (rows["ts"].dt.day_of_week >= 5)).all()
    assert (rows["is_night"] == (rows["ts"].dt.hour < 6)).all()
    np.testing.assert_allclose(rows["log_amount"], np.log1p(rows["amount"]))


def test_merchant_fraud_rate_uses_only_labels_older_than_the_delay(conn, small_dataset, features):
    fs, rows = features
    delay = pd.Timedelta(days=7)
    merchant = rows.groupby("merchant_id").size().idxmax()
    at_m = rows[rows["merchant_id"] == merchant].sort_values("ts")
    # Reference: mean ground truth of the merchant's transactions 35 to 7 days before each one.
    for _, row in at_m.sample(20, random_state=1).iterrows():
        window = at_m[(at_m["ts"] >= row["ts"] - delay - pd.Timedelta(days=28)) & (at_m["ts"] <= row["ts"] - delay)]
        expected = window["is_fraud"].mean() if len(window) else np.nan
        assert row["merchant_fraud_rate"] == pytest.approx(expected, nan_ok=True)

    # An analyst marks an early legitimate transaction as fraud.
    target = at_m[~at_m["is_fraud"]].iloc[len(at_m) // 4]
    app_labels.label(as_user(conn, "ana"), small_dataset, [target["transaction_id"]], "fraud")
    after = feature_frame(conn, compute_features(conn, small_dataset, label_delay_days=7)).set_index("tx_row")
    before = rows.set_index("tx_row")
    same_merchant = before["merchant_id"] == merchant
    too_soon = same_merchant & (before["ts"] > target["ts"]) & (before["ts"] < target["ts"] + delay)
    known = same_merchant & (before["ts"] >= target["ts"] + delay) & (before["ts"] <= target["ts"] + delay + pd.Timedelta(days=28))
    assert too_soon.any() and known.any()
    pd.testing.assert_series_equal(after.loc[too_soon[too_soon].index, "merchant_fraud_rate"],
                                   before.loc[too_soon[too_soon].index, "merchant_fraud_rate"], check_names=False)
    assert (after.loc[known[known].index, "merchant_fraud_rate"] > before.loc[known[known].index, "merchant_fraud_rate"]).all()


def test_every_feature_has_a_description_and_unit(conn, small_dataset, features):
    fs, _ = features
    assert fs.skipped == {} and fs.computed == [f.name for f in CATALOGUE]
    catalogue = feature_catalogue(conn, small_dataset)
    assert (catalogue["status"] == "computed").all()
    assert catalogue["description"].str.len().min() > 10 and catalogue["unit"].str.len().min() > 0


def test_recomputing_replaces_the_feature_table(conn, small_dataset, features):
    compute_features(conn, small_dataset, label_delay_days=14)
    stored = load_feature_set(conn, small_dataset)
    assert stored.params == {"label_delay_days": 14}
    assert conn.execute("SELECT count(*) FROM feature_sets").fetchall()[0][0] == 1
    assert conn.execute(f"SELECT count(*) FROM {stored.table}").fetchall()[0][0] == small_dataset.row_count


def test_out_of_range_delay_is_refused(conn, small_dataset):
    with pytest.raises(UserError, match="label delay"):
        compute_features(conn, small_dataset, label_delay_days=-1)


def test_datasets_without_labels_skip_the_merchant_fraud_rate(conn, tmp_path):

    path = tmp_path / "nolabels.csv"
    path.write_text("timestamp,amount,customer_id,terminal_id\n2024-01-01 10:00,5,C1,M1\n2024-01-02 10:00,7,C1,M1\n")
    dataset = app_datasets.import_dataset(as_user(conn, "test"), path, "nolabels", features=False).report.dataset
    fs = compute_features(conn, dataset)
    assert "label" in fs.skipped["merchant_fraud_rate"]
    assert "coordinates" in fs.skipped["distance_from_usual_km"]
    assert "amount_ratio_merchant" in fs.computed and "secs_since_prev" in fs.computed
    assert feature_frame(conn, fs)["secs_since_prev"].tolist()[1] == 86_400


def _merchant_windows_reference(rows: pd.DataFrame, delay_days: int = 7) -> pd.DataFrame:
    """Row-by-row reference of the handbook's merchant windows behind the label delay, the 30-day
    customer windows, new merchants and the time since the merchant's latest known fraud."""
    out = {}
    delay = pd.Timedelta(days=delay_days)
    for _, group in rows.groupby("merchant_id"):
        ts, fraud = group["ts"].to_numpy(), group["is_fraud"].to_numpy(dtype=float)
        for i, idx in enumerate(group.index):
            rec = {}
            end = ts[i] - delay
            for days in (1, 7, 30):
                window = (ts >= end - pd.Timedelta(days=days)) & (ts <= end)
                rec[f"count_{days}"] = window.sum()
                rec[f"risk_{days}"] = fraud[window].sum() / window.sum() if window.any() else np.nan
            known = (ts <= end) & (fraud == 1)
            rec["since"] = (ts[i] - ts[known].max()) / np.timedelta64(1, "D") if known.any() else np.nan
            out[idx] = rec
    for _, group in rows.groupby("customer_id"):
        group = group.sort_values(["ts", "tx_row"])
        ts, amounts = group["ts"].to_numpy(), group["amount"].to_numpy()
        seen: set = set()
        for i, (idx, row) in enumerate(group.iterrows()):
            others = (ts >= ts[i] - pd.Timedelta(days=30)) & (ts <= ts[i])
            others[i] = False
            out[idx]["cust_count_30"] = others.sum()
            out[idx]["cust_mean_30"] = amounts[others].mean() if others.any() else np.nan
            out[idx]["new_merchant"] = float(row["merchant_id"] not in seen and i > 0)
            seen.add(row["merchant_id"])
    return pd.DataFrame.from_dict(out, orient="index")


def test_handbook_windows_new_merchants_and_days_since_fraud_match_the_reference(features):
    _, rows = features
    ref = _merchant_windows_reference(rows).loc[rows.index]
    pairs = {"cust_count_30d": "cust_count_30", "cust_mean_amount_30d": "cust_mean_30", "is_new_merchant": "new_merchant",
             "merch_days_since_fraud": "since",
             **{f"merch_count_{d}d": f"count_{d}" for d in (1, 7, 30)},
             **{f"merch_fraud_risk_{d}d": f"risk_{d}" for d in (1, 7, 30)}}
    for feature, reference in pairs.items():
        got, want = rows[feature].to_numpy(float), ref[reference].to_numpy(float)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=feature)
    assert rows["merch_fraud_risk_30d"].max() > 0 and rows["merch_count_1d"].max() > 0
    assert rows["is_new_merchant"].sum() > 0 and rows["merch_days_since_fraud"].notna().any()


def test_no_feature_of_an_earlier_transaction_depends_on_later_ones(conn, small_dataset):
    """Leakage: change every transaction after t (amounts, customers, merchants, labels) and delete
    some of them; no feature of any transaction before t changes."""
    delay_days = 7
    before = feature_frame(conn, compute_features(conn, small_dataset, label_delay_days=delay_days)).set_index("tx_row")
    cut = conn.execute(f"SELECT quantile_disc(ts, 0.6) FROM {small_dataset.table}").fetchall()[0][0]
    earlier = conn.execute(f"SELECT tx_row FROM {small_dataset.table} WHERE ts < ?", [cut]).fetchnumpy()["tx_row"]
    later_ids = [r[0] for r in conn.execute(f"SELECT transaction_id FROM {small_dataset.table} WHERE ts >= ? "
                                            "ORDER BY tx_row LIMIT 50", [cut]).fetchall()]
    app_labels.label(as_user(conn, "ana"), small_dataset, later_ids, "fraud")  # labels of later transactions change
    conn.execute(f"""UPDATE {small_dataset.table} SET amount = amount * 7 + 13, is_fraud = NOT is_fraud,
                     customer_id = 'C' || (tx_row % 3), merchant_id = 'M' || (tx_row % 2), lat = -lat, lon = -lon
                     WHERE ts >= ?""", [cut])
    conn.execute(f"DELETE FROM {small_dataset.table} WHERE ts >= ? AND tx_row % 4 = 0", [cut])
    after = feature_frame(conn, compute_features(conn, small_dataset, label_delay_days=delay_days)).set_index("tx_row")
    pd.testing.assert_frame_equal(after.loc[earlier], before.loc[earlier])
    assert not after.drop(index=earlier).equals(before.loc[after.drop(index=earlier).index])  # later rows did change
