"""How a file writes its numbers and times, detected per column, and the SQL that reads them.

A bank export in Lima writes `1.234,56` and `31/01/2024 10:00`; a card processor in the US writes
`1,234.56` and `01/31/2024 10:00 PM`; an API writes `1706713200` or `2024-01-31T15:00:00Z`. Each
column's convention is decided once, before the file is read in full:
- from the user's setting (`--decimal`, `--date-order`, `--epoch-unit`), when given;
- else from the first `SAMPLE_ROWS` rows: a value only one convention can produce (`12,50`, `31/01`)
  decides the column; values of both conventions in one column refuse the file, naming rows of
  each kind;
- when the sample holds only values that could be read either way (`1.234`, `05/03/2024`), the
  whole column is classified (one more read of the file, only then): the first decisive value
  anywhere decides, and a column with none is refused, asking for the setting.

Every value is then read with its column's convention by one SQL expression per column, so the
work runs inside DuckDB's reader, vectorized. A value that does not fit the convention is not
guessed: it is flagged like any unparseable value, and the message says which convention it
seemed to follow. Nothing in this module opens a transaction or writes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from data.db import quote_ident, sql_string
from data.errors import InvalidInput

SAMPLE_ROWS = 10_000
DEFAULT_TIMEZONE = "America/Lima"
DECIMALS = (".", ",")
DATE_ORDERS = ("dmy", "mdy")
EPOCH_UNITS = ("s", "ms")
MIN_YEAR, MAX_YEAR = 1970, 2099
MAX_AMOUNT = 1e12  # soles; larger (either sign) is a unit or parsing error, and would swamp every total
# Epoch values recognised without being told: 1973-03-03 to 2099-12-31, in seconds or milliseconds.
# The ranges cannot be mistaken for each other, nor for yyyymmdd (8 digits) or yyyymmddhhmmss (14).
EPOCH_RANGES = {"s": (1e8, 4_102_444_800.0), "ms": (1e11, 4_102_444_800_000.0)}
EPOCH_MICROS = {"s": 1_000_000, "ms": 1_000}

ORDER_TITLES = {"dmy": "day-first (dd/mm/yyyy)", "mdy": "month-first (mm/dd/yyyy)"}
EPOCH_TITLES = {"s": "Unix seconds", "ms": "Unix milliseconds"}

# Naive ISO 8601 and compact shapes, tried first: the usual case costs one strptime per value.
ISO_FORMATS = [
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d",
    "%Y%m%d%H%M%S", "%Y%m%d",
]


def _ordered_formats(first: str, second: str) -> list[str]:
    out = []
    for sep in ("/", "-", "."):
        day = f"%{first}{sep}%{second}{sep}%Y"
        out += [f"{day} %H:%M:%S", f"{day} %H:%M", f"{day} %I:%M:%S %p", f"{day} %I:%M %p", day]
    return out


ORDER_FORMATS = {"dmy": _ordered_formats("d", "m"), "mdy": _ordered_formats("m", "d")}
TIME_FORMATS = ["%I:%M:%S %p", "%I:%M %p", "%H%M%S", "%H%M", "%H.%M.%S", "%H.%M"]

# A date-time that ends in a zone: Z, an offset (+05:00, -0500, +05), UTC/GMT, an abbreviation
# (EST) or a zone name (Europe/Madrid). Only the time part may carry one, so a date's own dashes
# are never read as an offset.
ZONED_RE = (r"[0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?\s*([zZ]|[+-][0-9]{1,2}(:?[0-9]{2})?|"
            r"(UTC|GMT)([+-][0-9]{1,2}(:?[0-9]{2})?)?|[A-Za-z]+(/[A-Za-z0-9_+-]+)+|[A-Z]{3,5})$")
NAIVE_ISO_RE = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?)?"
# d/m/y with any of / - . : the two leading numbers decide the order when one of them is above 12.
DAY_MONTH_RE = r"^([0-9]{1,2})[/.-]([0-9]{1,2})[/.-][0-9]{4}"
# An amount: optional parentheses (accounting negatives), sign, currency before or after, digits
# with separators, a trailing minus (some bank exports).
NUMBER_RE = (r"^(\()?\s*([-+])?\s*(?:S/\.?|PEN|USD|US\$|\$|€|EUR)?\s*([-+])?\s*"
             "([0-9](?:[0-9., '\u00a0\u202f]*[0-9])?)" r"\s*(?:S/\.?|PEN|USD|EUR|€)?\s*(-)?\s*(\))?$")
NUMBER_PARTS = ["open", "s1", "s2", "digits", "s3", "close"]

TEXT_TYPES = ("VARCHAR",)
NUMERIC_SOURCE = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL")


def lit(value: str) -> str:
    return sql_string(value)


def lit_list(values: list[str]) -> str:
    return "[" + ", ".join(sql_string(v) for v in values) + "]"


def base_type(sql_type: str) -> str:
    return sql_type.split("(")[0].strip().upper()


def is_text(sql_type: str) -> bool:
    return base_type(sql_type) in TEXT_TYPES


def is_zoned_type(sql_type: str) -> bool:
    return base_type(sql_type) in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")


def is_temporal_type(sql_type: str) -> bool:
    return base_type(sql_type).startswith(("TIMESTAMP", "DATE"))


def is_numeric_type(sql_type: str) -> bool:
    return base_type(sql_type) in NUMERIC_SOURCE


# --------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOptions:
    """What the user may set for an import; None means 'detect from the values'."""

    timezone: str = DEFAULT_TIMEZONE
    decimal: str | None = None
    date_order: str | None = None
    epoch_unit: str | None = None
    sheet: str | None = None

    def validated(self, conn: duckdb.DuckDBPyConnection) -> ImportOptions:
        if self.decimal not in (None, *DECIMALS):
            raise InvalidInput(f"the decimal separator must be '.' or ',', not {self.decimal!r}.", field="decimal")
        if self.date_order not in (None, *DATE_ORDERS):
            raise InvalidInput(f"the date order must be dmy or mdy, not {self.date_order!r}.", field="date_order")
        if self.epoch_unit not in (None, *EPOCH_UNITS):
            raise InvalidInput(f"the epoch unit must be s or ms, not {self.epoch_unit!r}.", field="epoch_unit")
        return ImportOptions(check_timezone(conn, self.timezone), self.decimal, self.date_order, self.epoch_unit,
                             self.sheet)


def timezone_names(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The IANA zone names DuckDB's ICU knows (the ones it can convert to), sorted."""
    return [r[0] for r in conn.execute("SELECT name FROM pg_timezone_names() ORDER BY name").fetchall()]


