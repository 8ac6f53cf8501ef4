"""The files an import reads: CSV in any common dialect and encoding, Parquet, Excel workbooks.

`inspect_file` checks a file's bytes (format, encoding, header) and reads a preview, so the page
can show the guessed column mapping before anything is written. `open_source` then gives the
importer one DuckDB reader over the whole file:
- CSV through DuckDB's `read_csv` with an explicit dialect (delimiter from the header, RFC 4180
  quotes, so quoted delimiters and line breaks are values), every value as text, exactly as written.
  UTF-8 (with or without a byte-order mark), UTF-16 and Latin-1 are read by DuckDB itself;
  Windows-1252 is transcoded to UTF-8 first, in blocks, by Python's codec (DuckDB has no
  Windows-1252 reader without an extension download).
- Parquet through `read_parquet`, with its own types.
- Excel (.xlsx) read by python-calamine, each column turned into an Arrow array of its cells'
  type (numbers, dates, date-times, times, text, or text when the cells mix types) and written
  to a temporary Parquet file, so the import's parsing and checks are the same as for Parquet.
Temporary files live in a private folder removed when the import ends, whatever happens.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data.conventions import SAMPLE_ROWS
from data.db import fetch_one, quote_ident
from data.errors import InvalidInput, NotFound
from data.mapping import ColumnMapping, guess_mapping

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
EXCEL_SUFFIXES = {".xlsx"}
ENCODINGS = ("utf-8", "utf-16", "latin-1", "windows-1252")
TRANSCODED = {"windows-1252": "cp1252"}  # encodings Python decodes for DuckDB
DELIMITERS = (",", ";", "\t", "|")
HEADER_LIMIT = 1 << 20  # a header line longer than 1 MiB is not a header
MAX_LINE_BYTES = 2 << 20  # DuckDB's per-line limit; longer lines are rejected, never truncated
PREVIEW_ROWS = 20
TRANSCODE_BLOCK = 8 << 20
TIME_VALUE = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(\s*[AaPp][Mm])?$")
ENCODING_HINT = ("The file is probably Windows-1252 or Latin-1 (Windows exports): choose the 'windows-1252' "
                 "encoding (--encoding windows-1252) or 'latin-1', or save the file as UTF-8.")


@dataclass
class FileInfo:
    """What `inspect_file` learned: enough to show a preview and a mapping editor."""

    path: Path
    display_name: str
    format: str  # "csv", "parquet" or "xlsx"
    columns: list[tuple[str, str]]  # (name, type); CSV types are guessed from the preview
    preview: pd.DataFrame
    delimiter: str | None = None
    encoding: str = "utf-8"
    size_bytes: int = 0
    sheet: str | None = None  # the workbook sheet read
    sheets: list[str] = field(default_factory=list)  # every sheet of a workbook
    header_row: int = 1  # the spreadsheet row of the header (CSV and Excel); 0 for Parquet (no header row)

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def row_offset(self) -> int:
        """Add to a data row's index (0 = first) for its row number as a spreadsheet shows it."""
        return self.header_row + 1

    def guessed_mapping(self) -> ColumnMapping:
        """Roles guessed from the names; a date-only timestamp column gets the column whose
        preview values are all times of day as its time (fecha + hora)."""
        mapping = guess_mapping(self.columns)
        date_column = mapping.roles.get("timestamp")
        if date_column and not mapping.time_column and _all_match(self.preview, date_column, _is_date_only):
            time_column = next((n for n in self.column_names if n != date_column and n not in mapping.roles.values()
                                and _all_match(self.preview, n, lambda v: bool(TIME_VALUE.match(v)))), None)
            if time_column:
                mapping.time_column = time_column
                mapping.categorical = [c for c in mapping.categorical if c != time_column]
                mapping.numeric = [c for c in mapping.numeric if c != time_column]
        return mapping


def _values(preview: pd.DataFrame, column: str) -> list[str]:
    if column not in preview.columns:
        return []
    return [str(v).strip() for v in preview[column].dropna().tolist() if str(v).strip()]


def _all_match(preview: pd.DataFrame, column: str, test) -> bool:
    values = _values(preview, column)
    return bool(values) and all(test(v) for v in values)


def _is_date_only(value: str) -> bool:
    return ":" not in value and bool(re.search(r"\d", value)) and not re.fullmatch(r"\d{9,}", value)


