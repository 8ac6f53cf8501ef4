"""Import CSV and Parquet files into a new dataset, through DuckDB's own readers.

The path a file takes:
1. `inspect_file` checks the bytes (format, encoding, header) and reads a preview, so the page
   can show the guessed column mapping before anything is written.
2. `import_file` reads the whole file into a temporary staging table (CSV as text, exactly as
   written; Parquet as typed), counts every value that does not parse per role, and either
   rejects the file naming the first bad rows or, when asked, skips those rows and reports them.
3. The parsed rows become a dataset table in the same transaction that registers it, so a
   failure at any step leaves the database exactly as it was.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from data.datasets import Dataset, StoredColumn, get_dataset, new_dataset, validate_name
from data.db import ProgressFn, fetch_one, no_progress, quote_ident
from data.errors import InvalidInput, NotFound
from data.geography import lookup_frame, place_key_sql
from data.mapping import ROLE_BY_NAME, ColumnMapping, guess_mapping, stored_name

CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
ENCODINGS = ("utf-8", "utf-16", "latin-1")
DELIMITERS = (",", ";", "\t", "|")
HEADER_LIMIT = 1 << 20  # a header line longer than 1 MiB is not a header
MAX_LINE_BYTES = 2 << 20  # DuckDB's per-line limit; longer lines are rejected, never truncated
PREVIEW_ROWS = 20
EXAMPLES_PER_COLUMN = 3
# Day-first, as written in Peru, after ISO 8601 (which TRY_CAST already reads).
TIMESTAMP_FORMATS = [
    "%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y %H:%M", "%d-%m-%Y",
    "%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%Y%m%d%H%M%S", "%Y%m%d",
]
TRUE_WORDS = ["1", "1.0", "true", "t", "yes", "y", "si", "sí", "fraud", "fraude", "fraudulent", "fraudulento"]
FALSE_WORDS = ["0", "0.0", "false", "f", "no", "n", "legit", "legitimate", "legítimo", "legitimo", "genuine", "normal", "ok"]


@dataclass
class FileInfo:
    """What `inspect_file` learned: enough to show a preview and a mapping editor."""

    path: Path
    display_name: str
    format: str  # "csv" or "parquet"
    columns: list[tuple[str, str]]  # (name, type); CSV types are guessed from the preview
    preview: pd.DataFrame
    delimiter: str | None = None
    encoding: str = "utf-8"
    size_bytes: int = 0

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def guessed_mapping(self) -> ColumnMapping:
        return guess_mapping(self.columns)


@dataclass
class ImportResult:
    dataset: Dataset
    rows_read: int
    rows_stored: int
    skipped_rows: int
    problems: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# Inspection
# --------------------------------------------------------------------------------------------


def inspect_file(
    conn: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    display_name: str | None = None,
    encoding: str = "utf-8",
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
    return _inspect_csv(conn, path, name, size, encoding)


def _detect_format(path: Path, name: str) -> str:
    head = path.open("rb").read(4)
    suffix = Path(name).suffix.lower() or path.suffix.lower()
    if head == b"PAR1":
        return "parquet"
    if suffix in PARQUET_SUFFIXES:
        raise InvalidInput("the file is named .parquet but is not a Parquet file.", file=name,
                           hint="Export it again as Parquet, or as CSV.")
    if suffix not in CSV_SUFFIXES:
        raise InvalidInput(f"'{suffix or 'no extension'}' files are not supported.", file=name,
                           hint="Import CSV (.csv, .tsv, .txt) or Parquet (.parquet) files; save spreadsheets as CSV first.")
    return "csv"


def _inspect_parquet(conn: duckdb.DuckDBPyConnection, path: Path, name: str, size: int) -> FileInfo:
    try:
        described = conn.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        preview = conn.execute("SELECT * FROM read_parquet(?) LIMIT ?", [str(path), PREVIEW_ROWS]).df()
        rows = conn.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall()[0][0]
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot be read as Parquet ({_first_line(exc)}).", file=name,
                           hint="The file may be truncated or corrupt; export it again.") from exc
    if rows == 0:
        raise InvalidInput("the Parquet file has no rows.", file=name, hint="Nothing to import.")
    return FileInfo(path, name, "parquet", [(r[0], r[1]) for r in described], preview, size_bytes=size)


def _inspect_csv(conn: duckdb.DuckDBPyConnection, path: Path, name: str, size: int, encoding: str) -> FileInfo:
    if encoding not in ENCODINGS:
        raise InvalidInput(f"unsupported encoding {encoding!r}.", file=name, hint=f"Choose one of {', '.join(ENCODINGS)}.")
    with path.open("rb") as handle:
        head = handle.read(HEADER_LIMIT + 1)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # a byte-order mark says so unambiguously
    elif head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if encoding != "utf-16" and b"\x00" in head[:65536]:
        raise InvalidInput("the file contains binary data, not text.", file=name,
                           hint="Is it really a CSV? Spreadsheets must be saved as CSV; Parquet files need a .parquet name.")
    text = _decode_head(head, encoding, name)
    newline = text.find("\n")
    if newline < 0 and len(head) > HEADER_LIMIT:
        raise InvalidInput("the first line is longer than 1 MiB, so it cannot be a header.", file=name, row=1,
                           hint="The file must start with a header line naming the columns.")
    header_line = text[: newline if newline >= 0 else len(text)].rstrip("\r").lstrip("\ufeff")
    if not header_line.strip():
        raise InvalidInput("the first line is empty; a header naming the columns is required.", file=name, row=1)
    delimiter = max(DELIMITERS, key=header_line.count)
    header = next(csv.reader(io.StringIO(header_line), delimiter=delimiter))
    names = [h.strip() for h in header]
    for i, h in enumerate(names):
        if not h:
            raise InvalidInput(f"column {i + 1} of the header has no name.", file=name, row=1,
                               hint="Give every column a name in the first line.")
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise InvalidInput(f"the header names column '{dupes[0]}' more than once.", file=name, row=1, column=dupes[0],
                           hint="Rename the duplicate columns.")
    if not text[newline + 1:].strip() and len(head) <= HEADER_LIMIT:
        raise InvalidInput("the file has a header but no data rows.", file=name, row=2, hint="Nothing to import.")
    info = FileInfo(path, name, "csv", [(n, "VARCHAR") for n in names], pd.DataFrame(), delimiter, encoding, size)
    try:
        preview = conn.execute(
            f"SELECT * FROM {_csv_reader(lenient=True)} LIMIT ?", [*_csv_params(info), PREVIEW_ROWS]
        ).df()
    except duckdb.Error as exc:
        raise _csv_error(exc, info) from exc
    info.preview = preview
    info.columns = [(n, _guess_type(preview[n])) for n in names]
    return info


def _decode_head(head: bytes, encoding: str, name: str) -> str:
    # The cut at HEADER_LIMIT may split a character: decode up to the last complete line.
    cut = head if len(head) <= HEADER_LIMIT else head[: head.rfind(b"\n") + 1 or len(head)]
    try:
        return cut.decode("utf-16" if encoding == "utf-16" else encoding)
    except UnicodeDecodeError as exc:
        row = cut[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"byte 0x{cut[exc.start]:02X} is not valid {encoding.upper()} text.",
            file=name,
            row=row,
            hint="The file is probably Latin-1 / Windows-1252: choose the 'latin-1' encoding "
            "(--encoding latin-1), or save the file as UTF-8.",
        ) from exc


def _guess_type(values: pd.Series) -> str:
    text = values.dropna().astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return "VARCHAR"
    numeric = pd.to_numeric(text, errors="coerce")
    return "DOUBLE" if numeric.notna().all() else "VARCHAR"


def _csv_reader(lenient: bool = False) -> str:
    """read_csv with an explicit dialect; strict unless previewing. All values stay text."""
    mode = "strict_mode=false, null_padding=true, ignore_errors=true" if lenient else "strict_mode=true, null_padding=false"
    return (
        "read_csv(?, auto_detect=false, header=true, columns=?, delim=?, quote='\"', escape='\"', "
        f"encoding=?, max_line_size={MAX_LINE_BYTES}, {mode})"
    )


def _csv_params(info: FileInfo) -> list[Any]:
    return [str(info.path), {n: "VARCHAR" for n in info.column_names}, info.delimiter, info.encoding]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _csv_error(exc: duckdb.Error, info: FileInfo) -> InvalidInput:
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
            problem,
            file=info.display_name, row=row,
            hint="Every row needs one value per header column: quote values that contain the delimiter "
            f"'{info.delimiter}', or fix the row.",
        )
    if "Maximum line size" in message or "maximum line size" in message:
        return InvalidInput(f"the line is longer than the {MAX_LINE_BYTES >> 20} MiB limit.", file=info.display_name, row=row,
                            hint="Is a closing quote missing, or is the file not line-based? Fix the line or split the file.")
    if "unicode" in message.lower() or "encod" in message.lower():
        return InvalidInput(f"the text is not valid {info.encoding.upper()}.", file=info.display_name, row=row,
                            hint="Choose the file's encoding (latin-1 for Windows exports) or save it as UTF-8.")
    if "quote" in message.lower():
        return InvalidInput("a quoted value is never closed.", file=info.display_name, row=row,
                            hint="Check the quotes on that line.")
    return InvalidInput(f"cannot be read as CSV ({_first_line(exc)}).", file=info.display_name, row=row,
                        hint="Check that the file is a delimited text file with a header line.")


# --------------------------------------------------------------------------------------------
# Parsing expressions
# --------------------------------------------------------------------------------------------


def _text(src: str) -> str:
    return f"NULLIF(trim(CAST({src} AS VARCHAR)), '')"


MIN_YEAR, MAX_YEAR = 1970, 2099
MAX_AMOUNT = 1e12  # soles; larger is a unit or parsing error, and would swamp every total


def _parse_expr(role: str, src: str, source_type: str) -> str:
    """SQL turning a source column into the role's type; NULL where the value does not parse."""
    if role == "timestamp":
        if source_type.startswith(("TIMESTAMP", "DATE")):
            value = f"CAST({src} AS TIMESTAMP)"
        else:
            value = f"coalesce(TRY_CAST({_text(src)} AS TIMESTAMP), try_strptime({_text(src)}, ?))"
        # A transaction in 1900 or 2150 is a broken export, and would stretch every daily view.
        return f"(CASE WHEN {value} >= TIMESTAMP '{MIN_YEAR}-01-01' AND {value} < TIMESTAMP '{MAX_YEAR + 1}-01-01' THEN {value} END)"
    if role == "amount":
        text = _text(src)
        value = (f"coalesce(TRY_CAST({text} AS DOUBLE), "
                 f"TRY_CAST(regexp_replace({text}, '^(S/\\.?|PEN|\\$)\\s*|,', '', 'g') AS DOUBLE))")
        return f"(CASE WHEN isfinite({value}) AND {value} >= 0 AND {value} < {MAX_AMOUNT:.0f} THEN {value} END)"
    if role in ("lat", "lon"):
        limit = 90 if role == "lat" else 180
        value = f"TRY_CAST({_text(src)} AS DOUBLE)"
        return f"(CASE WHEN {value} BETWEEN -{limit} AND {limit} THEN {value} END)"
    if role == "label":
        word = f"lower({_text(src)})"
        return f"(CASE WHEN list_contains(?, {word}) THEN true WHEN list_contains(?, {word}) THEN false END)"
    if role == "numeric":
        value = f"TRY_CAST({_text(src)} AS DOUBLE)"
        return f"(CASE WHEN isfinite({value}) THEN {value} END)"
    return _text(src)


