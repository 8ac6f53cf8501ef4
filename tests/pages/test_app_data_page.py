"""The Data page driven through Streamlit's AppTest, on a real DuckDB file."""

from __future__ import annotations

import pytest

from data.datasets import get_dataset, list_datasets
from tests.apptest import app, metric, one, pick_server_file, texts
from tests.conftest import digest
from tests.samples import write_shape

pytestmark = pytest.mark.usefixtures("server_like_navigation")

def test_shows_the_active_datasets_rows(conn, small_dataset):
    at = app().run()
    assert not at.exception
    assert metric(at, "Rows") == f"{small_dataset.row_count:,}"
    assert one(at.selectbox, "Active dataset").value == "small"
    missing = next(d.value for d in at.dataframe if "missing_pct" in d.value.columns)
    assert set(missing["column"]) >= {"ts", "amount", "customer_id"}
    assert missing.set_index("column").loc["device_id", "missing"] > 0  # card-present rows have no device


def test_an_empty_database_gets_demo_data(db_path, monkeypatch):
    monkeypatch.setenv("CENTINELA_DEMO_ROWS", "3000")
    at = app().run()
    assert not at.exception
    assert metric(at, "Rows") == "3,000"
    from data.db import connect

    conn = connect(db_path)
    demo = get_dataset(conn, "demo")
    assert demo.row_count == 3000
    assert conn.execute("SELECT count(*) FROM feature_sets WHERE dataset_id = ?", [demo.id]).fetchall()[0][0] == 1


def test_generate_form_creates_and_activates_a_dataset(conn, small_dataset):
    at = app().run()
    at.text_input(key="generate-name").set_value("fresh")
    one(at.number_input, "Transactions").set_value(2000)
    one(at.number_input, "Seed").set_value(3)
    one(at.button, "Generate").click()
    at.run()
    assert not at.exception
    assert get_dataset(conn, "fresh").row_count == 2000
    assert one(at.selectbox, "Active dataset").value == "fresh"
    assert metric(at, "Rows") == "2,000"
    assert "Generated 'fresh'" in texts(at)


def test_import_from_a_path_with_the_guessed_mapping(conn, small_dataset, tmp_path, monkeypatch):
    path, frame = write_shape(tmp_path, "handbook", rows=80)
    at = app().run()
    pick_server_file(at, path, monkeypatch)
    at.run()
    assert not at.exception
    assert one(at.selectbox, "Merchant / terminal id").value == "TERMINAL_ID"
    assert one(at.selectbox, "Timestamp *").value == "TX_DATETIME"
    at.text_input(key="import-name").set_value("handbook-copy")
    one(at.button, "Import").click()
    at.run()
    assert not at.exception, at.exception
    assert get_dataset(conn, "handbook-copy").row_count == len(frame)
    assert metric(at, "Rows") == f"{len(frame):,}"


def test_upload_with_an_edited_mapping(conn, small_dataset, tmp_path):
    path, frame = write_shape(tmp_path, "user_device", rows=50)
    at = app().run()
    at.file_uploader[0].set_value(("devices.csv", path.read_bytes(), "text/csv"))
    at.run()
    one(at.selectbox, "Device id").set_value("(none)")
    at.text_input(key="import-name").set_value("uploaded")
    one(at.button, "Import").click()
    at.run()
    assert not at.exception
    dataset = get_dataset(conn, "uploaded")
    assert dataset.row_count == len(frame) and not dataset.has_role("device_id")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b"timestamp,amount\n2024-01-01,1\n2024-01-02,2,3\n", ["bad.csv", "row 3", "more fields"]),
        (b"timestamp,amount\n2024-01-01,1\nsoon,2\n", ["bad.csv", "row 3", "column 'timestamp'", "'soon'"]),
    ],
)
def test_a_bad_upload_shows_the_error_and_changes_nothing(conn, small_dataset, content, fragments):
    before = digest(conn)
    at = app().run()
    at.file_uploader[0].set_value(("bad.csv", content, "text/csv"))
    at.run()
    one(at.button, "Import").click()
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    for fragment in fragments:
        assert fragment in errors
    assert "database is unchanged" in texts(at)
    assert digest(conn) == before


