"""The Data page driven through Streamlit's AppTest, on a real DuckDB file."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from data.datasets import get_dataset, list_datasets
from tests.conftest import ROOT, digest
from tests.samples import write_shape

TIMEOUT = 120


@pytest.fixture(autouse=True)
def _server_like_navigation(monkeypatch):
    """Run app.py on every AppTest run, as a warm `streamlit run` server does.

    AppTest resets Streamlit's pages/-folder detection before each run, so with a pages/
    folder beside app.py its reruns would execute the page alone; a server clears that flag
    for good the first time st.navigation runs. The cold-server path is tested in the browser.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def _one(elements, label: str):
    found = [e for e in elements if e.label == label]
    assert len(found) == 1, f"{label!r} among {[e.label for e in elements]}"
    return found[0]


def _metric(at: AppTest, label: str) -> str:
    return _one(at.metric, label).value


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in (at.success, at.info, at.error, at.warning, at.markdown, at.caption) for e in kind]
    return "\n".join(str(p) for p in parts)


def test_shows_the_active_datasets_rows(conn, small_dataset):
    at = _app().run()
    assert not at.exception
    assert _metric(at, "Rows") == f"{small_dataset.row_count:,}"
    assert _one(at.selectbox, "Active dataset").value == "small"
    missing = next(d.value for d in at.dataframe if "missing_pct" in d.value.columns)
    assert set(missing["column"]) >= {"ts", "amount", "customer_id"}
    assert missing.set_index("column").loc["device_id", "missing"] > 0  # card-present rows have no device


def test_an_empty_database_gets_demo_data(db_path, monkeypatch):
    monkeypatch.setenv("CENTINELA_DEMO_ROWS", "3000")
    at = _app().run()
    assert not at.exception
    assert _metric(at, "Rows") == "3,000"
    from data.db import connect

    conn = connect(db_path)
    demo = get_dataset(conn, "demo")
    assert demo.row_count == 3000
    assert conn.execute("SELECT count(*) FROM feature_sets WHERE dataset_id = ?", [demo.id]).fetchall()[0][0] == 1


def test_generate_form_creates_and_activates_a_dataset(conn, small_dataset):
    at = _app().run()
    at.text_input(key="generate-name").set_value("fresh")
    _one(at.number_input, "Transactions").set_value(2000)
    _one(at.number_input, "Seed").set_value(3)
    _one(at.button, "Generate").click()
    at.run()
    assert not at.exception
    assert get_dataset(conn, "fresh").row_count == 2000
    assert _one(at.selectbox, "Active dataset").value == "fresh"
    assert _metric(at, "Rows") == "2,000"
    assert "Generated 'fresh'" in _texts(at)


def test_import_from_a_path_with_the_guessed_mapping(conn, small_dataset, tmp_path):
    path, frame = write_shape(tmp_path, "handbook", rows=80)
    at = _app().run()
    _one(at.radio, "Source").set_value("A path on this server")
    at.run()
    _one(at.text_input, "Path to a CSV or Parquet file").set_value(str(path))
    at.run()
    assert not at.exception
    assert _one(at.selectbox, "Merchant / terminal id").value == "TERMINAL_ID"
    assert _one(at.selectbox, "Timestamp *").value == "TX_DATETIME"
    at.text_input(key="import-name").set_value("handbook-copy")
    _one(at.button, "Import").click()
    at.run()
    assert not at.exception, at.exception
    assert get_dataset(conn, "handbook-copy").row_count == len(frame)
    assert _metric(at, "Rows") == f"{len(frame):,}"


def test_upload_with_an_edited_mapping(conn, small_dataset, tmp_path):
    path, frame = write_shape(tmp_path, "user_device", rows=50)
    at = _app().run()
    at.file_uploader[0].set_value(("devices.csv", path.read_bytes(), "text/csv"))
    at.run()
    _one(at.selectbox, "Device id").set_value("(none)")
    at.text_input(key="import-name").set_value("uploaded")
    _one(at.button, "Import").click()
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
    at = _app().run()
    at.file_uploader[0].set_value(("bad.csv", content, "text/csv"))
    at.run()
    _one(at.button, "Import").click()
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    for fragment in fragments:
        assert fragment in errors
    assert "database is unchanged" in _texts(at)
    assert digest(conn) == before


def test_an_unreadable_file_is_explained_before_import(conn, small_dataset):
    at = _app().run()
    at.file_uploader[0].set_value(("sheet.xlsx", b"PK\x03\x04rest", "application/octet-stream"))
    at.run()
    assert "sheet.xlsx: '.xlsx' files are not supported" in " ".join(e.value for e in at.error)
    assert not [b for b in at.button if b.label == "Import"]


def test_delete_then_undo(conn, small_dataset):
    at = _app().run()
    _one(at.text_input, "Type its name to confirm").set_value("wrong")
    _one(at.button, "Move to trash").click()
    at.run()
    assert "does not match" in " ".join(e.value for e in at.error)
    assert [d.name for d in list_datasets(conn)] == ["small"]
    _one(at.text_input, "Type its name to confirm").set_value("small")
    _one(at.button, "Move to trash").click()
    at.run()
    assert list_datasets(conn) == []
    assert "There is no dataset yet" in _texts(at)
    _one(at.button, "Undo the last delete").click()
    at.run()
    assert [d.name for d in list_datasets(conn)] == ["small"]
    assert _metric(at, "Rows") == f"{small_dataset.row_count:,}"


def test_compute_features_button(conn, small_dataset):
    at = _app().run()
    _one(at.number_input, "Label delay (days)").set_value(3)
    _one(at.button, "Compute features").click()
    at.run()
    assert not at.exception
    assert "Computed" in _texts(at)
    assert conn.execute("SELECT params FROM feature_sets").fetchall()[0][0] == '{"label_delay_days": 3}'

