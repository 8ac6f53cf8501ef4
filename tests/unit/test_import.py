"""Importing real-world file shapes: through the page's code path and through the command line."""

from __future__ import annotations

import pandas as pd
import pytest

from application import datasets as app_datasets
from data.conventions import ImportOptions
from data.datasets import get_dataset
from data.errors import UserError
from data.features import compute_features, feature_catalogue
from data.ingest import inspect_file
from tests.conftest import as_user
from tests.samples import SHAPES, write_shape


def _label_truth(shape: str, frame: pd.DataFrame) -> int | None:
    column = SHAPES[shape][1].get("label")
    if column is None:
        return None
    return int(frame[column].astype(str).str.lower().isin(["1", "true", "yes"]).sum())


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_imports_through_the_page_code(conn, tmp_path, shape):
    path, frame = write_shape(tmp_path, shape)
    info = inspect_file(conn, path)  # what the page does first: preview + guessed mapping
    mapping = info.guessed_mapping()
    assert {k: v for k, v in mapping.roles.items() if k in SHAPES[shape][1]} == SHAPES[shape][1]
    result = app_datasets.import_dataset(as_user(conn, "test"), path, shape, mapping, features=False).report
    dataset = result.dataset
    assert dataset.row_count == len(frame) == result.rows_read
    assert result.skipped_rows == 0 and result.problems == []
    stored = conn.execute(f"SELECT * FROM {dataset.table} ORDER BY tx_row").df()
    assert stored["tx_row"].tolist() == list(range(len(frame)))
    amount_col = SHAPES[shape][1]["amount"]
    assert stored["amount"].tolist() == pytest.approx(frame[amount_col].tolist())
    assert stored["ts"].notna().all()
    assert stored["transaction_id"].is_unique
    truth = _label_truth(shape, frame)
    if truth is not None:
        assert int(stored["is_fraud"].sum()) == truth
    else:
        assert "is_fraud" not in stored
    if "transaction_id" not in SHAPES[shape][1]:
        assert stored["transaction_id"].iloc[0] == "R000000001"
        assert any("generated" in n for n in result.notes)


def test_customer_less_files_disable_customer_features_with_a_reason(conn, tmp_path):
    path, _ = write_shape(tmp_path, "account_activity")
    dataset = app_datasets.import_dataset(as_user(conn, "test"), path, "no-customers", features=False).report.dataset
    fs = compute_features(conn, dataset)
    assert "secs_since_prev" not in fs.computed and "hour" in fs.computed
    assert "customer" in fs.skipped["cust_count_24h"]
    catalogue = feature_catalogue(conn, dataset).set_index("feature")
    assert catalogue.loc["amount_zscore_customer", "status"] == "skipped"
    assert "customer" in catalogue.loc["amount_zscore_customer", "reason"]
    assert catalogue.loc["hour", "status"] == "computed"


def test_city_names_resolve_to_coordinates(conn, tmp_path):
    path, frame = write_shape(tmp_path, "user_device")
    dataset = app_datasets.import_dataset(as_user(conn, "test"), path, "geo", features=False).report.dataset
    rows = conn.execute(f"SELECT city, lat, lon FROM {dataset.table}").df()
    lima = rows[rows["city"] == "Lima"]
    assert lima["lat"].round(2).eq(-12.05).all() and lima["lon"].round(2).eq(-77.04).all()
    assert rows["lat"].notna().all()


def test_a_mapped_coordinate_is_never_overwritten_by_the_city(conn, tmp_path):
    path = tmp_path / "half.csv"
    path.write_text("timestamp,amount,city,latitude\n2024-01-01,1,Cusco,-13.5\n2024-01-02,2,Atlantis,-10.0\n")
    result = app_datasets.import_dataset(as_user(conn, "test"), path, "half", features=False).report
    rows = conn.execute(f"SELECT lat, lon FROM {result.dataset.table} ORDER BY tx_row").fetchall()
    assert rows[0] == (-13.5, pytest.approx(-71.9675)) and rows[1] == (-10.0, None)
    assert any("1 of 2 place names" in n and "Atlantis" in n for n in result.notes)


def test_parquet_imports_with_its_own_types(conn, tmp_path):
    path, frame = write_shape(tmp_path, "handbook", suffix=".parquet")
    result = app_datasets.import_dataset(as_user(conn, "test"), path, "handbook-parquet", features=False).report
    assert result.dataset.row_count == len(frame)
    assert result.dataset.has_role("merchant_id") and result.dataset.has_role("label")


