"""The import cases of tests/import_cases.py through `centinela import` as a process, with the
flags a user would give (--timezone, --decimal, --date-order, --epoch-unit, --sheet, --encoding,
--map timestamp=DATE+TIME, --skip-bad-rows): stored values are the intended ones, the report is
printed (and given as --json), and a refused file exits 2 naming row, column and reason, with the
database unchanged."""

from __future__ import annotations

import json

import pytest

from application import datasets as app_datasets
from data.datasets import get_dataset
from data.db import connect
from tests.conftest import as_user, digest, run_cli
from tests.import_cases import CASES, assert_report, assert_stored
from tests.samples import GOOD, write_file


@pytest.mark.parametrize("case", [c for c in CASES if not CASES[c].refused])
def test_each_file_imports_through_the_command_line(db_path, tmp_path, case):
    path = tmp_path / CASES[case].file
    CASES[case].write(path)
    result = run_cli("import", str(path), "--name", "imported", "--no-features", "--json", *CASES[case].cli_args(),
                     db=db_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert_report(report, CASES[case])
    conn = connect(db_path)
    dataset = get_dataset(conn, "imported")
    assert_stored(conn, dataset, CASES[case])
    assert report["columns"] == dataset.import_report["columns"] and report["timezone"] == CASES[case].timezone
    conn.close()


@pytest.mark.parametrize("case", [c for c in CASES if CASES[c].refused])
def test_each_refused_file_exits_2_naming_row_column_and_reason(db_path, tmp_path, case):
    conn = connect(db_path)
    app_datasets.import_dataset(as_user(conn), write_file(tmp_path, "good.csv", GOOD), "existing", features=False)
    before = digest(conn)
    conn.close()
    path = tmp_path / CASES[case].file
    CASES[case].write(path)
    result = run_cli("import", str(path), "--name", "attempt", "--no-features", *CASES[case].cli_args(), db=db_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    for fragment in CASES[case].refused:
        assert fragment in result.stderr, (fragment, result.stderr)
    conn = connect(db_path)
    assert digest(conn) == before
    conn.close()


def test_the_report_is_printed_column_by_column(db_path, tmp_path):
    path = tmp_path / "comas.csv"
    CASES["decimal commas"].write(path)
    printed = run_cli("import", str(path), "--name", "comas", "--no-features", db=db_path, check=True).stdout
    assert "(times in America/Lima)" in printed
    assert "column 'monto' (amount): decimal separator ',', thousands '.' or space (detected, e.g. rows 2, 3, 4" in printed
    assert "refunds 3" in printed and "refunds (negative amounts): 3;" in printed
    path = tmp_path / "dst.csv"
    CASES["daylight-saving rows skipped"].write(path)
    printed = run_cli("import", str(path), "--name", "dst", "--no-features", *CASES["daylight-saving rows skipped"].cli_args(),
                      db=db_path, check=True).stdout
    assert "rows left out: 2" in printed
    assert ("problem: column 'timestamp' (timestamp), 1 value (first rows 2): '2024-03-10 02:30:00' does not exist in "
            "America/New_York") in printed
    assert ("problem: column 'timestamp' (timestamp), 1 value (first rows 4): '2024-11-03 01:30:00' occurs twice in "
            "America/New_York") in printed


def test_show_mapping_prints_the_time_column(db_path, tmp_path):
    path = tmp_path / "split.csv"
    CASES["date and time columns, mapped"].write(path)
    shown = json.loads(run_cli("import", str(path), "--name", "x", "--map", "timestamp=dia+hora_operacion",
                               "--show-mapping", db=db_path, check=True).stdout)
    assert shown["roles"]["timestamp"] == "dia" and shown["time_column"] == "hora_operacion"