def test_an_unreadable_file_is_explained_before_import(conn, small_dataset):
    at = app().run()
    at.file_uploader[0].set_value(("sheet.xls", b"\xd0\xcf\x11\xe0rest", "application/octet-stream"))
    at.run()
    assert "sheet.xls: '.xls' files are not supported" in " ".join(e.value for e in at.error)
    assert not [b for b in at.button if b.label == "Import"]


def test_delete_then_undo(conn, small_dataset):
    at = app().run()
    one(at.text_input, "Type its name to confirm").set_value("wrong")
    one(at.button, "Move to trash").click()
    at.run()
    assert "does not match" in " ".join(e.value for e in at.error)
    assert [d.name for d in list_datasets(conn)] == ["small"]
    one(at.text_input, "Type its name to confirm").set_value("small")
    one(at.button, "Move to trash").click()
    at.run()
    assert list_datasets(conn) == []
    assert "There is no dataset yet" in texts(at)
    one(at.button, "Undo the last delete").click()
    at.run()
    assert [d.name for d in list_datasets(conn)] == ["small"]
    assert metric(at, "Rows") == f"{small_dataset.row_count:,}"


def test_compute_features_button(conn, small_dataset):
    at = app().run()
    one(at.number_input, "Label delay (days)").set_value(3)
    one(at.button, "Compute features").click()
    at.run()
    assert not at.exception
    assert "Computed" in texts(at)
    assert conn.execute("SELECT params FROM feature_sets").fetchall()[0][0] == '{"label_delay_days": 3}'



def test_spark_alerts_come_in_from_the_import_folder_once(conn, small_dataset, tmp_path, monkeypatch):
    """A `spark score` output (here written by DuckDB in its layout: alerts/day=.../*.parquet with
    rows, features and scores) in the import folder; the Data page brings its alerts in, once."""
    from application import datasets as app_datasets
    from application import runs as app_runs
    from data.db import sql_string
    from data.features import load_feature_set
    from tests.conftest import as_user

    ctx = as_user(conn)
    app_datasets.compute_features(ctx, small_dataset)
    run = app_runs.fit(ctx, small_dataset, ["isolation_forest"])
    feature_set = load_feature_set(conn, small_dataset)
    day = tmp_path / "imports" / "lake-run" / "alerts" / "day=2026-01-01"
    day.mkdir(parents=True)
    conn.execute(
        f"COPY (SELECT 'SPARK-' || t.transaction_id AS transaction_id, t.* EXCLUDE (tx_row, transaction_id), "
        f"f.* EXCLUDE (tx_row, amount), s.score, true AS alert, s.run_id, ? AS feature_set_version "
        f"FROM {small_dataset.table} t JOIN {feature_set.table} f USING (tx_row) JOIN scores s USING (tx_row) "
        f"WHERE s.run_id = ? ORDER BY s.score DESC LIMIT 5) TO {sql_string(str(day / 'part-0.parquet'))} (FORMAT parquet)",
        [feature_set.version, run.id])
    monkeypatch.setenv("CENTINELA_IMPORT_DIR", str(tmp_path / "imports"))
    at = app().run()
    one(at.selectbox, "Spark output").set_value("lake-run")
    at.run()
    one(at.button, "Import the alerts").click()
    at.run()
    assert not at.exception, at.exception
    assert "Imported 5 alerts into 'small' (0 of 5 were already there)." in texts(at)
    assert get_dataset(conn, "small").row_count == small_dataset.row_count + 5
    stored = conn.execute("SELECT count(*) FROM scores s JOIN tx_1 t USING (tx_row) WHERE s.run_id = ? AND "
                          "t.transaction_id LIKE 'SPARK-%'", [run.id]).fetchone()[0]
    assert stored == 5
    before = digest(conn)
    one(at.button, "Import the alerts").click()
    at.run()
    assert "Imported 0 alerts into 'small' (5 of 5 were already there)." in texts(at)
    after = digest(conn)
    assert {t: v for t, v in after.items() if t != "audit"} == {t: v for t, v in before.items() if t != "audit"}
