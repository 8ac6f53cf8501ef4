"""Import CSV, Parquet and Excel files into a new dataset, through DuckDB's own readers.

The path a file takes:
1. `inspect_file` (data.sources) checks the bytes (format, encoding, header) and reads a preview,
   so the page can show the guessed column mapping before anything is written.
2. Each parsed column's convention is decided (data.conventions): the decimal separator, the
   date order, whether a timestamp is Unix time; conflicting columns are refused before the
   file is read in full.
3. One pass: the reader feeds the dataset table directly, parsing each role as it goes (times
   converted to the dataset's time zone), and flags every bad value, and every converted one,
   in bitmask columns, so checking afterwards is a scan of small integers. The raw values of
   bad rows are re-read from the file only when there are any.
4. The parsed rows become a dataset table in the same transaction that registers it, so a
   failure at any step leaves the database exactly as it was.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb

from data.conventions import (
    DAY_MONTH_RE,
    DEFAULT_TIMEZONE,
    ISO_FORMATS,
    MAX_AMOUNT,
    MAX_YEAR,
    MIN_YEAR,
    NAIVE_ISO_RE,
    NUMBER_PARTS,
    NUMBER_RE,
    ORDER_FORMATS,
    ORDER_TITLES,
    TIME_FORMATS,
    ZONED_RE,
    ColumnPlan,
    Evidence,
    ImportOptions,
    day_month_kind_from,
    day_month_kind_sql,
    detect,
    digits_kind_sql,
    epoch_sql,
    in_years_sql,
    is_numeric_type,
    is_temporal_type,
    is_text,
    is_zoned_type,
    lit,
    lit_list,
    naive_value_sql,
    number_kind_sql,
    number_ok_sql,
    number_value_sql,
    text_sql,
    time_value_sql,
    to_zone_sql,
    zone_shifts,
    zoned_sql,
)
from data.datasets import Dataset, StoredColumn, get_dataset, new_dataset, validate_name
from data.db import ProgressFn, fetch_one, no_progress, quote_ident
from data.errors import InvalidInput
from data.geography import lookup_frame, place_key_sql
from data.mapping import ROLE_BY_NAME, ColumnMapping, stored_name
from data.sources import ENCODINGS, FileInfo, Source, inspect_file, open_source

__all__ = ["ENCODINGS", "FileInfo", "ImportOptions", "ImportResult", "import_file", "inspect_file", "detect_conventions"]

EXAMPLES_PER_COLUMN = 3
TRUE_WORDS = ["1", "1.0", "true", "t", "yes", "y", "si", "sí", "fraud", "fraude", "fraudulent", "fraudulento"]
FALSE_WORDS = ["0", "0.0", "false", "f", "no", "n", "legit", "legitimate", "legítimo", "legitimo", "genuine", "normal", "ok"]
FLAG_BITS = 60  # flags per BIGINT column

PROBLEM_TEXT = {
    "timestamp": f"is not a date/time from {MIN_YEAR} to {MAX_YEAR}",
    "amount": f"is not an amount (a number below {MAX_AMOUNT:,.0f}; refunds are negative)",
    "lat": "is not a latitude between -90 and 90",
    "lon": "is not a longitude between -180 and 180",
    "label": "is not a fraud label (1/0, true/false, yes/no, fraud/legit)",
    "numeric": "is not a number",
    "time": "is not a time of day (HH:MM or HH:MM:SS, or with AM/PM)",
}
REQUIRED_ROLES = [r.name for r in ROLE_BY_NAME.values() if r.required]


@dataclass
class ImportResult:
    dataset: Dataset
    rows_read: int
    rows_stored: int
    skipped_rows: int
    problems: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    columns: list[dict[str, Any]] = field(default_factory=list)  # per parsed column: convention and counts
    counts: dict[str, int] = field(default_factory=dict)  # refunds, converted offsets, skipped rows
    timezone: str = DEFAULT_TIMEZONE

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (the command line's --json)."""
        return {"dataset": self.dataset.name, "rows_read": self.rows_read, "rows_stored": self.rows_stored,
                "skipped_rows": self.skipped_rows, "timezone": self.timezone, "seconds": round(self.seconds, 3),
                "columns": self.columns, "counts": self.counts, "problems": self.problems, "notes": self.notes}


# --------------------------------------------------------------------------------------------
# Flags: one bit per (bad or converted) value kind, per row
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # identity: each flag is one bit
class _Flag:
    """A per-row condition kept as one bit: a bad value ('bad'), a value converted from another
    time zone ('converted'), or a convention seen in a column that had none decided ('saw:dot')."""

    kind: str
    role: str
    column: str  # the source column messages name
    condition: str  # SQL over the parse stage's columns
    plan: ColumnPlan | None = None

    @property
    def required(self) -> bool:
        # A bad time of day (in its own column) leaves the row without a timestamp, too.
        return self.kind == "bad" and self.role in (*REQUIRED_ROLES, "time")