def _expr_params(role: str, source_type: str) -> list[Any]:
    if role == "timestamp" and not source_type.startswith(("TIMESTAMP", "DATE")):
        return [TIMESTAMP_FORMATS] * 3  # the parsed value appears three times in the range check
    if role == "label":
        return [TRUE_WORDS, FALSE_WORDS]
    return []


PROBLEM_TEXT = {
    "timestamp": f"is not a date/time from {MIN_YEAR} to {MAX_YEAR}",
    "amount": f"is not a non-negative amount below {MAX_AMOUNT:,.0f}",
    "lat": "is not a latitude between -90 and 90",
    "lon": "is not a longitude between -180 and 180",
    "label": "is not a fraud label (1/0, true/false, yes/no, fraud/legit)",
    "numeric": "is not a number",
}
REQUIRED_ROLES = [r.name for r in ROLE_BY_NAME.values() if r.required]
FLAG_BITS = 60  # problem flags per BIGINT column


@dataclass(frozen=True)
class _Check:
    """A parsed column and the SQL condition that marks a value of it as bad."""

    role: str
    column: str
    condition: str
    params: list[Any]

    @property
    def required(self) -> bool:
        return self.role in REQUIRED_ROLES


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def import_file(
    conn: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    name: str,
    mapping: ColumnMapping | None = None,
    *,
    display_name: str | None = None,
    encoding: str = "utf-8",
    skip_bad_rows: bool = False,
    progress: ProgressFn = no_progress,
) -> ImportResult:
    """Import a CSV or Parquet file as dataset `name`, inside the caller's transaction (so the
    caller's rollback undoes everything if anything is refused).

    Without `skip_bad_rows`, any missing or unparseable timestamp or amount rejects the file
    with an InvalidInput naming the rows. With it, those rows are left out, counted and listed in
    the dataset's import report. Values of optional roles that do not parse become NULL and
    are counted the same way; the row is kept.

    One pass: the reader feeds the dataset table directly, parsing as it goes and flagging
    each bad value in a bitmask column, so checking afterwards is a scan of small integers.
    """
    started = time.perf_counter()
    name = validate_name(name)
    progress(0.02, "Checking the file")
    info = inspect_file(conn, path, display_name, encoding)
    mapping = (mapping or info.guessed_mapping()).validate(info.column_names, info.display_name)
    types = {n: "VARCHAR" for n in info.column_names} if info.format == "csv" else dict(info.columns)
    checks = _checks(mapping, types)
    select, params, columns, notes = _select_for(mapping, types, checks)
    if info.format == "csv":
        reader, reader_params = _csv_reader(), _csv_params(info)
    else:
        reader, reader_params = "read_parquet(?)", [str(info.path)]

    with new_dataset(conn, name, f"file: {info.display_name}") as new:
        progress(0.10, f"Reading {info.display_name}")
        try:
            conn.execute(f"CREATE TABLE {new.table} AS SELECT {select} FROM {reader}", [*params, *reader_params])
        except duckdb.Error as exc:
            if info.format == "csv":
                raise _csv_error(exc, info) from exc
            raise InvalidInput(f"cannot be read ({_first_line(exc)}).", file=info.display_name) from exc
        # Insertion order is file order, so rowid counts data rows in the file. Rows not yet
        # committed are numbered from an offset, hence the subtraction.
        first = fetch_one(conn, f"SELECT min(rowid) FROM {new.table}")[0] or 0
        row = f"(rowid - {int(first)})"
        conn.execute(f"ALTER TABLE {new.table} ADD COLUMN tx_row BIGINT")
        conn.execute(
            f"UPDATE {new.table} SET tx_row = {row}"
            + (f", transaction_id = 'R' || lpad(CAST({row} + 1 AS VARCHAR), 9, '0')"
               if "transaction_id" not in mapping.roles else "")
        )
        rows_read = fetch_one(conn, f"SELECT count(*) FROM {new.table}")[0]
        if rows_read == 0:
            raise InvalidInput("the file has no data rows.", file=info.display_name, hint="Nothing to import.")

        progress(0.55, f"Checking {rows_read:,} rows")
        problems = _find_problems(conn, new.table, checks, info, reader, reader_params)
        bad_required = [p for p in problems if p["required"]]
        if bad_required and not skip_bad_rows:
            raise _rejection(bad_required, info)
        if bad_required:
            conn.execute(f"DELETE FROM {new.table} WHERE {_flagged([c for c in checks if c.required], checks)}")
        _check_duplicate_ids(conn, new.table, mapping, info)
        if "city" in mapping.roles and not ("lat" in mapping.roles and "lon" in mapping.roles):
            notes.append(_resolve_places(conn, new.table, mapping))
        for i in range(_flag_columns(checks)):
            conn.execute(f"ALTER TABLE {new.table} DROP COLUMN _issues_{i}")
        progress(0.85, "Registering the dataset")
        new.columns = columns
        new.report = {
            "file": info.display_name,
            "format": info.format,
            "encoding": info.encoding if info.format == "csv" else None,
            "rows_read": rows_read,
            "mapping": {"roles": mapping.roles, "categorical": mapping.categorical, "numeric": mapping.numeric},
            "problems": problems,
            "notes": notes,
        }
    dataset = get_dataset(conn, new.id)
    skipped = rows_read - dataset.row_count
    if skipped:
        notes.insert(0, f"{skipped:,} rows with a missing or unparseable timestamp or amount were left out (listed in the report).")
    progress(1.0, f"Imported {dataset.row_count:,} rows")
    return ImportResult(dataset, rows_read, dataset.row_count, skipped, problems, notes, time.perf_counter() - started)