# --------------------------------------------------------------------------------------------
# Inspection
# --------------------------------------------------------------------------------------------


def inspect_file(
    conn: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    display_name: str | None = None,
    encoding: str = "utf-8",
    sheet: str | None = None,
) -> FileInfo:
    """Check a file's bytes and read a preview; raise InvalidInput describing any problem."""
    path = Path(path)
    name = display_name or path.name
    if not path.is_file():
        raise NotFound("file not found.", file=name, hint="Check the path.")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInput("the file is empty (0 bytes).", file=name, hint="Export the data again; nothing was imported.")
    fmt = _detect_format(path, name)
    if fmt == "parquet":
        return _inspect_parquet(conn, path, name, size)
    if fmt == "xlsx":
        return _inspect_excel(path, name, size, sheet)
    return _inspect_csv(conn, path, name, size, encoding)


def _detect_format(path: Path, name: str) -> str:
    head = path.open("rb").read(4)
    suffix = Path(name).suffix.lower() or path.suffix.lower()
    if head == b"PAR1":
        return "parquet"
    if suffix in PARQUET_SUFFIXES:
        raise InvalidInput("the file is named .parquet but is not a Parquet file.", file=name,
                           hint="Export it again as Parquet, or as CSV.")
    if suffix in EXCEL_SUFFIXES:
        return "xlsx"
    if suffix not in CSV_SUFFIXES:
        raise InvalidInput(f"'{suffix or 'no extension'}' files are not supported.", file=name,
                           hint="Import CSV (.csv, .tsv, .txt), Parquet (.parquet) or Excel (.xlsx) files; "
                           "save other spreadsheets as .xlsx or CSV first.")
    return "csv"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _inspect_parquet(conn: duckdb.DuckDBPyConnection, path: Path, name: str, size: int) -> FileInfo:
    try:
        described = conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        preview = conn.execute(f"SELECT {_previewable(described)} FROM read_parquet(?) LIMIT ?",
                               [str(path), PREVIEW_ROWS]).df()
        rows = fetch_one(conn, "SELECT count(*) FROM read_parquet(?)", [str(path)])[0]
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot be read as Parquet ({_first_line(exc)}).", file=name,
                           hint="The file may be truncated or corrupt; export it again.") from exc
    if rows == 0:
        raise InvalidInput("the Parquet file has no rows.", file=name, hint="Nothing to import.")
    return FileInfo(path, name, "parquet", [(r[0], r[1]) for r in described], preview, size_bytes=size, header_row=0)


def _previewable(described: list[tuple]) -> str:
    # Zone-aware columns are shown as text: fetching TIMESTAMPTZ into Python needs pytz.
    return ", ".join(f"CAST({quote_ident(r[0])} AS VARCHAR) AS {quote_ident(r[0])}" if "TIME ZONE" in r[1].upper()
                     else quote_ident(r[0]) for r in described)


def _inspect_csv(conn: duckdb.DuckDBPyConnection, path: Path, name: str, size: int, encoding: str) -> FileInfo:
    if encoding not in ENCODINGS:
        raise InvalidInput(f"unsupported encoding {encoding!r}.", file=name, hint=f"Choose one of {', '.join(ENCODINGS)}.")
    with path.open("rb") as handle:
        head = handle.read(HEADER_LIMIT + 1)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # a byte-order mark says so unambiguously
    elif head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
        encoding = "utf-8"
    if encoding != "utf-16" and b"\x00" in head[:65536]:
        raise InvalidInput("the file contains binary data, not text.", file=name,
                           hint="Is it really a CSV? Spreadsheets must be .xlsx or saved as CSV; Parquet files need a .parquet name.")
    text = _decode_head(head, encoding, name)
    newline = text.find("\n")
    if newline < 0 and len(head) > HEADER_LIMIT:
        raise InvalidInput("the first line is longer than 1 MiB, so it cannot be a header.", file=name, row=1,
                           hint="The file must start with a header line naming the columns.")
    header_line = text[: newline if newline >= 0 else len(text)].rstrip("\r").lstrip("\ufeff")
    if not header_line.strip():
        raise InvalidInput("the first line is empty; a header naming the columns is required.", file=name, row=1)
    delimiter = max(DELIMITERS, key=header_line.count)
    names = _header_names(next(csv.reader(io.StringIO(header_line), delimiter=delimiter)), name)
    if not text[newline + 1:].strip() and len(head) <= HEADER_LIMIT:
        raise InvalidInput("the file has a header but no data rows.", file=name, row=2, hint="Nothing to import.")
    info = FileInfo(path, name, "csv", [(n, "VARCHAR") for n in names], pd.DataFrame(), delimiter, encoding, size)
    if encoding in TRANSCODED:
        # Preview from the head already decoded: transcoding the whole file is the import's work.
        with tempfile.TemporaryDirectory(prefix="centinela-preview-") as folder:
            sample = Path(folder) / "head.csv"
            cut = text if len(head) <= HEADER_LIMIT else text[: text.rfind("\n") + 1]
            sample.write_text(cut, encoding="utf-8", newline="")
            preview = _preview_csv(conn, info, sample, "utf-8")
    else:
        preview = _preview_csv(conn, info, path, encoding)
    info.preview = preview
    info.columns = [(n, _guess_type(preview[n])) for n in names]
    return info