class _Flags:
    def __init__(self) -> None:
        self.items: list[_Flag] = []

    def add(self, flag: _Flag) -> None:
        self.items.append(flag)

    def columns(self) -> int:
        return (len(self.items) + FLAG_BITS - 1) // FLAG_BITS

    def test(self, flag: _Flag) -> str:
        """SQL: true where `flag` is set on the row."""
        i = self.items.index(flag)
        return f"((_flags_{i // FLAG_BITS} & {1 << (i % FLAG_BITS)}) <> 0)"

    def any(self, subset: list[_Flag]) -> str:
        return " OR ".join(self.test(f) for f in subset) or "false"

    def select(self) -> list[str]:
        out = []
        for i in range(self.columns()):
            group = self.items[i * FLAG_BITS:(i + 1) * FLAG_BITS]
            bits = " | ".join(f"(CASE WHEN {f.condition} THEN {1 << j} ELSE 0 END)" for j, f in enumerate(group))
            out.append(f"CAST({bits} AS BIGINT) AS _flags_{i}")
        return out

    def of(self, kind: str) -> list[_Flag]:
        return [f for f in self.items if f.kind == kind]


# --------------------------------------------------------------------------------------------
# Building the one-pass SELECT
# --------------------------------------------------------------------------------------------


class _Builder:
    """The one-pass SELECT, in stages: source values (`_s*`, text trimmed), then parsed values
    (`_v*`) level by level, then the stored columns and flags.

    Each costly expression (a regular expression, a strptime over many formats) is written once,
    at its own level, behind a CASE that lets only the rows needing it through. Written twice,
    DuckDB's common-subexpression pass would hoist it out of the CASE and run it on every row;
    written once, the usual value (ISO date-time, 57.16) costs one cast, and the slow paths run
    only on the rows that take them.
    """

    def __init__(self, mapping: ColumnMapping, types: dict[str, str], plans: dict[str, ColumnPlan], zone: str):
        self.mapping, self.types, self.plans, self.zone = mapping, types, plans, zone
        self.sources: dict[str, str] = {}  # source column -> stage-0 name
        self.levels: dict[int, list[str]] = {}  # level -> "expr AS _vN"
        self.count = 0
        self.outputs: list[str] = []
        self.columns = [StoredColumn("tx_row", "tx_row", None)]
        self.flags = _Flags()
        self.notes: list[str] = []
        self.stored: dict[int, str] = {}  # id(plan) -> the stored column it fills

    def src(self, column: str) -> str:
        if column not in self.sources:
            self.sources[column] = f"_s{len(self.sources)}"
        return self.sources[column]

    def text(self, column: str) -> str:
        name = self.src(column)
        return name if is_text(self.types[column]) else text_sql(name)

    def value(self, sql: str, level: int) -> str:
        """Add a parsed value computed at `level` (from source values and values of lower levels)."""
        name = f"_v{self.count}"
        self.count += 1
        self.levels.setdefault(level, []).append(f"{sql} AS {name}")
        return name

    def sql(self, reader: str) -> str:
        parts = []
        for column, name in self.sources.items():
            src = quote_ident(column)
            parts.append(f"{text_sql(src) if is_text(self.types[column]) else src} AS {name}")
        query = f"SELECT {', '.join(parts) or '1 AS _none'} FROM {reader}"
        for level in sorted(self.levels):
            query = f"SELECT *, {', '.join(self.levels[level])} FROM ({query}) _l{level}"
        return f"SELECT {', '.join([*self.outputs, *self.flags.select()])} FROM ({query}) _out"

    # -- roles --------------------------------------------------------------------------------

    def build(self) -> None:
        roles = dict(self.mapping.roles)
        if "transaction_id" in roles:
            self.outputs.append(f"{self.text(roles['transaction_id'])} AS transaction_id")
            self.columns.append(StoredColumn("transaction_id", "transaction_id", roles["transaction_id"]))
        else:
            self.outputs.append("CAST(NULL AS VARCHAR) AS transaction_id")  # numbered from rowid after loading
            self.columns.append(StoredColumn("transaction_id", "transaction_id", None))
            self.notes.append("No transaction id column: ids were generated from row numbers (R000000001 is the first data row).")
        for role_name, source in roles.items():
            if role_name == "transaction_id":
                continue
            role = ROLE_BY_NAME[role_name]
            if role_name == "timestamp":
                expr = self._timestamp(self.plans["timestamp"])
                source = self.mapping.timestamp_source
            elif role_name in ("amount", "lat", "lon"):
                expr = self._number(self.plans[role_name])
            elif role_name == "label":
                expr = self._label(source)
            else:
                expr = self.text(source)
            self.outputs.append(f"{expr} AS {role.column}")
            self.columns.append(StoredColumn(role.column, role_name, source))
            if role_name in self.plans:
                self.stored[id(self.plans[role_name])] = role.column
        if "city" in roles and not ("lat" in roles and "lon" in roles):
            for axis in ("lat", "lon"):
                if axis not in roles:  # filled from the reference geography after loading
                    self.outputs.append(f"CAST(NULL AS DOUBLE) AS {axis}")
                    self.columns.append(StoredColumn(axis, axis, None))
        if "customer_id" not in roles:
            self.notes.append("No customer id column: per-customer features (history, velocity, distance, devices) are disabled.")
        taken = {c.name for c in self.columns}
        for kind in ("categorical", "numeric"):
            for source in getattr(self.mapping, kind):
                stored = stored_name(source, taken)
                expr = self.text(source) if kind == "categorical" else self._number(self.plans[f"numeric:{source}"])
                self.outputs.append(f"{expr} AS {quote_ident(stored)}")
                self.columns.append(StoredColumn(stored, kind, source))
                if kind == "numeric":
                    self.stored[id(self.plans[f"numeric:{source}"])] = stored

    def _bad(self, plan: ColumnPlan | None, role: str, column: str, condition: str) -> None:
        self.flags.add(_Flag("bad", role, column, condition, plan))

    def _parse_number(self, plan: ColumnPlan) -> str:
        """A text column as DOUBLE under the plan's decimal separator (see data.conventions)."""
        x, decimal = self.text(plan.column), plan.decimal
        no_separator = f"(NOT contains({x}, '.') AND NOT contains({x}, ','))"
        fast = self.value(f"TRY_CAST({x} AS DOUBLE)" if decimal == "."
                          else f"(CASE WHEN {no_separator} THEN TRY_CAST({x} AS DOUBLE) END)", 1)
        parts = self.value(f"(CASE WHEN {fast} IS NULL AND {x} IS NOT NULL THEN regexp_extract({x}, {lit(NUMBER_RE)}, "
                           f"{lit_list(NUMBER_PARTS)}) END)", 2)
        digits = self.value(f"regexp_replace({parts}.digits, '[ ''\u00a0\u202f]', '', 'g')", 3)
        sign = self.value(f"(CASE WHEN {parts}.open = '(' OR {parts}.s1 = '-' OR {parts}.s2 = '-' OR {parts}.s3 = '-' "
                          "THEN -1.0 ELSE 1.0 END)", 3)
        balanced = self.value(f"(({parts}.open = '') = ({parts}.close = ''))", 3)
        kind = self.value(digits_kind_sql(digits), 4)
        dot = f"TRY_CAST(replace({digits}, ',', '') AS DOUBLE)"
        comma = f"TRY_CAST(replace(replace({digits}, '.', ''), ',', '.') AS DOUBLE)"
        if decimal == ".":
            slow = f"(CASE WHEN {kind} IN ('plain', 'dot', 'either') THEN {dot} END)"
        elif decimal == ",":
            slow = f"(CASE WHEN {kind} IN ('plain', 'comma', 'either') THEN {comma} END)"
        else:
            # Nothing decided: a value must show its own convention; one that could be either is
            # bad, except degrees (never above 180, so 12.046 can only be a decimal).
            degrees = plan.role in ("lat", "lon")
            as_dot = f"{kind} IN ('plain', 'dot')" + (f" OR ({kind} = 'either' AND contains({digits}, '.'))" if degrees else "")
            as_comma = f"{kind} = 'comma'" + (f" OR ({kind} = 'either' AND contains({digits}, ','))" if degrees else "")
            slow = f"(CASE WHEN {as_dot} THEN {dot} WHEN {as_comma} THEN {comma} END)"
            for seen in ("dot", "comma", "either"):
                self.flags.add(_Flag(f"saw:{seen}", plan.role, plan.column, f"{kind} = '{seen}'", plan))
        return self.value(f"coalesce({fast}, CASE WHEN {balanced} THEN {sign} * {slow} END)", 5)

    def _number(self, plan: ColumnPlan) -> str:
        column, role = plan.column, plan.role
        if is_numeric_type(self.types[column]):
            parsed = self.value(f"CAST({self.src(column)} AS DOUBLE)", 1)
        else:
            parsed = self._parse_number(plan)
        ok = number_ok_sql(role, parsed)
        required = role in REQUIRED_ROLES  # then a missing value is bad too
        self._bad(plan, role, column, f"NOT coalesce({ok}, false)" if required
                  else f"{self.text(column)} IS NOT NULL AND NOT coalesce({ok}, false)")
        return f"(CASE WHEN {ok} THEN {parsed} END)"

    def _label(self, column: str) -> str:
        word = f"lower({self.text(column)})"
        parsed = self.value(f"(CASE WHEN list_contains({lit_list(TRUE_WORDS)}, {word}) THEN true "
                            f"WHEN list_contains({lit_list(FALSE_WORDS)}, {word}) THEN false END)", 1)
        self._bad(None, "label", column, f"{self.text(column)} IS NOT NULL AND {parsed} IS NULL")
        return parsed

    def _naive_text(self, plan: ColumnPlan, x: str) -> tuple[str, str | None]:
        """A text date-time written without a zone, as TIMESTAMP (the value's name), and the name of
        its d/m order kind when no order was decided."""
        order = plan.date_order
        fast = self.value(f"try_strptime({x}, {lit_list(ISO_FORMATS + (ORDER_FORMATS[order] if order else []))})", 1)
        slow = f"{fast} IS NULL AND {x} IS NOT NULL"
        # Other ISO shapes DuckDB's cast reads (7-digit fractions, single-digit parts); the pattern
        # keeps out anything with a zone, which the cast would silently drop.
        iso = self.value(f"(CASE WHEN {slow} AND regexp_full_match({x}, {lit(NAIVE_ISO_RE)}) "
                         f"THEN TRY_CAST({x} AS TIMESTAMP) END)", 2)
        if order:
            return self.value(f"coalesce({fast}, {iso})", 6), None
        match = self.value(f"(CASE WHEN {slow} THEN regexp_extract({x}, {lit(DAY_MONTH_RE)}, ['a', 'b']) END)", 2)
        a = self.value(f"TRY_CAST(NULLIF({match}.a, '') AS INTEGER)", 3)
        b = self.value(f"TRY_CAST(NULLIF({match}.b, '') AS INTEGER)", 3)
        kind = self.value(day_month_kind_from(a, b), 4)
        ordered = self.value(f"(CASE WHEN {kind} IN ('dmy', 'same') THEN try_strptime({x}, {lit_list(ORDER_FORMATS['dmy'])}) "
                             f"WHEN {kind} = 'mdy' THEN try_strptime({x}, {lit_list(ORDER_FORMATS['mdy'])}) END)", 5)
        for seen in ("dmy", "mdy", "either"):
            self.flags.add(_Flag(f"saw:{seen}", "timestamp", plan.column, f"{kind} = '{seen}'", plan))
        return self.value(f"coalesce({fast}, {iso}, {ordered})", 6), kind

    def _instant(self, plan: ColumnPlan) -> tuple[str, str | None]:
        """The timestamp column as wall time in the dataset's zone (the value's name), and the name
        of a value true where the row carried its own zone (so was converted), when that varies."""
        column = plan.column
        src, source_type, zone = self.src(column), self.types[column], self.zone
        if plan.epoch_unit:
            if is_numeric_type(source_type):
                number = src
            else:
                x = self.text(column)
                number = self.value(f"(CASE WHEN regexp_full_match({x}, '[0-9]+(\\.[0-9]+)?') THEN TRY_CAST({x} AS DOUBLE) END)", 1)
            return self.value(epoch_sql(number, plan.epoch_unit, zone), 6), None
        if is_zoned_type(source_type):
            return self.value(to_zone_sql(src, zone), 1), None
        if is_temporal_type(source_type):
            return self.value(f"CAST({src} AS TIMESTAMP)", 1), None
        x = self.text(column)
        naive, _ = self._naive_text(plan, x)
        zoned = self.value(f"(CASE WHEN {naive} IS NULL AND regexp_matches({x}, {lit(ZONED_RE)}) "
                           f"THEN {to_zone_sql(f'TRY_CAST({x} AS TIMESTAMPTZ)', zone)} END)", 7)
        converted = self.value(f"({zoned} IS NOT NULL)", 8)
        return self.value(f"coalesce({naive}, {zoned})", 8), converted

    def _timestamp(self, plan: ColumnPlan) -> str:
        column = plan.column
        if plan.time_column:
            day = self._date(plan, column)
            clock = self._time(plan.time_column)
            parsed = self.value(f"({day} + {clock})", 9)
            self._bad(plan, "timestamp", column, f"NOT coalesce({in_years_sql(f'CAST({day} AS TIMESTAMP)')}, false)")
            self._bad(plan, "time", plan.time_column, f"{clock} IS NULL")
        else:
            parsed, converted = self._instant(plan)
            self._bad(plan, "timestamp", column, f"NOT coalesce({in_years_sql(parsed)}, false)")
            if converted is not None:
                self.flags.add(_Flag("converted", "timestamp", column, converted, plan))
        return f"(CASE WHEN {in_years_sql(parsed)} THEN {parsed} END)"

    def _date(self, plan: ColumnPlan, column: str) -> str:
        src, source_type = self.src(column), self.types[column]
        if is_zoned_type(source_type):
            return self.value(f"CAST({to_zone_sql(src, self.zone)} AS DATE)", 1)
        if is_temporal_type(source_type):
            return self.value(f"CAST({src} AS DATE)", 1)
        naive, _ = self._naive_text(plan, self.text(column))
        return self.value(f"CAST({naive} AS DATE)", 7)

    def _time(self, column: str) -> str:
        src, source_type = self.src(column), self.types[column].upper()
        if source_type.startswith("TIME") or is_temporal_type(source_type):
            return self.value(f"CAST({src} AS TIME)", 1)
        y = self.text(column)
        fast = self.value(f"TRY_CAST({y} AS TIME)", 1)
        return self.value(f"coalesce({fast}, CASE WHEN {fast} IS NULL AND {y} IS NOT NULL THEN "
                          f"CAST(try_strptime({y}, {lit_list(TIME_FORMATS)}) AS TIME) END)", 2)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _plans(mapping: ColumnMapping, types: dict[str, str]) -> dict[str, ColumnPlan]:
    plans = {}
    for role in ("timestamp", "amount", "lat", "lon"):
        column = mapping.roles.get(role)
        if column:
            plans[role] = ColumnPlan(role, column, types[column])
    if "timestamp" in plans and mapping.time_column:
        plans["timestamp"].time_column = mapping.time_column
    for column in mapping.numeric:
        plans[f"numeric:{column}"] = ColumnPlan("numeric", column, types[column])
    return plans