def check_timezone(conn: duckdb.DuckDBPyConnection, name: str | None) -> str:
    """A zone name DuckDB can convert to; InvalidInput suggesting close names otherwise."""
    cleaned = (name or "").strip()
    names = timezone_names(conn)
    if cleaned in names:
        return cleaned
    folded = {n.lower(): n for n in names}
    if cleaned.lower() in folded:
        return folded[cleaned.lower()]
    close = difflib.get_close_matches(cleaned, names, n=3)
    raise InvalidInput(f"unknown time zone {name!r}.", field="timezone",
                       hint=f"Use an IANA name such as {', '.join(close or ['America/Lima', 'UTC', 'Europe/Madrid'])}.")


# --------------------------------------------------------------------------------------------
# SQL building blocks over one trimmed text value `x` (an identifier or expression)
# --------------------------------------------------------------------------------------------


def text_sql(src: str) -> str:
    return f"NULLIF(trim(CAST({src} AS VARCHAR)), '')"


def _parts(x: str) -> str:
    return f"regexp_extract({x}, {lit(NUMBER_RE)}, {lit_list(NUMBER_PARTS)})"


def _digits(x: str) -> str:
    # Spaces, apostrophes and non-breaking spaces only ever group thousands.
    return f"regexp_replace({_parts(x)}.digits, '[ ''\u00a0\u202f]', '', 'g')"