def _checks(mapping: ColumnMapping, types: dict[str, str]) -> list[_Check]:
    """Every parsed column with its 'bad value' condition over the source columns."""
    parsed = [(role, col) for role, col in mapping.roles.items() if role in PROBLEM_TEXT]
    parsed += [("numeric", col) for col in mapping.numeric]
    out = []
    for role, col in parsed:
        src = quote_ident(col)
        expr = _parse_expr(role, src, types[col])
        if role in REQUIRED_ROLES:  # missing counts as bad too
            condition = f"({expr}) IS NULL"
        else:
            condition = f"{_text(src)} IS NOT NULL AND ({expr}) IS NULL"
        out.append(_Check(role, col, condition, _expr_params(role, types[col])))
    return out


def _flag_columns(checks: list[_Check]) -> int:
    return (len(checks) + FLAG_BITS - 1) // FLAG_BITS


def _flagged(subset: list[_Check], checks: list[_Check]) -> str:
    """SQL: true where any check in `subset` flagged the row."""
    parts = []
    for check in subset:
        i = checks.index(check)
        parts.append(f"(_issues_{i // FLAG_BITS} & {1 << (i % FLAG_BITS)}) <> 0")
    return " OR ".join(parts) or "false"


def _rejection(bad_required: list[dict[str, Any]], info: FileInfo) -> InvalidInput:
    first = bad_required[0]
    total = sum(p["count"] for p in bad_required)
    rows = ", ".join(f"{r:,}" for r in first["rows"])
    more = f" ({first['count']:,} such values in this column; first rows: {rows})" if first["count"] > 1 else ""
    if total > first["count"]:
        more += f" ({total - first['count']:,} more in {', '.join(repr(p['column']) for p in bad_required[1:])})"
    value = "an empty value" if first["value"] is None else repr(first["value"])
    return InvalidInput(
        f"{value} {PROBLEM_TEXT[first['role']]}{more}.",
        file=info.display_name, row=first["rows"][0], column=first["column"],
        hint="Fix those values, map another column, or import with 'skip bad rows' (--skip-bad-rows) "
        "to leave such rows out; they are counted and listed.",
    )