def detect_conventions(conn: duckdb.DuckDBPyConnection, info: FileInfo, mapping: ColumnMapping,
                       options: ImportOptions | None = None) -> list[ColumnPlan]:
    """What an import would decide for each parsed column (read-only; the page shows it before
    importing). Raises InvalidInput for a column the import would refuse."""
    options = (options or ImportOptions()).validated(conn)
    mapping = mapping.validate(info.column_names, info.display_name)
    with open_source(conn, info, sample=True) as source:
        plans = _plans(mapping, source.types)
        return _detect(conn, source, plans, options)


def _detect(conn: duckdb.DuckDBPyConnection, source: Source, plans: dict[str, ColumnPlan],
            options: ImportOptions) -> list[ColumnPlan]:
    try:
        return detect(conn, source.reader, source.params, list(plans.values()), options, file=source.info.display_name,
                      row_offset=source.info.row_offset)
    except duckdb.Error as exc:  # the sample read meets the file's first syntax error
        raise source.error(exc) from exc


def import_file(
    conn: duckdb.DuckDBPyConnection,
    path: str | os.PathLike[str],
    name: str,
    mapping: ColumnMapping | None = None,
    *,
    display_name: str | None = None,
    encoding: str = "utf-8",
    options: ImportOptions | None = None,
    skip_bad_rows: bool = False,
    progress: ProgressFn = no_progress,
) -> ImportResult:
    """Import a CSV, Parquet or Excel file as dataset `name`, inside the caller's transaction (so
    the caller's rollback undoes everything if anything is refused).

    Times are stored as wall time in `options.timezone` (default America/Lima): values with an
    offset, `Z` or a zone name (and zone-aware Parquet columns, and Unix times) are converted to
    it; others are taken to be in it, and those that do not exist or occur twice there (at a
    daylight-saving change) are bad values. Negative amounts are refunds, stored as they are.

    Without `skip_bad_rows`, any missing or unparseable timestamp or amount rejects the file
    with an InvalidInput naming the rows. With it, those rows are left out, counted and listed in
    the dataset's import report with the reason. Values of optional roles that do not parse
    become NULL and are counted the same way; the row is kept.
    """
    started = time.perf_counter()
    name = validate_name(name)
    options = (options or ImportOptions()).validated(conn)
    progress(0.02, "Checking the file")
    info = inspect_file(conn, path, display_name, encoding, options.sheet)
    mapping = (mapping or info.guessed_mapping()).validate(info.column_names, info.display_name)
    with open_source(conn, info) as source:
        plans = _plans(mapping, source.types)
        progress(0.05, "Detecting how numbers and dates are written")
        _detect(conn, source, plans, options)
        builder = _Builder(mapping, source.types, plans, options.timezone)
        builder.build()
        with new_dataset(conn, name, f"file: {info.display_name}", timezone=options.timezone) as new:
            progress(0.10, f"Reading {info.display_name}")
            try:
                conn.execute(f"CREATE TABLE {new.table} AS {builder.sql(source.reader)}", source.params)
            except duckdb.Error as exc:
                raise source.error(exc) from exc
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
            flags = builder.flags
            counts = dict(zip(flags.items, fetch_one(
                conn, f"SELECT {', '.join(f'count(*) FILTER ({flags.test(f)})' for f in flags.items) or '0'} FROM {new.table}"
            ) if flags.items else [], strict=False))
            _settle_undecided(conn, new.table, builder, counts, source)
            counts = dict(zip(flags.items, fetch_one(  # again: reading again may have cleared some
                conn, f"SELECT {', '.join(f'count(*) FILTER ({flags.test(f)})' for f in flags.items) or '0'} FROM {new.table}"
            ) if flags.items else [], strict=False))
            problems = _find_problems(conn, new.table, flags, counts, source)
            dst_problems, dst_condition = _dst_problems(conn, new.table, builder, plans.get("timestamp"), options.timezone, info)
            problems = sorted(problems + dst_problems, key=lambda p: (not p["required"], p["rows"][0]))
            bad_required = [p for p in problems if p["required"]]
            if bad_required and not skip_bad_rows:
                raise _rejection(bad_required, info)
            if bad_required:
                conn.execute(f"DELETE FROM {new.table} WHERE {flags.any([f for f in flags.of('bad') if f.required])} "
                             f"OR {dst_condition}")
            _check_duplicate_ids(conn, new.table, mapping, info)
            notes = builder.notes
            if "city" in mapping.roles and not ("lat" in mapping.roles and "lon" in mapping.roles):
                notes.append(_resolve_places(conn, new.table, mapping))
            summary = _summarize(conn, new.table, builder, plans)
            for i in range(flags.columns()):
                conn.execute(f"ALTER TABLE {new.table} DROP COLUMN _flags_{i}")
            progress(0.85, "Registering the dataset")
            new.columns = builder.columns
            columns = [plan.as_dict() for plan in plans.values()]
            new.report = {
                "file": info.display_name,
                "format": info.format,
                "encoding": info.encoding if info.format == "csv" else None,
                "delimiter": info.delimiter,
                "sheet": info.sheet,
                "timezone": options.timezone,
                "rows_read": rows_read,
                "mapping": mapping.as_dict(),
                "columns": columns,
                "counts": summary,
                "problems": problems,
                "notes": notes,
            }
    dataset = get_dataset(conn, new.id)
    skipped = rows_read - dataset.row_count
    summary["skipped_rows"] = skipped
    if skipped:
        notes.insert(0, f"{skipped:,} rows with a missing or unparseable timestamp or amount were left out (listed in the report).")
    if summary.get("refunds"):
        notes.append(f"{summary['refunds']:,} refunds or reversals (negative amounts) were stored as such; features "
                     "keep them out of the purchase-amount statistics.")
    if summary.get("converted_offsets"):
        notes.append(f"{summary['converted_offsets']:,} timestamps carried their own time zone or offset and were "
                     f"converted to {options.timezone}.")
    progress(1.0, f"Imported {dataset.row_count:,} rows")
    return ImportResult(dataset, rows_read, dataset.row_count, skipped, problems, notes, time.perf_counter() - started,
                        columns, summary, options.timezone)