def digits_kind_sql(d: str) -> str:
    """For the digits and separators of a number (`d`, spaces removed): 'plain' (no separator),
    'dot' or 'comma' (a decimal separator only that convention writes so: 12.50, 1,234.5,
    1.234.567), 'either' (one separator followed by exactly three digits: 1.234 is 1234 or
    1.234), or 'bad'."""
    return (f"(CASE WHEN {d} = '' THEN 'bad' "
            f"WHEN NOT contains({d}, '.') AND NOT contains({d}, ',') THEN 'plain' "
            f"WHEN regexp_full_match({d}, '[1-9][0-9]{{0,2}}[.,][0-9]{{3}}') THEN 'either' "
            f"WHEN regexp_full_match({d}, '[0-9]+\\.[0-9]+|[0-9]{{1,3}}(,[0-9]{{3}})+(\\.[0-9]+)?') THEN 'dot' "
            f"WHEN regexp_full_match({d}, '[0-9]+,[0-9]+|[0-9]{{1,3}}(\\.[0-9]{{3}})+(,[0-9]+)?') THEN 'comma' "
            "ELSE 'bad' END)")


def number_kind_sql(x: str) -> str:
    """The convention kind (see `digits_kind_sql`) of a text value `x`."""
    return digits_kind_sql(_digits(x))


def number_value_sql(x: str, decimal: str, *, degrees: bool = False) -> str:
    """A text value as DOUBLE under a decided decimal separator (one expression: for the rare
    path that reads a few values again; the import's own pass is staged, see data.ingest)."""
    p, d = _parts(x), _digits(x)
    kind = digits_kind_sql(d)
    allowed = ("plain", "dot", "either") if decimal == "." else ("plain", "comma", "either")
    magnitude = (f"TRY_CAST(replace({d}, ',', '') AS DOUBLE)" if decimal == "."
                 else f"TRY_CAST(replace(replace({d}, '.', ''), ',', '.') AS DOUBLE)")
    sign = f"(CASE WHEN {p}.open = '(' OR {p}.s1 = '-' OR {p}.s2 = '-' OR {p}.s3 = '-' THEN -1.0 ELSE 1.0 END)"
    del degrees  # a decided separator reads degrees like any number
    return (f"(CASE WHEN (({p}.open = '') = ({p}.close = '')) AND {kind} IN {tuple(allowed)} "
            f"THEN {sign} * {magnitude} END)")


def number_ok_sql(role: str, value: str) -> str:
    """SQL: true where a parsed number is in its role's range."""
    if role == "amount":
        return f"(isfinite({value}) AND abs({value}) < {MAX_AMOUNT:.0f})"
    if role in ("lat", "lon"):
        limit = 90 if role == "lat" else 180
        return f"({value} BETWEEN -{limit} AND {limit})"
    return f"isfinite({value})"


def naive_value_sql(x: str, order: str) -> str:
    """A text date-time without a zone, in a decided order (rare path, one expression)."""
    return (f"coalesce(try_strptime({x}, {lit_list(ISO_FORMATS + ORDER_FORMATS[order])}), "
            f"CASE WHEN regexp_full_match({x}, {lit(NAIVE_ISO_RE)}) THEN TRY_CAST({x} AS TIMESTAMP) END)")


def time_value_sql(y: str) -> str:
    """A time of day written as text (rare path, one expression)."""
    return f"coalesce(TRY_CAST({y} AS TIME), CAST(try_strptime({y}, {lit_list(TIME_FORMATS)}) AS TIME))"


def day_month_kind_from(a: str, b: str) -> str:
    """From the two leading numbers of a d/m/y value: 'dmy' or 'mdy' when one is above 12,
    'same' when they are equal (05/05/2024 reads the same either way), 'either' when it could be
    both; NULL when the value is not d/m/y-shaped."""
    return (f"(CASE WHEN {a} IS NULL OR {b} IS NULL THEN NULL WHEN {a} > 12 AND {b} <= 12 THEN 'dmy' "
            f"WHEN {b} > 12 AND {a} <= 12 THEN 'mdy' WHEN {a} = {b} THEN 'same' "
            f"WHEN {a} <= 12 AND {b} <= 12 THEN 'either' ELSE 'bad' END)")