def _header_names(header: list[str], name: str) -> list[str]:
    names = [str(h).strip() for h in header]
    for i, h in enumerate(names):
        if not h:
            raise InvalidInput(f"column {i + 1} of the header has no name.", file=name, row=1,
                               hint="Give every column a name in the first line.")
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise InvalidInput(f"the header names column '{dupes[0]}' more than once.", file=name, row=1, column=dupes[0],
                           hint="Rename the duplicate columns.")
    return names


def _preview_csv(conn: duckdb.DuckDBPyConnection, info: FileInfo, path: Path, encoding: str) -> pd.DataFrame:
    try:
        return conn.execute(f"SELECT * FROM {csv_reader(lenient=True)} LIMIT ?",
                            [*csv_params(info, path, encoding), PREVIEW_ROWS]).df()
    except duckdb.Error as exc:
        raise csv_error(exc, info) from exc


def _decode_head(head: bytes, encoding: str, name: str) -> str:
    # The cut at HEADER_LIMIT may split a character: decode up to the last complete line.
    cut = head if len(head) <= HEADER_LIMIT else head[: head.rfind(b"\n") + 1 or len(head)]
    try:
        return cut.decode(TRANSCODED.get(encoding, encoding))
    except UnicodeDecodeError as exc:
        row = cut[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"byte 0x{cut[exc.start]:02X} is not valid {encoding.upper()} text.", file=name, row=row,
                           hint=ENCODING_HINT if encoding == "utf-8" else "Choose the file's encoding, or save it as UTF-8.") from exc


NUMBER_TEXT = re.compile(r"^[-+(]?\s*(S/\.?|PEN|USD|\$|€)?\s*[-+]?\d{1,3}([., '\u00a0]\d{3})*([.,]\d+)?\)?-?$|^[-+]?\d+([.,]\d+)?$")


def _guess_type(values: pd.Series) -> str:
    """DOUBLE when every previewed value is a number, in either decimal convention; else VARCHAR."""
    text = values.dropna().astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return "VARCHAR"
    if pd.to_numeric(text, errors="coerce").notna().all() or text.str.match(NUMBER_TEXT).all():
        return "DOUBLE"
    return "VARCHAR"


def csv_reader(lenient: bool = False) -> str:
    """read_csv with an explicit dialect; strict unless previewing. All values stay text.

    The lenient preview reads serially: DuckDB's parallel scanner cannot pad short rows when a
    quoted value holds a line break.
    """
    mode = ("strict_mode=false, null_padding=true, ignore_errors=true, parallel=false" if lenient
            else "strict_mode=true, null_padding=false")
    return (
        "read_csv(?, auto_detect=false, header=true, columns=?, delim=?, quote='\"', escape='\"', "
        f"encoding=?, max_line_size={MAX_LINE_BYTES}, {mode})"
    )


def csv_params(info: FileInfo, path: Path | None = None, encoding: str | None = None) -> list[Any]:
    return [str(path or info.path), {n: "VARCHAR" for n in info.column_names}, info.delimiter, encoding or info.encoding]


