"""A corpus of hostile files and values, each imported the way the Data page does it (inspect,
guessed mapping, import): rejected with a message naming the file (and row and column where
there is one) and the database unchanged in content, or stored safely and checked. Search and
filter boxes get hostile text too."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from application import datasets as app_datasets
from application import runs as app_runs
from data.alerts import QueueFilters, alert_page, count_alerts
from data.audit import audit_log
from data.errors import UserError
from data.export import safe_csv
from data.ingest import inspect_file
from detectors.runs import run_scores, threshold_for
from tests.conftest import as_user, digest

INJECTION = 'x"; DROP TABLE transactions; --'
QUOTED = '"' + INJECTION.replace('"', '""') + '"'  # as a CSV writer quotes it
HEADER = "timestamp,amount,customer_id\n"


def _parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out)
    return out.getvalue()


def _stored(conn, dataset) -> pd.DataFrame:
    return conn.execute(f"SELECT * FROM {dataset.table} ORDER BY tx_row").df()


# name -> (file name, content, fragments a rejection must name) -- rejected, database unchanged
REJECTED: dict[str, tuple[str, bytes | str, list[str]]] = {
    "binary named csv": ("photo.csv", bytes(range(256)) * 64, ["photo.csv", "binary data"]),
    "nul inside text": ("nul.csv", HEADER + "2024-01-01,1,C\x001\n", ["nul.csv", "binary data"]),
    "empty file": ("empty.csv", b"", ["empty.csv", "empty"]),
    "only a header": ("header.csv", HEADER, ["header.csv", "no data rows"]),
    "ragged rows": ("ragged.csv", HEADER + "2024-01-01,1,C1\n2024-01-02,2\n", ["ragged.csv", "row 3"]),
    "10 MB single line": ("line.csv", "timestamp,amount" + ",x" * (5 << 20), ["line.csv", "row 1", "longer than"]),
    "NaN amount": ("nan.csv", HEADER + "2024-01-01,1,C1\n2024-01-02,NaN,C2\n", ["nan.csv", "row 3", "column 'amount'"]),
    "infinite amount": ("inf.csv", HEADER + "2024-01-01,inf,C1\n", ["inf.csv", "row 2", "'inf'"]),
    "absurd amount": ("huge.csv", HEADER + "2024-01-01,1e300,C1\n", ["huge.csv", "row 2", "below 1,000,000,000,000"]),
    "date in 1900": ("old.csv", HEADER + "1900-01-01 10:00,1,C1\n", ["old.csv", "row 2", "from 1970 to 2099"]),
    "date in 2100": ("future.csv", HEADER + "2100-06-01 10:00,1,C1\n", ["future.csv", "row 2", "column 'timestamp'"]),
    "duplicate ids": ("dups.csv", "transaction_id,timestamp,amount\nT1,2024-01-01,1\nT1,2024-01-02,2\n",
                      ["dups.csv", "row 3", "'T1' appears 2 times"]),
    "parquet with wrong types": ("types.parquet", _parquet(pd.DataFrame({"timestamp": [1, 2], "amount": ["ten", "x"]})),
                                 ["types.parquet", "column 'timestamp'", "'amount'"]),
    "text named parquet": ("fake.parquet", HEADER + "2024-01-01,1,C1\n", ["fake.parquet", "not a Parquet file"]),
    "broken workbook": ("book.xlsx", b"PK\x03\x04" + bytes(64), ["book.xlsx", "not a readable Excel workbook"]),
    "old spreadsheet": ("book.xls", b"\xd0\xcf\x11\xe0" + bytes(64), ["book.xls", "not supported"]),
    # The page then offers the latin-1 encoding; read as UTF-8 it is refused, never mangled.
    "latin-1 text read as utf-8": ("latin.csv", (HEADER + "2024-01-01,1,Begoña\n").encode("latin-1"),
                                   ["latin.csv", "row 2", "latin-1"]),
}

# name -> (file name, content, check of what was stored) -- stored, and stored safely
STORED: dict[str, tuple[str, bytes | str, Callable[[pd.DataFrame], None]]] = {
    "utf-16 text": ("utf16.csv", (HEADER + "2024-01-01,1,Huánuco\n").encode("utf-16"),
                    lambda rows: rows["customer_id"].tolist() == ["Huánuco"]),
    "injection in names and values": ("sql.csv", f"timestamp,amount,{QUOTED}\n2024-01-01,1,{QUOTED}\n",
                                      lambda rows: rows["x_drop_table_transactions"].tolist() == [INJECTION]),
    "formula cells": ("formula.csv", HEADER + '2024-01-01,1,"=HYPERLINK(""http://evil"",""x"")"\n',
                      lambda rows: rows["customer_id"].tolist() == ['=HYPERLINK("http://evil","x")']),
    "unicode names": ("unicode.csv", "timestamp,amount,ciudad 🏙,名前\n2024-01-01,1,Cusco,\u202eevil\u200b\n",
                      lambda rows: "\u202eevil\u200b" in rows.iloc[0].tolist() and "Cusco" in rows.iloc[0].tolist()),
    # A refund: stored as the negative amount it is (features keep it out of purchase statistics).
    "negative amount": ("neg.csv", HEADER + "2024-01-01,-40,C1\n", lambda rows: rows["amount"].tolist() == [-40.0]),
    "crlf and semicolons": ("semi.csv", "timestamp;amount;customer_id\r\n2024-01-01;1;C1\r\n",
                            lambda rows: rows["customer_id"].tolist() == ["C1"] and rows["amount"].tolist() == [1.0]),
}


def _import_like_the_page(conn, folder: Path, file_name: str, content: bytes | str, name: str):
    path = folder / file_name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    info = inspect_file(conn, path, file_name)
    return app_datasets.import_dataset(as_user(conn, "hostile"), path, name, info.guessed_mapping(), display_name=info.display_name, encoding=info.encoding, features=False).report


@pytest.fixture
def populated(conn, small_dataset):
    app_runs.fit(as_user(conn, "test"), small_dataset, ["hbos"])
    return conn


def test_the_corpus_has_at_least_twenty_entries():
    assert len(REJECTED) + len(STORED) >= 20


@pytest.mark.parametrize("case", list(REJECTED))
def test_hostile_file_is_rejected_and_nothing_changes(populated, tmp_path, case):
    file_name, content, fragments = REJECTED[case]
    before = digest(populated)
    with pytest.raises(UserError) as error:
        _import_like_the_page(populated, tmp_path, file_name, content, "hostile")
    for fragment in fragments:
        assert fragment in str(error.value), (case, str(error.value))
    assert digest(populated) == before


@pytest.mark.parametrize("case", list(STORED))
def test_hostile_file_is_stored_safely(populated, tmp_path, case):
    file_name, content, check = STORED[case]
    dataset = _import_like_the_page(populated, tmp_path, file_name, content, "hostile").dataset
    rows = _stored(populated, dataset)
    assert check(rows), rows.iloc[0].tolist()
    assert populated.execute("SELECT count(*) FROM datasets").fetchone()[0] == 2  # nothing dropped
    exported = safe_csv(rows.drop(columns=["tx_row"])).decode("utf-8")
    assert "\n=" not in exported and ",=" not in exported  # a spreadsheet runs no formula from it


HOSTILE_TEXT = ["%", "_", "'", '"', "\\", INJECTION, "' OR '1'='1", "=HYPERLINK(\"x\")", "\x00", "🏙" * 500,
                "a" * 100_000, "\u202e", "C%", "%_%"]


@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=range(len(HOSTILE_TEXT)))
def test_search_and_filter_boxes_take_hostile_text_literally(populated, small_dataset, text):
    run_id = populated.execute("SELECT max(id) FROM runs").fetchone()[0]
    threshold = threshold_for(run_scores(populated, run_id), 0.01)
    before = digest(populated)
    filters = QueueFilters(search=text, cities=(text,), merchants=(text,), payment_methods=(text,))
    assert count_alerts(populated, small_dataset, run_id, threshold, filters) == 0
    assert alert_page(populated, small_dataset, run_id, threshold, QueueFilters(search=text)).empty or "%" not in text
    assert len(audit_log(populated, actor=text, text=text)) == 0
    assert digest(populated) == before
    # A wildcard is a plain character: '%' matches only ids that contain it (none do).
    everything = count_alerts(populated, small_dataset, run_id, threshold)
    assert everything > 0 and count_alerts(populated, small_dataset, run_id, threshold, QueueFilters(search="%")) == 0