def _find_problems(
    cursor: duckdb.DuckDBPyConnection, table: str, checks: list[_Check], info: FileInfo, reader: str, reader_params: list
) -> list[dict[str, Any]]:
    """Count flagged values per column; for the few columns with any, fetch the first rows' raw values."""
    if not checks:
        return []
    counts = fetch_one(cursor, f"SELECT {', '.join(f'count(*) FILTER ({_flagged([c], checks)})' for c in checks)} FROM {table}")
    # Row numbers as a spreadsheet shows them: in a CSV the header is row 1.
    row_offset = 2 if info.format == "csv" else 1
    problems = []
    for check, count in zip(checks, counts, strict=True):
        if not count:
            continue
        indexes = [r[0] for r in cursor.execute(
            f"SELECT tx_row FROM {table} WHERE {_flagged([check], checks)} ORDER BY tx_row LIMIT ?", [EXAMPLES_PER_COLUMN]
        ).fetchall()]
        # Only on this rare path, re-read the file for the raw values as written.
        raw = dict(cursor.execute(
            f"SELECT i, v FROM (SELECT row_number() OVER () - 1 AS i, CAST({quote_ident(check.column)} AS VARCHAR) AS v "
            f"FROM {reader}) WHERE list_contains(?, i)",
            [*reader_params, indexes],
        ).fetchall())
        problems.append({
            "role": check.role, "column": check.column, "count": int(count), "required": check.required,
            "rows": [i + row_offset for i in indexes], "value": raw.get(indexes[0]),
            "action": "row left out" if check.required else "value set to empty",
        })
    problems.sort(key=lambda p: (not p["required"], p["rows"][0]))
    return problems


