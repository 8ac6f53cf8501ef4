"""The import cases of tests/import_cases.py through the Data page (AppTest): the user sets the
time zone, the decimal separator, the date order, the epoch unit, the sheet, the encoding and the
time-of-day column with the page's own widgets; the stored values are the intended ones and the
page shows the import report. A refused file shows its row, column and reason and changes nothing."""

from __future__ import annotations

import pytest

from dashboard.mapping_editor import DECIMAL_CHOICES, EPOCH_CHOICES, NONE, ORDER_CHOICES
from data.datasets import get_dataset
from tests.apptest import app, metric, one, pick_server_file, texts
from tests.conftest import digest
from tests.import_cases import CASES, assert_report, assert_stored

pytestmark = pytest.mark.usefixtures("server_like_navigation")


def _label(choices: dict, value) -> str:
    return next(label for label, v in choices.items() if v == value)


def _import_on_the_page(tmp_path, case, monkeypatch):
    path = tmp_path / case.file
    case.write(path)
    at = app().run()
    one(at.selectbox, "Text encoding (CSV)").set_value(case.encoding)
    pick_server_file(at, path, monkeypatch)
    at.run()
    if at.error and not [b for b in at.button if b.label == "Import"]:
        return at  # refused on inspection, before any option is offered
    if case.sheet:
        one(at.selectbox, "Sheet").set_value(case.sheet)
        at.run()
    one(at.selectbox, "Time zone of the dataset").set_value(case.timezone)
    one(at.selectbox, "Decimal separator").set_value(_label(DECIMAL_CHOICES, case.decimal))
    one(at.selectbox, "Date order").set_value(_label(ORDER_CHOICES, case.date_order))
    one(at.selectbox, "Timestamp values").set_value(_label(EPOCH_CHOICES, case.epoch_unit))
    at.run()
    assert not at.exception, at.exception
    if case.timestamp:
        date_column, plus, time_column = case.timestamp.rpartition("+")
        one(at.selectbox, "Timestamp *").set_value(date_column if plus else case.timestamp)
        one(at.selectbox, "Time of day, in its own column").set_value(time_column if plus else NONE)
    if case.skip_bad_rows:
        one(at.checkbox, "Skip rows whose timestamp or amount does not parse (they are counted and listed)").check()
    at.text_input(key="import-name").set_value("imported")
    one(at.button, "Import").click()
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c].page and not CASES[c].refused])
def test_each_file_imports_through_the_page_with_its_report(conn, small_dataset, tmp_path, case, monkeypatch):
    at = _import_on_the_page(tmp_path, CASES[case], monkeypatch)
    dataset = get_dataset(conn, "imported")
    assert_stored(conn, dataset, CASES[case])
    assert_report({**dataset.import_report, "rows_stored": dataset.row_count}, CASES[case])
    # The page shows the report: the time zone, how each column was read, and the counts.
    assert f"time zone **{CASES[case].timezone}**" in texts(at)
    for column in dataset.import_report["columns"]:
        assert f"({column['role']}): {column['convention']}" in texts(at), column
    assert metric(at, "Refunds") == f"{dataset.import_report['counts']['refunds']:,}"
    assert metric(at, "Times converted") == f"{dataset.import_report['counts']['converted_offsets']:,}"


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c].page and CASES[c].refused])
def test_each_refused_file_is_explained_on_the_page_and_changes_nothing(conn, small_dataset, tmp_path, case, monkeypatch):
    before = digest(conn)
    at = _import_on_the_page(tmp_path, CASES[case], monkeypatch)
    errors = " ".join(e.value for e in at.error)
    for fragment in CASES[case].refused:
        assert fragment in errors, (fragment, errors)
    if [b for b in at.button if b.label == "Import"]:  # refused by the import itself, which rolled back
        assert "database is unchanged" in texts(at)
    assert digest(conn) == before


def test_the_page_shows_what_it_will_detect_before_importing(conn, small_dataset, tmp_path, monkeypatch):
    path = tmp_path / "epoch.csv"
    CASES["unix seconds"].write(path)
    at = app().run()
    pick_server_file(at, path, monkeypatch)
    at.run()
    assert "- `timestamp` (timestamp): Unix seconds (detected, e.g. rows 2, 3, 4 ('1706713200', …))" in texts(at)
    # A column the import would refuse is said so before anything is written.
    CASES["amounts that could be read either way"].write(path)
    at.run()
    assert "could be read either way" in " ".join(w.value for w in at.warning)