def _first_rows(conn: duckdb.DuckDBPyConnection, table: str, condition: str, limit: int = EXAMPLES_PER_COLUMN) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT tx_row FROM {table} WHERE {condition} ORDER BY tx_row LIMIT ?",
                                       [limit]).fetchall()]


def _raw_values(conn: duckdb.DuckDBPyConnection, source: Source, column: str, indexes: list[int]) -> dict[int, str]:
    """The values of `column` at data rows `indexes`, as written in the file (re-read: a rare path)."""
    return dict(conn.execute(
        f"SELECT i, v FROM (SELECT row_number() OVER () - 1 AS i, CAST({quote_ident(column)} AS VARCHAR) AS v "
        f"FROM {source.reader}) WHERE list_contains(?, i)", [*source.params, indexes]).fetchall())


def _settle_undecided(conn: duckdb.DuckDBPyConnection, table: str, builder: _Builder, counts: dict[_Flag, int],
                      source: Source) -> None:
    """A column with no convention decided before reading: refuse it if its values showed both
    conventions, else record the one they showed (with the rows that showed it) and read again,
    in it, the values that could be either (only those rows' raw text is re-read)."""
    info, flags = source.info, builder.flags
    by_plan: dict[int, list[_Flag]] = {}
    for flag in flags.items:
        if flag.kind.startswith("saw:") and flag.kind != "saw:either" and counts.get(flag):
            by_plan.setdefault(id(flag.plan), []).append(flag)
    for seen in by_plan.values():
        plan = seen[0].plan
        evidence = {}
        for flag in seen:
            rows = _first_rows(conn, table, flags.test(flag))
            raw = _raw_values(conn, source, flag.column, rows)
            evidence[flag.kind[4:]] = Evidence([r + info.row_offset for r in rows], (raw.get(rows[0]) or "").strip(),
                                               counts[flag])
        if len(evidence) > 1:
            (k1, e1), (k2, e2) = sorted(evidence.items(), key=lambda kv: kv[1].rows[0])
            names = {"dot": "'.' as the decimal separator", "comma": "',' as the decimal separator",
                     "dmy": "day-first dates", "mdy": "month-first dates"}
            setting = "--decimal . or --decimal ," if plan.is_number else "--date-order dmy or --date-order mdy"
            raise InvalidInput(
                f"the column mixes {names[k1]} ({e1.describe()}) and {names[k2]} ({e2.describe()}).",
                file=info.display_name, row=e1.rows[0], column=plan.column,
                hint=f"Export the column in one convention, or set it ({setting}); values that do not fit are then "
                "listed as bad rows.")
        kind, proof = next(iter(evidence.items()))
        if plan.is_number:
            plan.decimal, plan.decimal_source = ("." if kind == "dot" else ","), "detected"
        else:
            plan.date_order, plan.order_source = kind, "detected"
        plan.evidence = proof
        either = next((f for f in flags.items if f.plan is plan and f.kind == "saw:either"), None)
        if either is not None and counts.get(either):
            _read_again(conn, table, builder, plan, either, source)