def day_month_kind_sql(x: str) -> str:
    """The d/m order kind (see `day_month_kind_from`) of a text value `x`."""
    m = f"regexp_extract({x}, {lit(DAY_MONTH_RE)}, ['a', 'b'])"
    return day_month_kind_from(f"TRY_CAST(NULLIF({m}.a, '') AS INTEGER)", f"TRY_CAST(NULLIF({m}.b, '') AS INTEGER)")


def zoned_sql(x: str) -> str:
    return f"regexp_matches({x}, {lit(ZONED_RE)})"


def to_zone_sql(instant: str, zone: str) -> str:
    """A TIMESTAMPTZ as wall time in `zone` (a naive TIMESTAMP)."""
    return f"timezone({lit(zone)}, {instant})"


def epoch_sql(value: str, unit: str, zone: str) -> str:
    """Unix time (UTC) in `unit` as wall time in `zone`; NULL outside 1970-2099."""
    number = f"CAST({value} AS DOUBLE)"
    micros = f"TRY_CAST(round({number} * {EPOCH_MICROS[unit]}) AS BIGINT)"
    instant = f"timezone('UTC', make_timestamp({micros}))"
    return f"(CASE WHEN {number} >= 0 AND {number} < {EPOCH_RANGES[unit][1]:.0f} THEN {to_zone_sql(instant, zone)} END)"


def in_years_sql(value: str) -> str:
    # A transaction in 1900 or 2150 is a broken export, and would stretch every daily view.
    return f"({value} >= TIMESTAMP '{MIN_YEAR}-01-01' AND {value} < TIMESTAMP '{MAX_YEAR + 1}-01-01')"


# --------------------------------------------------------------------------------------------
# Plans: what was decided per column
# --------------------------------------------------------------------------------------------

NUMBER_ROLES = ("amount", "lat", "lon", "numeric")


@dataclass
class Evidence:
    """Rows of the file (as a spreadsheet counts them) that showed a convention, and the first value."""

    rows: list[int]
    value: str | None
    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "value": self.value, "count": self.count}

    def describe(self) -> str:
        rows = ", ".join(f"{r:,}" for r in self.rows)
        return f"row{'s' if len(self.rows) > 1 else ''} {rows} ({self.value!r}{', …' if self.count > 1 else ''})"


@dataclass
class ColumnPlan:
    """How one parsed column is read: its role, source and the convention decided for it."""

    role: str
    column: str  # the source column (for a combined timestamp, the date column)
    source_type: str
    decimal: str | None = None
    decimal_source: str | None = None  # 'set', 'detected', or None (no value needed one)
    date_order: str | None = None
    order_source: str | None = None
    epoch_unit: str | None = None
    epoch_source: str | None = None
    time_column: str | None = None
    evidence: Evidence | None = None
    zone: str = DEFAULT_TIMEZONE
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def is_number(self) -> bool:
        return self.role in NUMBER_ROLES

    @property
    def shape(self) -> str:
        if self.is_number:
            return "number"
        if self.epoch_unit:
            return "epoch"
        if not is_text(self.source_type) and is_zoned_type(self.source_type):
            return "zoned type"
        if not is_text(self.source_type) and is_temporal_type(self.source_type):
            return "naive type"
        return "text"

    def convention(self) -> str:
        """One line saying how the column was read, as the report shows it."""
        how = {"set": "as set", "detected": "detected"}
        proof = f", e.g. {self.evidence.describe()}" if self.evidence and self.evidence.rows else ""
        if self.is_number:
            if not is_text(self.source_type):
                return f"numbers in the file ({base_type(self.source_type).lower()}), nothing to convert"
            if not self.decimal:
                return "no decimal separator in any value"
            thousands = "'.' or space" if self.decimal == "," else "',' or space"
            return f"decimal separator '{self.decimal}', thousands {thousands} ({how[self.decimal_source]}{proof})"
        parts = []
        if self.shape == "epoch":
            parts.append(f"{EPOCH_TITLES[self.epoch_unit]} ({how[self.epoch_source]}{proof}), UTC converted to {self.zone}")
        elif self.shape == "zoned type":
            parts.append(f"zone-aware timestamps in the file, converted to {self.zone}")
        elif self.shape == "naive type":
            parts.append(f"{base_type(self.source_type).lower()} values in the file without a zone, taken as {self.zone}")
        else:
            if self.date_order:
                parts.append(f"{ORDER_TITLES[self.date_order]} dates ({how[self.order_source]}{proof})")
            parts.append(f"values with a UTC offset, Z or a zone name converted to {self.zone}, others taken as {self.zone}")
        if self.time_column:
            parts.append(f"time of day from column '{self.time_column}'")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column, "role": self.role, "source_type": self.source_type, "time_column": self.time_column,
            "decimal": self.decimal, "decimal_source": self.decimal_source, "date_order": self.date_order,
            "date_order_source": self.order_source, "epoch_unit": self.epoch_unit, "epoch_source": self.epoch_source,
            "time_zone": None if self.is_number else self.zone,
            "evidence": self.evidence.as_dict() if self.evidence else None,
            "convention": self.convention(), "counts": self.counts,
        }


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