def _check_duplicate_ids(cursor: duckdb.DuckDBPyConnection, table: str, mapping: ColumnMapping, info: FileInfo) -> None:
    column = mapping.roles.get("transaction_id")
    if not column:
        return
    row_offset = 2 if info.format == "csv" else 1
    missing = fetch_one(cursor, f"SELECT min(tx_row) FROM {table} WHERE transaction_id IS NULL")[0]
    if missing is not None:
        raise InvalidInput("the transaction id is empty.", file=info.display_name, row=missing + row_offset, column=column,
                           hint="Every row needs an id: fill it in, or unmap the id column to number the rows instead.")
    if not fetch_one(cursor, f"SELECT count(*) > count(DISTINCT transaction_id) FROM {table}")[0]:
        return
    ident, n, rows, groups = fetch_one(
        cursor,
        f"SELECT transaction_id, count(*), list(tx_row + ? ORDER BY tx_row)[1:2], count(*) OVER () "
        f"FROM {table} GROUP BY 1 HAVING count(*) > 1 ORDER BY min(tx_row) LIMIT 1",
        [row_offset],
    )
    raise InvalidInput(
        f"transaction id {ident!r} appears {n} times (rows {rows[0]:,} and {rows[1]:,})"
        + (f"; {groups - 1:,} more ids are duplicated" if groups > 1 else "") + ".",
        file=info.display_name, row=rows[1], column=column,
        hint="Transaction ids must be unique: remove the duplicate rows, or unmap the id column to number the rows instead.",
    )


