"""The synthetic Peru generator: deterministic, realistic shape, and each fraud scenario as described."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.errors import UserError
from data.geography import PERU_BBOX, PLACES, haversine_km
from data.synthetic import (
    CATEGORY_NAMES,
    IMPOSSIBLE_TRAVEL_MIN_KM,
    SCENARIOS,
    SyntheticConfig,
    closed_hours,
    generate_transactions,
)

CFG = SyntheticConfig(rows=40_000, seed=11, fraud_rate=0.02, days=60)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_transactions(CFG)


def test_same_seed_same_rows_other_seed_other_rows(frame):
    pd.testing.assert_frame_equal(frame, generate_transactions(CFG))
    other = generate_transactions(SyntheticConfig(rows=40_000, seed=12, fraud_rate=0.02, days=60))
    assert not frame["amount"].equals(other["amount"])


def test_row_count_fraud_rate_and_every_scenario(frame):
    assert len(frame) == CFG.rows
    assert frame["is_fraud"].sum() == round(CFG.rows * CFG.fraud_rate)
    counts = frame["fraud_scenario"].value_counts()
    assert set(counts.index) == set(SCENARIOS)
    assert (frame["fraud_scenario"].notna() == frame["is_fraud"]).all()


def test_default_fraud_rate_is_about_half_a_percent():
    small = generate_transactions(SyntheticConfig(rows=20_000, seed=3))
    assert small["is_fraud"].mean() == pytest.approx(0.005, abs=0.0005)


def test_time_order_unique_ids_and_period(frame):
    assert frame["ts"].is_monotonic_increasing
    assert frame["transaction_id"].is_unique
    assert frame["ts"].min() >= pd.Timestamp(CFG.start)
    assert frame["ts"].max() < pd.Timestamp(CFG.start) + pd.Timedelta(days=CFG.days + 1)


def test_places_are_real_peruvian_cities_with_their_coordinates(frame):
    known = {p[0] for p in PLACES}
    assert set(frame["district"].unique()) <= known
    assert frame["lat"].between(PERU_BBOX["lat_min"], PERU_BBOX["lat_max"]).all()
    assert frame["lon"].between(PERU_BBOX["lon_min"], PERU_BBOX["lon_max"]).all()
    coords = {p[0]: (p[3], p[4]) for p in PLACES}
    lat = frame["district"].map(lambda d: coords[d][0])
    lon = frame["district"].map(lambda d: coords[d][1])
    # Merchants sit within a few km of their district's centre.
    assert (haversine_km(frame["lat"], frame["lon"], lat, lon) < 10).all()
    assert frame["city"].value_counts().index[0] == "Lima"
    assert {"Arequipa", "Cusco", "Trujillo", "Chiclayo", "Piura", "Iquitos", "Huancayo"} <= set(frame["city"])


def test_lunch_and_dinner_peaks_and_weekend_pattern(frame):
    legit = frame[~frame["is_fraud"]]
    restaurants = legit[legit["merchant_category"] == "restaurant"]
    hours = restaurants["ts"].dt.hour.value_counts()
    assert hours[13] > 2 * hours.get(16, 0)
    assert hours[20] > 2 * hours.get(17, 0)
    per_day = legit.groupby(legit["ts"].dt.date).size()
    weekday = pd.Series(pd.to_datetime(per_day.index).day_of_week, index=per_day.index)
    assert per_day[weekday == 5].mean() > 1.2 * per_day[weekday == 1].mean()


def test_amounts_in_soles_channels_and_wallets(frame):
    assert (frame["amount"] > 0).all()
    assert 20 < frame.loc[~frame["is_fraud"], "amount"].median() < 120
    assert set(frame["channel"].unique()) == {"chip", "contactless", "online", "delivery_app", "wallet"}
    wallets = frame[frame["payment_method"].isin(["yape", "plin"]) & (frame["merchant_category"] != "delivery")]
    assert (wallets["channel"] == "wallet").all()
    digital = frame["channel"].isin(["online", "delivery_app", "wallet"])
    assert frame.loc[~digital, "device_id"].isna().all()


def _customer_median(frame: pd.DataFrame) -> pd.Series:
    return frame[~frame["is_fraud"]].groupby("customer_id")["amount"].median()


def test_card_testing_is_bursts_of_small_online_amounts(frame):
    ct = frame[frame["fraud_scenario"] == "card_testing"].sort_values("ts")
    assert (ct["amount"] < 10).all()
    assert (ct["channel"] == "online").all()
    gaps = ct.groupby("customer_id")["ts"].diff().dropna()
    assert (gaps < pd.Timedelta(minutes=15)).mean() > 0.9


def test_account_takeover_is_new_device_and_high_amount(frame):
    ato = frame[frame["fraud_scenario"] == "account_takeover"]
    legit_devices = set(zip(frame.loc[~frame["is_fraud"], "customer_id"], frame.loc[~frame["is_fraud"], "device_id"], strict=True))
    assert not any((c, d) in legit_devices for c, d in zip(ato["customer_id"], ato["device_id"], strict=True))
    assert ato["device_id"].notna().all()
    median = _customer_median(frame)
    ratio = ato["amount"] / ato["customer_id"].map(median)
    assert (ratio.dropna() > 5).mean() > 0.9


def test_impossible_travel_is_far_and_soon_after_previous(frame):
    ordered = frame.sort_values(["customer_id", "ts"])
    prev = ordered.groupby("customer_id")[["lat", "lon", "ts"]].shift()
    it = ordered["fraud_scenario"] == "impossible_travel"
    km = haversine_km(ordered.loc[it, "lat"], ordered.loc[it, "lon"], prev.loc[it, "lat"], prev.loc[it, "lon"])
    hours = (ordered.loc[it, "ts"] - prev.loc[it, "ts"]).dt.total_seconds() / 3600
    # The previous transaction is usually the genuine anchor (another may fall in between).
    assert (km >= IMPOSSIBLE_TRAVEL_MIN_KM * 0.9).mean() > 0.8
    assert (hours <= 2).mean() > 0.8
    assert ordered.loc[it, "channel"].isin(["chip", "contactless"]).all()


def test_compromised_terminal_fraud_is_confined_to_days_at_few_merchants(frame):
    ct = frame[frame["fraud_scenario"] == "compromised_terminal"]
    spans = ct.groupby("merchant_id")["ts"].agg(lambda s: (s.max() - s.min()).days)
    assert (spans <= 7).all()
    assert ct["merchant_id"].nunique() < len(ct) / 3


def test_amount_spike_is_many_times_the_customers_usual(frame):
    spikes = frame[frame["fraud_scenario"] == "amount_spike"]
    ratio = spikes["amount"] / spikes["customer_id"].map(_customer_median(frame))
    assert ratio.dropna().median() > 5


def test_off_hours_fraud_happens_while_the_merchant_is_closed(frame):
    off = frame[frame["fraud_scenario"] == "off_hours"]
    closed = off.apply(lambda r: r["ts"].hour in closed_hours(r["merchant_category"]), axis=1)
    assert closed.all()
    ratio = off["amount"] / off["customer_id"].map(_customer_median(frame))
    assert ratio.dropna().median() > 3
    legit = frame[~frame["is_fraud"]]
    legit_closed = legit.apply(lambda r: r["ts"].hour in closed_hours(r["merchant_category"]), axis=1)
    assert not legit_closed.any()


@pytest.mark.parametrize("bad", [dict(rows=10), dict(fraud_rate=0.5), dict(days=0)])
def test_out_of_range_settings_are_refused(bad):
    with pytest.raises(UserError, match="must be between"):
        generate_transactions(SyntheticConfig(**bad))


def test_categories_have_merchant_codes(frame):
    assert set(frame["merchant_category"].unique()) <= set(CATEGORY_NAMES)
    assert frame["mcc"].str.fullmatch(r"\d{4}").all()
    assert np.isin(frame.loc[frame["merchant_category"] == "restaurant", "mcc"], ["5812"]).all()
