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


GOOD = "timestamp,amount,customer_id\n2024-01-01 10:00,10.5,C1\n2024-01-01 11:00,20,C2\n"


def write_file(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# Files a fraud team might really be sent, each wrong in its own way:
# name -> (file name, content, fragments the rejection must contain)
BAD_FILES: dict[str, tuple[str, bytes | str, list[str]]] = {
    "broken_workbook": ("book.xlsx", b"PK\x03\x04" + b"\x00" * 64, ["book.xlsx", "not a readable Excel workbook", "CSV"]),
    "old_spreadsheet": ("book.xls", b"\xd0\xcf\x11\xe0" + b"\x00" * 64, ["book.xls", "'.xls' files are not supported", ".xlsx"]),
    "binary_named_csv": ("random.csv", bytes(range(256)) * 8, ["random.csv", "binary data"]),
    "latin1_as_utf8": ("latin.csv", "timestamp,amount,city\n2024-01-01,1,Lima\n2024-01-02,2,Huánuco\n".encode("latin-1"),
                       ["latin.csv", "row 3", "latin-1"]),
    "zero_bytes": ("empty.csv", b"", ["empty.csv", "empty (0 bytes)"]),
    "header_only": ("header.csv", "timestamp,amount\n", ["header.csv", "no data rows"]),
    "blank_first_line": ("blank.csv", "\n2024-01-01,1\n", ["blank.csv", "row 1", "header"]),
    "no_timestamp_column": ("notime.csv", "amount,customer\n10,C1\n", ["notime.csv", "required role 'timestamp'", "--map"]),
    "bad_timestamp": ("dates.csv", "timestamp,amount\n2024-01-01,1\n2024-01-02,2\nyesterday,3\n",
                      ["dates.csv", "row 4", "column 'timestamp'", "'yesterday' is not a date/time", "--skip-bad-rows"]),
    "bad_amount": ("amounts.csv", "timestamp,amount\n2024-01-01,1\n2024-01-02,ten\n2024-01-03,zero\n",
                   ["amounts.csv", "row 3", "column 'amount'", "'ten'", "2 such values", "3, 4"]),
    "mixed_decimals": ("mixed.csv", 'timestamp,amount\n2024-01-01,"1.234,56"\n2024-01-02,12.50\n',
                       ["mixed.csv", "row 2", "column 'amount'", "',' as the decimal separator (row 2 ('1.234,56'))",
                        "'.' as the decimal separator (row 3 ('12.50'))", "--decimal"]),
    "missing_amount": ("gap.csv", "timestamp,amount\n2024-01-01,\n", ["gap.csv", "row 2", "column 'amount'", "empty value"]),
    "duplicate_ids": ("dups.csv", "transaction_id,timestamp,amount\nA,2024-01-01,1\nB,2024-01-01,2\nA,2024-01-02,3\n",
                      ["dups.csv", "row 4", "column 'transaction_id'", "'A' appears 2 times (rows 2 and 4)", "unique"]),
    "ragged_short": ("short.csv", "timestamp,amount,city\n2024-01-01,1,Lima\n2024-01-02,2\n",
                     ["short.csv", "row 3", "2 fields where the header has 3"]),
    "ragged_long": ("long.csv", "timestamp,amount\n2024-01-01,1\n2024-01-02,2,extra,more\n",
                    ["long.csv", "row 3", "more fields than the header's 2"]),
    "huge_line": ("huge.csv", "timestamp,amount,note\n2024-01-01,1,ok\n2024-01-02,2," + "x" * (3 << 20) + "\n",
                  ["huge.csv", "row 3", "longer than"]),
    "huge_header": ("wide.csv", "a" * (2 << 20), ["wide.csv", "row 1", "longer than 1 MiB"]),
    "fake_parquet": ("fake.parquet", "timestamp,amount\n2024-01-01,1\n", ["fake.parquet", "not a Parquet file"]),
    "duplicate_header": ("twice.csv", "timestamp,amount,amount\n2024-01-01,1,2\n", ["twice.csv", "row 1", "'amount' more than once"]),
    "unclosed_quote": ("quote.csv", 'timestamp,amount,note\n2024-01-01,1,"never closed\n2024-01-02,2,x\n', ["quote.csv"]),
}
