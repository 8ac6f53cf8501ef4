"""Bad input gets a message naming the file, row and column, and leaves the database exactly as it was."""

from __future__ import annotations

import pytest

from application import datasets as app_datasets
from data.errors import UserError
from data.mapping import ColumnMapping
from tests.conftest import as_user, digest
from tests.samples import BAD_FILES, GOOD, write_file


@pytest.fixture
def populated(conn, tmp_path):
    """A database that already holds a dataset, so 'unchanged' means something."""
    app_datasets.import_dataset(as_user(conn, "test"), write_file(tmp_path, "good.csv", GOOD), "existing", features=False)
    return conn


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_rejected_with_a_clear_message_and_nothing_changes(populated, tmp_path, case):
    name, content, fragments = BAD_FILES[case]
    path = write_file(tmp_path, name, content)
    before = digest(populated)
    with pytest.raises(UserError) as caught:
        app_datasets.import_dataset(as_user(populated, "test"), path, f"attempt-{case}", features=False)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert digest(populated) == before


def test_unmapped_required_role_names_the_role(populated, tmp_path):
    path = write_file(tmp_path, "ok.csv", GOOD)
    before = digest(populated)
    with pytest.raises(UserError, match="required role 'amount'"):
        app_datasets.import_dataset(as_user(populated, "test"), path, "x", ColumnMapping({"timestamp": "timestamp"}), features=False)
    with pytest.raises(UserError, match="does not have: 'nope'"):
        app_datasets.import_dataset(as_user(populated, "test"), path, "x", ColumnMapping({"timestamp": "timestamp", "amount": "nope"}), features=False)
    with pytest.raises(UserError, match="more than one role"):
        app_datasets.import_dataset(as_user(populated, "test"), path, "x", ColumnMapping({"timestamp": "timestamp", "amount": "amount", "customer_id": "amount"}), features=False)
    assert digest(populated) == before


@pytest.mark.parametrize("name", ["existing", "", "   ", "a" * 65, "bad/name", "x\x00y", "'; DROP TABLE datasets; --"])
def test_bad_or_taken_dataset_names_are_refused(populated, tmp_path, name):
    before = digest(populated)
    with pytest.raises(UserError):
        app_datasets.import_dataset(as_user(populated, "test"), write_file(tmp_path, "ok.csv", GOOD), name, features=False)
    assert digest(populated) == before


def test_wrong_encoding_choice_is_explained(populated, tmp_path):
    path = write_file(tmp_path, "enc.csv", GOOD)
    with pytest.raises(UserError, match="unsupported encoding"):
        app_datasets.import_dataset(as_user(populated, "test"), path, "x", encoding="ebcdic", features=False)


def test_missing_file_is_named(populated, tmp_path):
    with pytest.raises(UserError, match="nowhere.csv: file not found"):
        app_datasets.import_dataset(as_user(populated, "test"), tmp_path / "nowhere.csv", "x", features=False)


def test_hostile_column_names_are_stored_safely(conn, tmp_path):
    path = write_file(tmp_path, "hostile.csv", 'timestamp,amount,"x""; DROP TABLE datasets; --"\n2024-01-01,1,=HYPERLINK("a")\n')
    dataset = app_datasets.import_dataset(as_user(conn, "test"), path, "hostile", features=False).report.dataset
    assert conn.execute("SELECT count(*) FROM datasets").fetchall()[0][0] == 1
    extra = dataset.extras("categorical")[0]
    assert extra == "x_drop_table_datasets"
    assert conn.execute(f'SELECT "{extra}" FROM {dataset.table}').fetchall() == [('=HYPERLINK("a")',)]