def _read_again(conn: duckdb.DuckDBPyConnection, table: str, builder: _Builder, plan: ColumnPlan, either: _Flag,
                source: Source) -> None:
    """Parse again, with the convention now decided, the values that could be read either way
    (they were left empty and flagged bad), and clear their flag where they now parse."""
    flags = builder.flags
    bad = next(f for f in flags.of("bad") if f.plan is plan and f.column == plan.column)
    raw = f"CAST({quote_ident(plan.column)} AS VARCHAR)"
    if plan.is_number:
        stored = quote_ident(builder.stored[id(plan)])
        value = number_value_sql(text_sql("_raw"), plan.decimal, degrees=plan.role in ("lat", "lon"))
        ok = number_ok_sql(plan.role, "r.v")
        select = f"{raw} AS _raw"
    else:
        stored = "ts"
        day = naive_value_sql(text_sql("_raw"), plan.date_order)
        if plan.time_column:
            select = f"{raw} AS _raw, CAST({quote_ident(plan.time_column)} AS VARCHAR) AS _clock"
            value = f"(CAST({day} AS DATE) + {time_value_sql(text_sql('_clock'))})"
        else:
            select, value = f"{raw} AS _raw", day
        ok = in_years_sql("r.v")
    i = flags.items.index(bad)
    column, bit = f"_flags_{i // FLAG_BITS}", 1 << (i % FLAG_BITS)
    conn.execute(
        f"UPDATE {table} t SET {stored} = CASE WHEN {ok} THEN r.v END, "
        f"{column} = CASE WHEN coalesce({ok}, false) THEN t.{column} & ~CAST({bit} AS BIGINT) ELSE t.{column} END "
        f"FROM (SELECT _i, {value} AS v FROM (SELECT row_number() OVER () - 1 AS _i, {select} FROM {source.reader}) "
        f"WHERE _i IN (SELECT tx_row FROM {table} WHERE {flags.test(either)})) r WHERE t.tx_row = r._i",
        source.params)