@dataclass
class _Probe:
    """One classification to count over a column: values computed first (`pre`, each costly
    expression once, behind a cheap test, so it runs only on rows that can need it), then the
    kind expression over them, and the kinds it yields."""

    plan: ColumnPlan
    pre: dict[str, str]
    kind_sql: str
    kinds: tuple[str, ...]


def _probes(plans: list[ColumnPlan], options: ImportOptions) -> list[_Probe]:
    probes: list[_Probe] = []
    for plan in plans:
        x = text_sql(quote_ident(plan.column))
        n = len(probes)
        if plan.is_number and is_text(plan.source_type) and options.decimal is None:
            digits = f"_p{n}d"
            kind = (f"(CASE WHEN {x} IS NULL THEN NULL WHEN {digits} IS NULL THEN 'plain' "
                    f"ELSE {digits_kind_sql(digits)} END)")
            if plan.role in ("lat", "lon"):
                # A degree is never above 180, so 12.046 cannot be 12,046: the separator is the decimal.
                kind = f"(CASE WHEN {kind} = 'either' THEN (CASE WHEN contains({digits}, '.') THEN 'dot' ELSE 'comma' END) ELSE {kind} END)"
            pre = {digits: f"(CASE WHEN contains({x}, '.') OR contains({x}, ',') THEN {_digits(x)} END)"}
            probes.append(_Probe(plan, pre, kind, ("dot", "comma", "either")))
        elif plan.role == "timestamp":
            if options.epoch_unit is None and (is_text(plan.source_type) or is_numeric_type(plan.source_type)):
                value = f"_p{n}v"
                numeric = f"regexp_full_match({x}, '[0-9]+(\\.[0-9]+)?')"
                ranges = " ".join(f"WHEN {value} >= {low:.0f} AND {value} < {high:.0f} THEN '{unit}'"
                                  for unit, (low, high) in EPOCH_RANGES.items())
                pre = {value: f"(CASE WHEN TRY_CAST({x} AS DOUBLE) IS NOT NULL AND {numeric} THEN TRY_CAST({x} AS DOUBLE) END)"}
                probes.append(_Probe(plan, pre, f"(CASE WHEN {x} IS NULL THEN NULL {ranges} ELSE 'other' END)",
                                     ("s", "ms", "other")))
                n += 1
            if is_text(plan.source_type) and options.date_order is None:
                match = f"_p{n}m"
                slashed = " OR ".join(f"substr({x}, {i}, 1) IN ('/', '-', '.')" for i in (2, 3))
                pre = {match: f"(CASE WHEN {slashed} THEN regexp_extract({x}, {lit(DAY_MONTH_RE)}, ['a', 'b']) END)"}
                kind = day_month_kind_from(f"TRY_CAST(NULLIF({match}.a, '') AS INTEGER)",
                                           f"TRY_CAST(NULLIF({match}.b, '') AS INTEGER)")
                probes.append(_Probe(plan, pre, kind, ("dmy", "mdy", "either")))
    return probes


