"""Small files shaped like real-world fraud datasets, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CITIES = ["Lima", "Arequipa", "Cusco", "Trujillo", "Miraflores", "Piura", "Iquitos", "Chiclayo"]

# name -> (header, what the guessed mapping must find)
SHAPES: dict[str, tuple[str, dict[str, str]]] = {
    "location_payment": (
        "timestamp,amount,location,payment_method,fraudulent",
        {"timestamp": "timestamp", "amount": "amount", "city": "location", "label": "fraudulent"},
    ),
    "user_device": (
        "transaction_id,transaction_amount,location,timestamp,user_id,device_id,is_fraudulent",
        {"transaction_id": "transaction_id", "amount": "transaction_amount", "city": "location",
         "timestamp": "timestamp", "customer_id": "user_id", "device_id": "device_id", "label": "is_fraudulent"},
    ),
    "account_activity": (
        "transaction_datetime,transaction_amount,transaction_type,account_type,account_balance,account_age_days,fraudulent_activity",
        {"timestamp": "transaction_datetime", "amount": "transaction_amount", "label": "fraudulent_activity"},
    ),
    "unlabelled_customer": (
        "transaction_amount,transaction_date,transaction_type,account_balance_before,customer_age,customer_location",
        {"timestamp": "transaction_date", "amount": "transaction_amount", "city": "customer_location"},
    ),
    "handbook": (
        "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO",
        {"transaction_id": "TRANSACTION_ID", "timestamp": "TX_DATETIME", "customer_id": "CUSTOMER_ID",
         "merchant_id": "TERMINAL_ID", "amount": "TX_AMOUNT", "label": "TX_FRAUD", "fraud_scenario": "TX_FRAUD_SCENARIO"},
    ),
}


def shape_frame(shape: str, rows: int = 60, seed: int = 0) -> pd.DataFrame:
    """Rows with plausible values for one of the SHAPES, in that shape's column order."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-03-01")
    ts = start + pd.to_timedelta(np.sort(rng.integers(0, 30 * 86_400, rows)), unit="s")
    amount = np.round(rng.lognormal(3.5, 0.8, rows), 2)
    fraud = (rng.random(rows) < 0.15).astype(int)
    city = rng.choice(CITIES, rows)
    if shape == "location_payment":
        data = {"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "amount": amount, "location": city,
                "payment_method": rng.choice(["credit_card", "debit_card", "yape"], rows), "fraudulent": fraud}
    elif shape == "user_device":
        data = {"transaction_id": [f"T{i:05d}" for i in range(rows)], "transaction_amount": amount, "location": city,
                "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S"), "user_id": rng.choice([f"U{i}" for i in range(8)], rows),
                "device_id": rng.choice([f"D{i}" for i in range(12)], rows),
                "is_fraudulent": np.where(fraud == 1, "True", "False")}
    elif shape == "account_activity":
        data = {"transaction_datetime": ts.strftime("%d/%m/%Y %H:%M"), "transaction_amount": amount,
                "transaction_type": rng.choice(["purchase", "transfer", "withdrawal"], rows),
                "account_type": rng.choice(["savings", "checking"], rows),
                "account_balance": np.round(rng.uniform(0, 10_000, rows), 2),
                "account_age_days": rng.integers(1, 4000, rows), "fraudulent_activity": np.where(fraud == 1, "yes", "no")}
    elif shape == "unlabelled_customer":
        data = {"transaction_amount": amount, "transaction_date": ts.strftime("%Y-%m-%d"),
                "transaction_type": rng.choice(["purchase", "withdrawal"], rows),
                "account_balance_before": np.round(rng.uniform(0, 5_000, rows), 2),
                "customer_age": rng.integers(18, 90, rows), "customer_location": city}
    elif shape == "handbook":
        secs = (ts - pd.Timestamp("2024-03-01")).total_seconds().astype(int)
        data = {"TRANSACTION_ID": np.arange(rows), "TX_DATETIME": ts.strftime("%Y-%m-%d %H:%M:%S"),
                "CUSTOMER_ID": rng.integers(0, 10, rows), "TERMINAL_ID": rng.integers(0, 15, rows), "TX_AMOUNT": amount,
                "TX_TIME_SECONDS": secs, "TX_TIME_DAYS": secs // 86_400, "TX_FRAUD": fraud,
                "TX_FRAUD_SCENARIO": np.where(fraud == 1, rng.integers(1, 4, rows), 0)}
    else:
        raise KeyError(shape)
    frame = pd.DataFrame(data)
    assert ",".join(frame.columns) == SHAPES[shape][0]
    return frame


def write_shape(folder: Path, shape: str, rows: int = 60, suffix: str = ".csv") -> tuple[Path, pd.DataFrame]:
    frame = shape_frame(shape, rows)
    path = folder / f"{shape}{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path, frame