def csv_error(exc: duckdb.Error, info: FileInfo) -> InvalidInput:
    """Translate DuckDB's CSV error into one that names the file, row and what to do."""
    message = str(exc)
    line_match = re.search(r"CSV Error on Line: (\d+)", message)
    row = int(line_match.group(1)) if line_match else None
    columns = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", message)
    if columns:
        expected, found = int(columns.group(1)), int(columns.group(2))
        header = ", ".join(info.column_names[:8])
        # DuckDB stops counting one past the header's count, so "more" is all it knows then.
        problem = (f"has {found} fields where the header has {expected} ({header})." if found < expected
                   else f"has more fields than the header's {expected} ({header}).")
        return InvalidInput(
            problem, file=info.display_name, row=row,
            hint="Every row needs one value per header column: quote values that contain the delimiter "
            f"'{info.delimiter}', or fix the row.",
        )
    if "maximum line size" in message.lower():
        return InvalidInput(f"the line is longer than the {MAX_LINE_BYTES >> 20} MiB limit.", file=info.display_name, row=row,
                            hint="Is a closing quote missing, or is the file not line-based? Fix the line or split the file.")
    if "unicode" in message.lower() or "encod" in message.lower():
        return InvalidInput(f"the text is not valid {info.encoding.upper()}.", file=info.display_name, row=row,
                            hint=ENCODING_HINT)
    if "quote" in message.lower():
        return InvalidInput("a quoted value is never closed.", file=info.display_name, row=row,
                            hint="Check the quotes on that line: a value that holds the delimiter, a quote or a line "
                            "break must be quoted, with its own quotes doubled.")
    return InvalidInput(f"cannot be read as CSV ({_first_line(exc)}).", file=info.display_name, row=row,
                        hint="Check that the file is a delimited text file with a header line.")


# --------------------------------------------------------------------------------------------
# Excel
# --------------------------------------------------------------------------------------------


def _workbook(path: Path, name: str):
    from python_calamine import CalamineWorkbook

    try:
        return CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types (zip, XML, password)
        raise InvalidInput(f"is not a readable Excel workbook ({_first_line(exc)}).", file=name,
                           hint="Open it in Excel and save it again as .xlsx, or export the sheet as CSV.") from exc