def _classify(conn: duckdb.DuckDBPyConnection, reader: str, reader_params: list, probes: list[_Probe],
              row_offset: int, limit: int | None) -> list[dict[str, Evidence]]:
    """Per probe and kind: how many values, the first rows and the first value, in one read."""
    if not probes:
        return []
    columns = sorted({p.plan.column for p in probes})
    inner = ", ".join(quote_ident(c) for c in columns)
    source = f"(SELECT {inner} FROM {reader}" + (f" LIMIT {int(limit)})" if limit else ")")
    aggregates = []
    for i, probe in enumerate(probes):
        kind = f"_k{i}"
        for kd in probe.kinds:
            aggregates += [f"count(*) FILTER ({kind} = '{kd}')",
                           f"min(_i, 3) FILTER ({kind} = '{kd}')",
                           f"arg_min({quote_ident(probe.plan.column)}, _i) FILTER ({kind} = '{kd}')"]
    pre = ", ".join(f"{sql} AS {name}" for p in probes for name, sql in p.pre.items())
    kinds = ", ".join(f"{p.kind_sql} AS _k{i}" for i, p in enumerate(probes))
    sql = (f"SELECT {', '.join(aggregates)} FROM (SELECT *, {kinds} FROM (SELECT *, {pre} FROM "
           f"(SELECT row_number() OVER () - 1 AS _i, * FROM {source})))")
    row = conn.execute(sql, reader_params).fetchall()[0]
    out, k = [], 0
    for probe in probes:
        found = {}
        for kd in probe.kinds:
            count, rows, value = row[k], row[k + 1], row[k + 2]
            k += 3
            found[kd] = Evidence([r + row_offset for r in (rows or [])], None if value is None else str(value).strip(),
                                 int(count))
        out.append(found)
    return out


def detect(conn: duckdb.DuckDBPyConnection, reader: str, reader_params: list, plans: list[ColumnPlan],
           options: ImportOptions, *, file: str, row_offset: int) -> list[ColumnPlan]:
    """Decide every column's convention (see the module docstring); refuse conflicting columns."""
    for plan in plans:
        plan.zone = options.timezone
        if plan.is_number and options.decimal:
            plan.decimal, plan.decimal_source = options.decimal, "set"
        if plan.role == "timestamp":
            if options.epoch_unit:
                plan.epoch_unit, plan.epoch_source = options.epoch_unit, "set"
            if options.date_order:
                plan.date_order, plan.order_source = options.date_order, "set"
    probes = _probes(plans, options)
    sample = _classify(conn, reader, reader_params, probes, row_offset, SAMPLE_ROWS)
    unresolved = [(p, s) for p, s in zip(probes, sample, strict=True) if _needs_whole_column(p, s)]
    if unresolved:  # only values that could be read either way: look at every row of those columns
        whole = _classify(conn, reader, reader_params, [p for p, _ in unresolved], row_offset, None)
        replaced = {id(p): w for (p, _), w in zip(unresolved, whole, strict=True)}
        sample = [replaced.get(id(p), s) for p, s in zip(probes, sample, strict=True)]
    for probe, found in zip(probes, sample, strict=True):
        _decide(probe, found, file)
    return plans


def _needs_whole_column(probe: _Probe, found: dict[str, Evidence]) -> bool:
    if "either" not in found:
        return False
    first, second = probe.kinds[0], probe.kinds[1]
    return found["either"].count > 0 and not found[first].count and not found[second].count