def _reason_sql(flag: _Flag, x: str) -> str:
    """SQL naming why a flagged value is bad, from its raw text `x` (only run on bad rows)."""
    plan, cases = flag.plan, [f"WHEN {x} IS NULL THEN 'empty'"]
    if flag.role in ("amount", "lat", "lon", "numeric") and plan is not None:
        kind = number_kind_sql(x)
        if plan.decimal:
            cases.append(f"WHEN {kind} = '{'comma' if plan.decimal == '.' else 'dot'}' THEN 'other_decimal'")
        else:
            cases.append(f"WHEN {kind} = 'either' THEN 'either_decimal'")
    elif flag.role == "timestamp" and plan is not None and not plan.epoch_unit and is_text(plan.source_type):
        order = day_month_kind_sql(x)
        if plan.date_order:
            cases.append(f"WHEN {order} = '{'mdy' if plan.date_order == 'dmy' else 'dmy'}' THEN 'other_order'")
        else:
            cases.append(f"WHEN {order} = 'either' THEN 'either_order'")
        cases.append(f"WHEN {zoned_sql(x)} AND TRY_CAST({x} AS TIMESTAMPTZ) IS NULL THEN 'zone'")
    return f"(CASE {' '.join(cases)} ELSE 'invalid' END)"


def _reason_text(code: str, flag: _Flag) -> str:
    plan = flag.plan
    if code == "other_decimal":
        other = "," if plan.decimal == "." else "."
        proof = f", e.g. {plan.evidence.describe()}" if plan.evidence else ""
        return (f"is written with '{other}' as the decimal separator, but this column uses '{plan.decimal}' "
                f"({'as set' if plan.decimal_source == 'set' else 'detected'}{proof})")
    if code == "either_decimal":
        return "could be read with '.' or ',' as the decimal separator, and no value of the column says which"
    if code == "other_order":
        other = "mdy" if plan.date_order == "dmy" else "dmy"
        proof = f", e.g. {plan.evidence.describe()}" if plan.evidence else ""
        return (f"is a {ORDER_TITLES[other]} date, but this column is {ORDER_TITLES[plan.date_order]} "
                f"({'as set' if plan.order_source == 'set' else 'detected'}{proof})")
    if code == "either_order":
        return "could be day-first or month-first, and no value of the column says which"
    if code == "zone":
        return "carries a time zone or offset that cannot be read"
    if flag.role == "timestamp" and plan is not None and plan.epoch_unit:
        return f"is not a Unix time in {'seconds' if plan.epoch_unit == 's' else 'milliseconds'} from {MIN_YEAR} to {MAX_YEAR}"
    return PROBLEM_TEXT[flag.role]


