"""Bad input gets a message naming the file, row and column, and leaves the database exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.db import connect
from data.errors import DataError
from data.ingest import import_file
from data.mapping import ColumnMapping
from tests.conftest import digest, run_cli

GOOD = "timestamp,amount,customer_id\n2024-01-01 10:00,10.5,C1\n2024-01-01 11:00,20,C2\n"


def _write(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# name -> (file name, content, fragments the message must contain)
CASES: dict[str, tuple[str, bytes | str, list[str]]] = {
    "spreadsheet": ("book.xlsx", b"PK\x03\x04" + b"\x00" * 64, ["book.xlsx", "'.xlsx' files are not supported", "CSV"]),
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
    "negative_amount": ("negative.csv", "timestamp,amount\n2024-01-01,-5\n", ["negative.csv", "row 2", "'-5'", "non-negative"]),
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


@pytest.fixture
def populated(conn, tmp_path):
    """A database that already holds a dataset, so 'unchanged' means something."""
    import_file(conn, _write(tmp_path, "good.csv", GOOD), "existing")
    return conn


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_rejected_with_a_clear_message_and_nothing_changes(populated, tmp_path, case):
    name, content, fragments = CASES[case]
    path = _write(tmp_path, name, content)
    before = digest(populated)
    with pytest.raises(DataError) as caught:
        import_file(populated, path, f"attempt-{case}")
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert digest(populated) == before


@pytest.mark.parametrize("case", ["bad_timestamp", "duplicate_ids", "ragged_short", "zero_bytes", "latin1_as_utf8"])
def test_command_line_exits_nonzero_with_the_same_message(db_path, tmp_path, case):
    conn = connect(db_path)
    import_file(conn, _write(tmp_path, "good.csv", GOOD), "existing")
    before = digest(conn)
    conn.close()
    name, content, fragments = CASES[case]
    result = run_cli("import", str(_write(tmp_path, name, content)), "--name", "attempt", db=db_path)
    assert result.returncode == 2
    for fragment in fragments:
        assert fragment in result.stderr
    conn = connect(db_path)
    assert digest(conn) == before
    conn.close()


def test_unmapped_required_role_names_the_role(populated, tmp_path):
    path = _write(tmp_path, "ok.csv", GOOD)
    before = digest(populated)
    with pytest.raises(DataError, match="required role 'amount'"):
        import_file(populated, path, "x", ColumnMapping({"timestamp": "timestamp"}))
    with pytest.raises(DataError, match="does not have: 'nope'"):
        import_file(populated, path, "x", ColumnMapping({"timestamp": "timestamp", "amount": "nope"}))
    with pytest.raises(DataError, match="more than one role"):
        import_file(populated, path, "x", ColumnMapping({"timestamp": "timestamp", "amount": "amount", "customer_id": "amount"}))
    assert digest(populated) == before


@pytest.mark.parametrize("name", ["existing", "", "   ", "a" * 65, "bad/name", "x\x00y", "'; DROP TABLE datasets; --"])
def test_bad_or_taken_dataset_names_are_refused(populated, tmp_path, name):
    before = digest(populated)
    with pytest.raises(DataError):
        import_file(populated, _write(tmp_path, "ok.csv", GOOD), name)
    assert digest(populated) == before


def test_wrong_encoding_choice_is_explained(populated, tmp_path):
    path = _write(tmp_path, "enc.csv", GOOD)
    with pytest.raises(DataError, match="unsupported encoding"):
        import_file(populated, path, "x", encoding="ebcdic")


def test_missing_file_is_named(populated, tmp_path):
    with pytest.raises(DataError, match="nowhere.csv: file not found"):
        import_file(populated, tmp_path / "nowhere.csv", "x")


def test_hostile_column_names_are_stored_safely(conn, tmp_path):
    path = _write(tmp_path, "hostile.csv", 'timestamp,amount,"x""; DROP TABLE datasets; --"\n2024-01-01,1,=HYPERLINK("a")\n')
    dataset = import_file(conn, path, "hostile").dataset
    assert conn.execute("SELECT count(*) FROM datasets").fetchall()[0][0] == 1
    extra = dataset.extras("categorical")[0]
    assert extra == "x_drop_table_datasets"
    assert conn.execute(f'SELECT "{extra}" FROM {dataset.table}').fetchall() == [('=HYPERLINK("a")',)]