def _sheet_rows(path: Path, name: str, sheet: str | None, limit: int | None) -> tuple[str, list[str], list[list], int]:
    """The chosen sheet (first by default): its name, header, data rows and the header's row number."""
    book = _workbook(path, name)
    try:
        sheets = list(book.sheet_names)
        chosen = sheet if sheet is not None else (sheets[0] if sheets else None)
        if chosen not in sheets:
            raise InvalidInput(f"the workbook has no sheet {sheet!r}.", file=name, field="sheet",
                               hint=f"Its sheets are: {', '.join(sheets)}.")
        data = book.get_sheet_by_name(chosen)
        rows = data.to_python(nrows=None if limit is None else limit + 1)
        header_row = (data.start[0] if data.start else 0) + 1
    finally:
        book.close()
    while rows and all(_empty(v) for v in rows[-1]):  # formatting often extends a sheet below its data
        rows.pop()
    if not rows:
        raise InvalidInput(f"sheet {chosen!r} is empty.", file=name, hint="Choose the sheet that holds the transactions.")
    header = _header_names([_cell_text(v) for v in rows[0]], name)
    body = rows[1:]
    if not body:
        raise InvalidInput(f"sheet {chosen!r} has a header but no data rows.", file=name, row=header_row + 1,
                           hint="Nothing to import.")
    return chosen, header, body, header_row


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _cell_text(value: Any) -> str:
    """A cell as text, the way a person reads it (integral numbers without '.0', ISO dates)."""
    if _empty(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _arrow_column(values: list[Any]) -> pa.Array:
    """One sheet column as an Arrow array: its cells' own type when they share one, else text.

    calamine gives empty cells as ''. Cells of one type convert in Arrow's C code; only a column
    whose cells mix types (numbers and text) is turned into text cell by cell.
    """
    cells = np.array(values, dtype=object)
    empty = cells == "" if len(cells) else np.zeros(0, dtype=bool)
    kinds = set(map(type, cells[~empty]))
    cells[empty] = None
    if kinds and kinds <= {float, int}:
        numbers = pa.array(cells, type=pa.float64())
        filled = numbers.drop_null().to_numpy()
        if np.all(np.mod(filled, 1) == 0) and np.all(np.abs(filled) < 2**53):
            return numbers.cast(pa.int64())  # ids and counts, stored by Excel as floats
        return numbers
    for kind, arrow_type in ((str, pa.string()), (bool, pa.bool_()), (datetime, pa.timestamp("us")),
                             (date, pa.date32()), (time, pa.time64("us"))):
        if kinds <= {kind}:
            return pa.array(cells, type=arrow_type)
    return pa.array([None if c is None else _cell_text(c) for c in cells], type=pa.string())


def _inspect_excel(path: Path, name: str, size: int, sheet: str | None) -> FileInfo:
    book = _workbook(path, name)
    sheets = list(book.sheet_names)
    book.close()
    chosen, header, body, header_row = _sheet_rows(path, name, sheet, PREVIEW_ROWS)
    table = _sheet_table(header, body)
    preview = table.to_pandas()
    # Text cells holding numbers (1.500,25) are offered as numeric, like a CSV's.
    columns = [(n, _duck_type(table.schema.field(n).type)) for n in header]
    columns = [(n, _guess_type(preview[n]) if t == "VARCHAR" else t) for n, t in columns]
    return FileInfo(path, name, "xlsx", columns, preview, size_bytes=size, sheet=chosen, sheets=sheets,
                    header_row=header_row)


def _sheet_table(header: list[str], body: list[list]) -> pa.Table:
    width = len(header)
    # calamine returns a rectangle; transposing with zip is C-level, not a loop over rows in Python.
    columns = list(zip(*body, strict=False)) if body else [()] * width
    columns = [list(c) for c in columns[:width]] + [[""] * len(body)] * (width - len(columns))
    return pa.table({h: _arrow_column(c) for h, c in zip(header, columns, strict=True)})


def _duck_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_time(arrow_type):
        return "TIME"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    return "VARCHAR"


# --------------------------------------------------------------------------------------------
# Reading the whole file
# --------------------------------------------------------------------------------------------


@dataclass
class Source:
    """One DuckDB table function over the whole file, its parameters and the columns' types."""

    reader: str
    params: list[Any]
    types: dict[str, str]
    info: FileInfo

    def error(self, exc: duckdb.Error) -> InvalidInput:
        if self.info.format == "csv":
            return csv_error(exc, self.info)
        return InvalidInput(f"cannot be read ({_first_line(exc)}).", file=self.info.display_name)


@contextmanager
def open_source(conn: duckdb.DuckDBPyConnection, info: FileInfo, *, sample: bool = False) -> Iterator[Source]:
    """The file as one reader; temporary copies (transcoded text, a sheet as Parquet) are removed after.

    With `sample`, a workbook or a transcoded text is read only as far as detection looks (the
    page's preview of what an import would decide)."""

    folder = Path(tempfile.mkdtemp(prefix="centinela-import-"))
    try:
        if info.format == "csv":
            path, encoding = info.path, info.encoding
            if info.encoding in TRANSCODED:
                path, encoding = folder / "utf8.csv", "utf-8"
                _transcode(info.path, path, info.encoding, info.display_name, limit=(8 << 20) if sample else None)
            yield Source(csv_reader(), csv_params(info, path, encoding), {n: "VARCHAR" for n in info.column_names}, info)
        elif info.format == "xlsx":
            _, header, body, _ = _sheet_rows(info.path, info.display_name, info.sheet, SAMPLE_ROWS if sample else None)
            path = folder / "sheet.parquet"
            pq.write_table(_sheet_table(header, body), path)
            del body
            yield _parquet_source(conn, path, info)
        else:
            yield _parquet_source(conn, info.path, info)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _parquet_source(conn: duckdb.DuckDBPyConnection, path: Path, info: FileInfo) -> Source:
    described = conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    return Source("read_parquet(?)", [str(path)], {r[0]: r[1] for r in described}, info)


def _transcode(source: Path, target: Path, encoding: str, name: str, limit: int | None = None) -> None:
    """Re-encode a single-byte encoding as UTF-8, block by block (a block never splits a character).
    With `limit`, only about that many bytes, cut after a line break."""
    codec, lines = TRANSCODED[encoding], 1
    with source.open("rb") as fin, target.open("wb") as fout:
        while block := fin.read(TRANSCODE_BLOCK if limit is None else min(TRANSCODE_BLOCK, limit)):
            if limit is not None:
                block = block[: block.rfind(b"\n") + 1] or block
            try:
                fout.write(block.decode(codec).encode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InvalidInput(f"byte 0x{block[exc.start]:02X} is not {encoding.upper()} text.", file=name,
                                   row=lines + block[: exc.start].count(b"\n"),
                                   hint="Choose the file's encoding (latin-1 reads every byte), or save it as UTF-8.") from exc
            lines += block.count(b"\n")
            if limit is not None:
                break