def _hint_for(code: str) -> str | None:
    if code in ("other_decimal", "either_decimal"):
        return "set the decimal separator (--decimal . or --decimal ,)"
    if code in ("other_order", "either_order"):
        return "set the date order (--date-order dmy or --date-order mdy)"
    return None


def _find_problems(conn: duckdb.DuckDBPyConnection, table: str, flags: _Flags, counts: dict[_Flag, int],
                   source: Source) -> list[dict[str, Any]]:
    """Per column with bad values, grouped by reason: how many, the first rows and the first raw value.

    Only on this rare path is the file re-read, for the raw values as written."""
    bad = [f for f in flags.of("bad") if counts.get(f)]
    if not bad:
        return []
    columns = sorted({f.column for f in bad})
    names = {c: f"_r{i}" for i, c in enumerate(columns)}
    raw = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR) AS {names[c]}" for c in columns)
    flag_columns = ", ".join(f"_flags_{i}" for i in range(flags.columns()))
    queries = []
    for n, flag in enumerate(bad):
        x = text_sql(names[flag.column])
        queries.append(
            f"SELECT {n} AS flag, reason, count(*) AS n, (list(_i ORDER BY _i))[1:{EXAMPLES_PER_COLUMN}] AS rows, "
            f"arg_min({names[flag.column]}, _i) AS value FROM (SELECT _i, {names[flag.column]}, {_reason_sql(flag, x)} AS reason "
            f"FROM raw WHERE {flags.test(flag)}) GROUP BY reason")
    sql = (f"WITH raw AS MATERIALIZED (SELECT r.*, {flag_columns} FROM (SELECT row_number() OVER () - 1 AS _i, {raw} "
           f"FROM {source.reader}) r JOIN (SELECT tx_row, {flag_columns} FROM {table} WHERE {flags.any(bad)}) b "
           f"ON r._i = b.tx_row) " + " UNION ALL ".join(queries))
    offset = source.info.row_offset
    problems = []
    for n, code, count, rows, value in conn.execute(sql, source.params).fetchall():
        flag = bad[n]
        problems.append({
            "role": flag.role, "column": flag.column, "reason": code, "problem": _reason_text(code, flag),
            "count": int(count), "required": flag.required, "rows": [r + offset for r in rows], "value": value,
            "action": "row left out" if flag.required else "value set to empty", "hint": _hint_for(code),
        })
    return problems