def _resolve_places(cursor: duckdb.DuckDBPyConnection, table: str, mapping: ColumnMapping) -> str:
    """Fill lat/lon from the city column where it names a known place; say how many matched."""
    register_places(cursor)
    key = place_key_sql("t.city")
    missing = [axis for axis in ("lat", "lon") if axis not in mapping.roles]  # never overwrite a mapped one
    assignments = ", ".join(f"{axis} = p.{axis}" for axis in missing)
    cursor.execute(f"UPDATE {table} t SET {assignments} FROM _places p WHERE p.place_key = {key}")
    cursor.unregister("_places")
    resolved = f"{missing[0]} IS NOT NULL"
    names, matched, unmatched = fetch_one(
        cursor,
        f"SELECT count(DISTINCT city), count(DISTINCT city) FILTER ({resolved}), "
        f"list(DISTINCT city ORDER BY city) FILTER (NOT ({resolved}) AND city IS NOT NULL)[1:5] FROM {table}",
    )
    note = (f"Coordinates come from column '{mapping.roles['city']}': {matched:,} of {names:,} place names "
            "matched a Peruvian city or Lima district")
    if unmatched:
        note += f" (not matched, e.g.: {', '.join(unmatched)}; those rows have no coordinates)"
    return note + "."


def _select_for(
    mapping: ColumnMapping, types: dict[str, str], checks: list[_Check]
) -> tuple[str, list[Any], list[StoredColumn], list[str]]:
    """The SELECT list that turns source rows into dataset rows, its parameters, and what it stores."""
    exprs: list[str] = []
    params: list[Any] = []
    columns = [StoredColumn("tx_row", "tx_row", None)]
    notes: list[str] = []
    roles = dict(mapping.roles)

    if "transaction_id" in roles:
        exprs.append(f"{_text(quote_ident(roles['transaction_id']))} AS transaction_id")
        columns.append(StoredColumn("transaction_id", "transaction_id", roles["transaction_id"]))
    else:
        exprs.append("CAST(NULL AS VARCHAR) AS transaction_id")  # numbered from rowid after loading
        columns.append(StoredColumn("transaction_id", "transaction_id", None))
        notes.append("No transaction id column: ids were generated from row numbers (R000000001 is the first data row).")

    for role_name, source in roles.items():
        if role_name == "transaction_id":
            continue
        role = ROLE_BY_NAME[role_name]
        exprs.append(f"{_parse_expr(role_name, quote_ident(source), types[source])} AS {role.column}")
        params += _expr_params(role_name, types[source])
        columns.append(StoredColumn(role.column, role_name, source))

    if "city" in roles and not ("lat" in roles and "lon" in roles):
        for axis in ("lat", "lon"):
            if axis not in roles:  # filled from the reference geography after loading
                exprs.append(f"CAST(NULL AS DOUBLE) AS {axis}")
                columns.append(StoredColumn(axis, axis, None))
    if "customer_id" not in roles:
        notes.append("No customer id column: per-customer features (history, velocity, distance, devices) are disabled.")

    taken = {c.name for c in columns}
    for kind in ("categorical", "numeric"):
        for source in getattr(mapping, kind):
            stored = stored_name(source, taken)
            exprs.append(f"{_parse_expr(kind, quote_ident(source), types[source])} AS {quote_ident(stored)}")
            columns.append(StoredColumn(stored, kind, source))

    for i in range(_flag_columns(checks)):
        group = checks[i * FLAG_BITS:(i + 1) * FLAG_BITS]
        bits = " | ".join(f"(CASE WHEN {c.condition} THEN {1 << j} ELSE 0 END)" for j, c in enumerate(group))
        exprs.append(f"CAST({bits} AS BIGINT) AS _issues_{i}")
        params += [p for c in group for p in c.params]
    return ", ".join(exprs), params, columns, notes


def register_places(conn: duckdb.DuckDBPyConnection) -> None:
    """Make the reference places queryable as `_places` on this connection."""
    conn.register("_places", lookup_frame())
