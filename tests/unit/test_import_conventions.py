"""Every case of tests/import_cases.py imported the way the Data page does it (inspect, guessed
mapping with the user's choices, the application's import action): the stored values are the
intended ones, and every refused file names its row, column and reason and changes nothing."""

from __future__ import annotations

import pytest

from application import datasets as app_datasets
from data.conventions import ImportOptions
from data.errors import UserError
from data.ingest import inspect_file
from tests.conftest import as_user, digest
from tests.import_cases import CASES, assert_report, assert_stored
from tests.samples import GOOD, write_file


def _import(conn, folder, case, name="imported"):
    path = folder / case.file
    case.write(path)
    info = inspect_file(conn, path, encoding=case.encoding, sheet=case.sheet)
    mapping = info.guessed_mapping()
    if case.timestamp:
        mapping = mapping.with_overrides([f"timestamp={case.timestamp}"], info.column_names)
    options = ImportOptions(case.timezone, case.decimal, case.date_order, case.epoch_unit, case.sheet)
    return app_datasets.import_dataset(as_user(conn), path, name, mapping, encoding=info.encoding, options=options,
                                       skip_bad_rows=case.skip_bad_rows, features=False)


@pytest.mark.parametrize("case", [c for c in CASES if not CASES[c].refused])
def test_each_file_stores_the_intended_values(conn, tmp_path, case):
    created = _import(conn, tmp_path, CASES[case])
    assert_stored(conn, created.dataset, CASES[case])
    assert_report({**created.dataset.import_report, "rows_stored": created.dataset.row_count}, CASES[case])
    assert created.report.columns == created.dataset.import_report["columns"]


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c].refused])
def test_each_refused_file_names_row_column_and_reason_and_changes_nothing(conn, tmp_path, case):
    app_datasets.import_dataset(as_user(conn), write_file(tmp_path, "good.csv", GOOD), "existing", features=False)
    before = digest(conn)
    with pytest.raises(UserError) as refused:
        _import(conn, tmp_path, CASES[case])
    for fragment in CASES[case].refused:
        assert fragment in str(refused.value), (fragment, str(refused.value))
    assert digest(conn) == before


def test_windows_1252_text_survives_byte_for_byte(conn, tmp_path):
    case = CASES["windows-1252"]
    created = _import(conn, tmp_path, case)
    original = (tmp_path / case.file).read_bytes()
    cities = conn.execute(f"SELECT city FROM {created.dataset.table} ORDER BY tx_row").fetchall()
    for (city,) in cities:
        assert city.encode("cp1252") in original  # the same bytes, read as the characters they are
    assert [c for (c,) in cities] == ["Huánuco", "Pizzería D’Ángelo", "Café “Ñaña” €5"]