def _dst_problems(conn: duckdb.DuckDBPyConnection, table: str, builder: _Builder, plan: ColumnPlan | None, zone: str,
                  info: FileInfo) -> tuple[list[dict[str, Any]], str]:
    """Local times (written without a zone) that do not exist in `zone`, or occur twice there, at a
    daylight-saving change: never guessed, so they are bad timestamps. Returns the problems and SQL
    selecting their rows."""
    if plan is None or plan.epoch_unit or (is_zoned_type(plan.source_type) and not plan.time_column):
        return [], "false"
    converted = [f for f in builder.flags.of("converted")]
    naive = f"NOT ({builder.flags.any(converted)})" if converted else "true"
    lo, hi = fetch_one(conn, f"SELECT min(ts), max(ts) FROM {table} WHERE {naive}")
    if lo is None:
        return [], "false"
    problems, conditions = [], []
    for shift in zone_shifts(conn, zone, lo, hi):
        condition = f"({naive} AND ts >= TIMESTAMP '{shift.start}' AND ts < TIMESTAMP '{shift.end}')"
        count, rows = fetch_one(conn, f"SELECT count(*), (list(tx_row ORDER BY tx_row))[1:{EXAMPLES_PER_COLUMN}] "
                                      f"FROM {table} WHERE {condition}")
        if not count:
            continue
        conditions.append(condition)
        first = fetch_one(conn, f"SELECT strftime(ts, '%Y-%m-%d %H:%M:%S') FROM {table} WHERE tx_row = ?", [rows[0]])[0]
        problems.append({
            "role": "timestamp", "column": plan.column, "reason": shift.kind, "problem": shift.describe(zone),
            "count": int(count), "required": True, "rows": [r + info.row_offset for r in rows], "value": first,
            "action": "row left out",
            "hint": "export the times with their UTC offset (e.g. 2024-03-31T02:30:00+01:00)",
        })
    return problems, " OR ".join(conditions) or "false"


def _summarize(conn: duckdb.DuckDBPyConnection, table: str, builder: _Builder, plans: dict[str, ColumnPlan]) -> dict[str, int]:
    """Counts for the report, over the rows kept: refunds, converted times, and per column."""
    flags = builder.flags
    converted = flags.of("converted")
    parts = {"rows": "count(*)"}
    if "amount" in plans:
        parts["refunds"] = "count(*) FILTER (amount < 0)"
    if "timestamp" in plans:
        plan = plans["timestamp"]
        if plan.epoch_unit or (is_zoned_type(plan.source_type) and not plan.time_column):
            parts["converted_offsets"] = "count(ts)"
        elif converted:
            parts["converted_offsets"] = f"count(*) FILTER ({flags.any(converted)})"
    values = dict(zip(parts, fetch_one(conn, f"SELECT {', '.join(parts.values())} FROM {table}"), strict=True))
    summary = {"refunds": int(values.get("refunds", 0)), "converted_offsets": int(values.get("converted_offsets", 0))}
    if "amount" in plans:
        plans["amount"].counts = {"refunds": summary["refunds"]}
    if "timestamp" in plans:
        plans["timestamp"].counts = {"converted": summary["converted_offsets"],
                                     "taken_as_local": int(values["rows"]) - summary["converted_offsets"]}
    return summary


def _rejection(bad_required: list[dict[str, Any]], info: FileInfo) -> InvalidInput:
    first = bad_required[0]
    total = sum(p["count"] for p in bad_required)
    rows = ", ".join(f"{r:,}" for r in first["rows"])
    more = f" ({first['count']:,} such values in this column; first rows: {rows})" if first["count"] > 1 else ""
    others = [p for p in bad_required[1:]]
    if others:
        columns = list(dict.fromkeys(repr(p["column"]) for p in others))
        more += f" ({total - first['count']:,} more in {', '.join(columns)})"
    value = "an empty value" if first["value"] is None or not str(first["value"]).strip() else repr(first["value"])
    hint = "Fix those values, map another column, or import with 'skip bad rows' (--skip-bad-rows) to leave such rows out; " \
           "they are counted and listed."
    if first.get("hint"):
        hint = f"Fix those values, {first['hint']}, or import with 'skip bad rows' (--skip-bad-rows) to leave such rows " \
               "out; they are counted and listed."
    return InvalidInput(f"{value} {first['problem']}{more}.", file=info.display_name, row=first["rows"][0],
                        column=first["column"], hint=hint)


def _check_duplicate_ids(cursor: duckdb.DuckDBPyConnection, table: str, mapping: ColumnMapping, info: FileInfo) -> None:
    column = mapping.roles.get("transaction_id")
    if not column:
        return
    row_offset = info.row_offset
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


def register_places(conn: duckdb.DuckDBPyConnection) -> None:
    """Make the reference places queryable as `_places` on this connection."""
    conn.register("_places", lookup_frame())