def test_extra_columns_are_kept_with_safe_names(conn, tmp_path):
    path, frame = write_shape(tmp_path, "account_activity")
    dataset = app_datasets.import_dataset(as_user(conn, "test"), path, "extras", features=False).report.dataset
    assert set(dataset.extras("categorical")) == {"transaction_type", "account_type"}
    assert set(dataset.extras("numeric")) == {"account_balance", "account_age_days"}
    balance = conn.execute(f"SELECT account_balance FROM {dataset.table} ORDER BY tx_row").df()["account_balance"]
    assert balance.tolist() == pytest.approx(frame["account_balance"].tolist())


def test_skip_bad_rows_counts_and_lists_them(conn, tmp_path):
    path = tmp_path / "some_bad.csv"
    path.write_text("timestamp,amount\n2024-01-01 10:00,10\nnot a date,20\n2024-01-02 11:00,abc\n2024-01-03 12:00,30\n")
    result = app_datasets.import_dataset(as_user(conn, "test"), path, "partial", skip_bad_rows=True, features=False).report
    assert result.rows_read == 4 and result.rows_stored == 2 and result.skipped_rows == 2
    by_column = {p["column"]: p for p in result.problems}
    assert by_column["timestamp"]["rows"] == [3] and by_column["timestamp"]["value"] == "not a date"
    assert by_column["amount"]["rows"] == [4] and by_column["amount"]["value"] == "abc"
    stored = get_dataset(conn, "partial")
    assert stored.import_report["problems"] == result.problems
    tx_rows = [r[0] for r in conn.execute(f"SELECT tx_row FROM {stored.table} ORDER BY 1").fetchall()]
    assert tx_rows == [0, 3]  # the row index in the file survives


def test_unparseable_optional_values_are_kept_as_empty_and_counted(conn, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("timestamp,amount,fraud\n2024-01-01,10,1\n2024-01-02,20,maybe\n2024-01-03,30,0\n")
    result = app_datasets.import_dataset(as_user(conn, "test"), path, "labels", features=False).report
    assert result.rows_stored == 3
    assert result.problems[0]["column"] == "fraud" and result.problems[0]["rows"] == [3]
    assert result.problems[0]["value"] == "maybe"
    values = [r[0] for r in conn.execute(f"SELECT is_fraud FROM {result.dataset.table} ORDER BY tx_row").fetchall()]
    assert values == [True, None, False]


def test_amount_formats_semicolons_and_day_first_dates(conn, tmp_path):
    path = tmp_path / "peru.csv"
    path.write_text('fecha;monto;ciudad\n05/03/2024 13:45;"S/ 1,250.50";Cusco\n06/03/2024;PEN 30;Arequipa\n')
    # Every date could be day-first or month-first: refused until the order is said.
    with pytest.raises(UserError, match="row 2, column 'fecha': every date could be day-first or month-first"):
        app_datasets.import_dataset(as_user(conn, "test"), path, "peru", features=False)
    dataset = app_datasets.import_dataset(as_user(conn, "test"), path, "peru", options=ImportOptions(date_order="dmy"),
                                          features=False).report.dataset
    rows = conn.execute(f"SELECT ts, amount, lat FROM {dataset.table} ORDER BY tx_row").fetchall()
    assert rows[0][0] == pd.Timestamp("2024-03-05 13:45") and rows[0][1] == 1250.5
    assert rows[1][0] == pd.Timestamp("2024-03-06") and rows[1][1] == 30.0
    assert rows[0][2] == pytest.approx(-13.532)


def test_latin1_and_utf16_files_import_with_the_right_encoding(conn, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("fecha,monto,ciudad\n2024-01-01,10,Huánuco\n".encode("latin-1"))
    dataset = app_datasets.import_dataset(as_user(conn, "test"), latin, "latin", encoding="latin-1", features=False).report.dataset
    assert conn.execute(f"SELECT city, lat FROM {dataset.table}").fetchall()[0][0] == "Huánuco"
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("fecha,monto\n2024-01-01,10\n".encode("utf-16"))
    assert app_datasets.import_dataset(as_user(conn, "test"), utf16, "utf16", features=False).report.dataset.row_count == 1