def _decide(probe: _Probe, found: dict[str, Evidence], file: str) -> None:
    plan = probe.plan
    if probe.kinds == ("s", "ms", "other"):
        # Epoch only when every value in the sample is a number in one unit's range.
        for unit in ("s", "ms"):
            if found[unit].count and not found["other"].count and not found["ms" if unit == "s" else "s"].count:
                plan.epoch_unit, plan.epoch_source, plan.evidence = unit, "detected", found[unit]
        return
    if plan.epoch_unit:
        return
    first, second = probe.kinds[0], probe.kinds[1]
    names = ({"dot": "'.' as the decimal separator", "comma": "',' as the decimal separator"} if plan.is_number
             else {"dmy": "day-first dates", "mdy": "month-first dates"})
    setting = "--decimal . or --decimal ," if plan.is_number else "--date-order dmy or --date-order mdy"
    if found[first].count and found[second].count:
        (k1, a), (k2, b) = sorted(((first, found[first]), (second, found[second])), key=lambda kv: kv[1].rows[0])
        raise InvalidInput(
            f"the column mixes {names[k1]} ({a.describe()}) and {names[k2]} ({b.describe()}).",
            file=file, row=min(a.rows[0], b.rows[0]), column=plan.column,
            hint=f"Export the column in one convention, or set it ({setting}); values that do not fit are then "
            "listed as bad rows.")
    if found[first].count or found[second].count:
        kind = first if found[first].count else second
        if plan.is_number:
            plan.decimal = "." if kind == "dot" else ","
            plan.decimal_source = "detected"
        else:
            plan.date_order, plan.order_source = kind, "detected"
        plan.evidence = found[kind]
        return
    if found["either"].count:
        either = found["either"]
        example = either.value or ""
        rows = f"{either.count:,} such values, first rows: {', '.join(f'{r:,}' for r in either.rows)}"
        if plan.is_number:
            whole, decimal = example.replace(".", "").replace(",", ""), example.replace(",", ".")
            problem = (f"every value with a separator could be read either way: {example!r} is {whole} if the "
                       f"separator groups thousands, or {decimal} if it is the decimal separator ({rows}).")
        else:
            problem = f"every date could be day-first or month-first, e.g. {example!r} ({rows})."
        raise InvalidInput(problem, file=file, row=either.rows[0], column=plan.column,
                           hint=f"Say which convention the file uses: {setting} (on the page: the import options).")


# --------------------------------------------------------------------------------------------
# Daylight-saving changes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneShift:
    """A change of a zone's UTC offset, as the wall-clock times it affects: a `gap` (clocks jump
    forward: those times never happen) or an `overlap` (clocks turn back: they happen twice)."""

    kind: str  # "dst_gap" or "dst_overlap"
    start: datetime  # wall time, inclusive
    end: datetime  # wall time, exclusive

    def describe(self, zone: str) -> str:
        day = self.start.strftime("%Y-%m-%d")
        if self.kind == "dst_gap":
            return (f"does not exist in {zone}: on {day} clocks jumped from {self.start:%H:%M} to {self.end:%H:%M} "
                    "(daylight-saving change)")
        return (f"occurs twice in {zone}: on {day} clocks turned back from {self.end:%H:%M} to {self.start:%H:%M}, "
                "and the value has no UTC offset to say which")


def zone_shifts(conn: duckdb.DuckDBPyConnection, zone: str, start: datetime, end: datetime) -> list[ZoneShift]:
    """Every offset change of `zone` between two wall times, found with DuckDB's ICU time zones: the
    offset per day, then per minute on the days it changes (a few thousand conversions, not one
    per row)."""
    offset = f"(timezone({lit(zone)}, timezone('UTC', u)) - u)"
    rows = conn.execute(
        f"""WITH days AS (SELECT u FROM range(CAST($lo AS TIMESTAMP) - INTERVAL 2 DAY, CAST($hi AS TIMESTAMP) + INTERVAL 2 DAY,
                                             INTERVAL 1 DAY) t(u)),
           changing AS (SELECT u AS day FROM (SELECT u, {offset} AS off, lead({offset}) OVER (ORDER BY u) AS next FROM days)
                        WHERE next <> off),
           minutes AS (SELECT day, day + to_minutes(i) AS u FROM changing, range(0, 1441) r(i)),
           shifts AS (SELECT u, lag({offset}) OVER (PARTITION BY day ORDER BY u) AS before, {offset} AS after FROM minutes)
           SELECT u + before, u + after FROM shifts WHERE before <> after ORDER BY u""",
        {"lo": start, "hi": end},
    ).fetchall()
    out = []
    for before_wall, after_wall in rows:
        if after_wall > before_wall:
            out.append(ZoneShift("dst_gap", before_wall, after_wall))
        else:
            out.append(ZoneShift("dst_overlap", after_wall, before_wall))
    return out
