"""Database sources: a PostgreSQL table or query that fills a dataset incrementally.

A source names a PostgreSQL connection (a libpq URL), what to read (a table, or the admin's own
SQL, sent to *their* server as a subquery), the watermark column that grows as rows are added or
changed (`updated_at`, or a sequence), and the column mapping its rows are imported with. A sync
reads the rows whose watermark is at or past the stored watermark minus the overlap window, as
Arrow data (ADBC's libpq driver: no Python row loop), writes them to a temporary Parquet file and
imports that file through the import's own checks (`data.ingest.import_file`); the checked rows
are then merged into the dataset by transaction id (`merge`): ids not stored are appended, ids
stored with other values are updated in place, identical ones are skipped.

Passwords never reach the database: a URL with a literal password is refused; its password
may name an environment variable of the process that syncs (`${CENTINELA_PG_PASSWORD}`: only
`CENTINELA_PG_*` and libpq's own `PGPASSWORD`, and only in the password's place, so a URL can
never carry another of the server's variables to a server of its choosing), or leave the password
to libpq (`~/.pgpass`, `PGPASSFILE`, `service=` in `pg_service.conf`).

PostgreSQL is only ever read: each read runs in a transaction set READ ONLY before anything else
and rolled back after, so neither a table nor an admin's query can change the bank's database.

Everything that writes runs inside the caller's transaction (`application.database_sources`).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.datasets import Dataset
from data.db import check_simple_name, fetch_one, fetch_records, quote_ident
from data.errors import InvalidInput, UserError
from data.mapping import ColumnMapping, guess_mapping

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The environment variables a URL's password may name: Centinela's own, and libpq's PGPASSWORD.
ENV_PREFIX = "CENTINELA_PG_"
ENV_NAMES = ("PGPASSWORD",)
# A table name: an identifier, optionally schema-qualified; each part plain or double-quoted.
_PART = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
TABLE_PATTERN = re.compile(rf"^{_PART}(?:\.{_PART})?$")
MAX_QUERY = 20_000  # characters
DEFAULT_OVERLAP = {"time": 600.0, "integer": 0.0}  # seconds for time watermarks, units for integer ones
CONNECT_TIMEOUT_S = 10
SOURCE_ALIAS = "centinela_source"


@dataclass(frozen=True)
class SourceSettings:
    id: int
    name: str
    dataset: str  # the dataset it fills: created by the first sync
    dataset_id: int | None  # None until the first sync
    url: str  # no literal password (see check_url)
    relation: str | None  # --table
    query: str | None  # --query
    watermark: str
    watermark_type: str  # 'timestamptz', 'timestamp', 'date' or 'integer'
    overlap: float  # seconds (time watermarks) or units (integer ones)
    mapping: dict[str, Any]
    timezone: str
    features: bool
    created_at: datetime
    created_by: str
    last_watermark: str | None = None
    last_sync_at: datetime | None = None
    last_sync: dict[str, Any] | None = None  # the last sync's report
    syncs: int = 0
    rows_new: int = 0  # over every sync
    rows_updated: int = 0

    @property
    def column_mapping(self) -> ColumnMapping:
        m = self.mapping
        return ColumnMapping(dict(m["roles"]), list(m["categorical"]), list(m["numeric"]), m.get("time_column"))

    @property
    def id_column(self) -> str:
        return self.mapping["roles"]["transaction_id"]

    def as_dict(self) -> dict[str, Any]:
        """For listings and the audit trail: the URL with any password redacted."""
        return {"name": self.name, "dataset": self.dataset, "url": redact(self.url), "table": self.relation,
                "query": self.query, "watermark": self.watermark, "watermark_type": self.watermark_type,
                "overlap": describe_overlap(self.overlap, self.watermark_type), "mapping": self.mapping,
                "timezone": self.timezone, "features": self.features, "last_watermark": self.last_watermark,
                "last_sync_at": self.last_sync_at, "syncs": self.syncs, "rows_new": self.rows_new,
                "rows_updated": self.rows_updated, "last_sync": self.last_sync,
                "created_at": self.created_at, "created_by": self.created_by}


# --- checking what an admin gives ----------------------------------------------------------------


def check_name(name: str) -> str:
    return check_simple_name(name, "source")


def check_url(url: str) -> str:
    """A PostgreSQL URL (postgresql://user@host:port/db?options); a literal password is refused."""
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise InvalidInput(f"the URL cannot be read ({exc}).", field="url") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise InvalidInput("the URL must start with postgresql://.", field="url",
                           hint="For example postgresql://centinela@db.bank.pe:5432/core?sslmode=require")
    if parts.password is not None and not ENV_REFERENCE.fullmatch(parts.password):
        raise InvalidInput("the URL holds a password; it would be stored in the database and its backups.",
                           field="url", hint="Name an environment variable of the server instead "
                           "(postgresql://user:${CENTINELA_PG_PASSWORD}@host/db), or use libpq's ~/.pgpass, PGPASSFILE "
                           "or service= (pg_service.conf).")
    if "password=" in (parts.query or "").lower():
        raise InvalidInput("the URL holds a password option; it would be stored in the database.", field="url",
                           hint="Use ${CENTINELA_PG_...} in the password's place, or libpq's ~/.pgpass or PGPASSFILE.")
    password_variable(text)
    return text


def _components(url: str) -> tuple[str, str | None, str]:
    """The URL's user name, password (None without one) and host part, as written."""
    userinfo, at, host = urlsplit(url).netloc.rpartition("@")
    if not at:
        return "", None, host
    user, colon, password = userinfo.partition(":")
    return user, password if colon else None, host


def allowed_variable(name: str) -> bool:
    return name.startswith(ENV_PREFIX) or name in ENV_NAMES


def password_variable(url: str) -> str | None:
    """The environment variable the URL's password names (None when it names none). `${` is
    refused anywhere but in the password, and a variable outside CENTINELA_PG_* and PGPASSWORD
    is refused: a URL is sent to a server of the admin's choosing, and must not carry any other
    of the syncing process's environment there."""
    parts = urlsplit(url)
    user, password, host = _components(url)
    for part, text in (("user name", user), ("host", host), ("database name", parts.path),
                       ("options (after ?)", parts.query), ("fragment (after #)", parts.fragment)):
        if "${" in text or "$%7b" in text.lower():
            raise InvalidInput(f"the URL's {part} holds ${{...}}; an environment variable may stand only in the "
                               "password's place.", field="url",
                               hint="postgresql://USER:${CENTINELA_PG_PASSWORD}@HOST:PORT/DB?OPTIONS")
    if password is None:
        return None
    found = ENV_REFERENCE.fullmatch(password)
    if found is None:
        if "${" in password:
            raise InvalidInput("the URL's password must be one ${VARIABLE} reference, or none.", field="url")
        return None
    name = found.group(1)
    if not allowed_variable(name):
        raise InvalidInput(f"the URL's password names the environment variable {name}; only {ENV_PREFIX}* and "
                           f"{', '.join(ENV_NAMES)} may be named.", field="url",
                           hint=f"Put the password in a variable named {ENV_PREFIX}... (or PGPASSWORD) where the "
                                "server starts, and name that.")
    return name


def redact(url: str) -> str:
    """The URL as listings, the page and the audit trail show it: a password that is not a
    ${VARIABLE} reference is replaced by ***."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(unreadable URL)"
    if password is None or ENV_REFERENCE.fullmatch(password):
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def expand(url: str) -> str:
    """The URL with its password's ${VARIABLE} replaced by the process's environment variable
    (percent-encoded); checked again here (`password_variable`), whatever was stored."""
    name = password_variable(url)
    if name is None:
        return url
    if name not in os.environ:
        raise InvalidInput(f"the URL names the environment variable {name}, which the process that syncs does "
                           "not have.", field="url",
                           hint="Set it where the server (or, without a running server, the command line) starts.")
    user, _, host = _components(url)
    return urlunsplit(urlsplit(url)._replace(netloc=f"{user}:{quote(os.environ[name], safe='')}@{host}"))


def secrets_in(url: str) -> list[str]:
    """The expanded values an error message must never show."""
    try:
        name = password_variable(url)
    except UserError:
        return []
    return [os.environ[name]] if name and os.environ.get(name) else []


def check_table(table: str) -> str:
    text = (table or "").strip()
    if not TABLE_PATTERN.match(text):
        raise InvalidInput(f"{text[:80]!r} is not a table name.", field="table",
                           hint='Give TABLE or SCHEMA.TABLE (double-quote a name with other characters: "Card Tx").')
    return text


def check_query(query: str) -> str:
    text = (query or "").strip().rstrip(";").strip()
    if not text:
        raise InvalidInput("the query is empty.", field="query")
    if len(text) > MAX_QUERY:
        raise InvalidInput(f"the query has {len(text):,} characters; at most {MAX_QUERY:,}.", field="query")
    return text


def parse_overlap(text: str | float | None, kind: str) -> float:
    """`--overlap`: 90s, 10m, 2h, 1d (or seconds) for a time watermark; a whole number for an integer one."""
    family = "integer" if kind == "integer" else "time"
    if text is None or str(text).strip() == "":
        return DEFAULT_OVERLAP[family]
    raw = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if family == "time" and raw[-1] in units:
            value = float(raw[:-1]) * units[raw[-1]]
        else:
            value = float(raw)
    except (ValueError, IndexError):
        value = math.nan
    if not math.isfinite(value) or value < 0 or value > 366 * 86400 or (family == "integer" and value != int(value)):
        hint = "A duration such as 90s, 10m, 2h or 1d (up to a year)." if family == "time" else "A whole number, 0 or more."
        raise InvalidInput(f"{str(text)[:40]!r} is not an overlap window.", field="overlap", hint=hint)
    return value


def describe_overlap(overlap: float, kind: str) -> str:
    if kind == "integer":
        return f"{int(overlap)}"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if overlap and overlap % size == 0:
            return f"{int(overlap // size)}{unit}"
    return f"{overlap:g}s"


# --- reading from PostgreSQL -------------------------------------------------------------------


def select_sql(settings_relation: str | None, settings_query: str | None) -> str:
    """What is read, as a subquery: the table, or the admin's own SQL. A table's unquoted parts
    are folded to lower case as PostgreSQL folds them (`Public.Card_Tx` is public.card_tx), then
    quoted (so a part that is a keyword still reads); double-quoted parts are kept as written."""
    if settings_relation:
        parts = re.findall(_PART, settings_relation)
        quoted = ".".join(p if p.startswith('"') else quote_ident(p.lower()) for p in parts)
        return f"SELECT * FROM {quoted}"
    return settings_query or ""


def wrapped(relation: str | None, query: str | None) -> str:
    """The source as a subquery; the closing parenthesis on a line of its own, so an admin's query
    ending in a `--` comment cannot swallow it."""
    return f"({select_sql(relation, query)}\n) AS {SOURCE_ALIAS}"


def source_sql(relation: str | None, query: str | None, watermark: str, since: bool, limit_zero: bool = False) -> str:
    """The statement sent to PostgreSQL: the source as a subquery, filtered on the watermark with a
    bind parameter ($1) when there is a stored watermark; no value is ever pasted in."""
    column = quote_ident(watermark)
    where = f"{column} >= $1" if since else f"{column} IS NOT NULL"
    sql = f"SELECT * FROM {wrapped(relation, query)} WHERE {where}"
    return sql + (" LIMIT 0" if limit_zero else "")


def without_watermark_sql(relation: str | None, query: str | None, watermark: str) -> str:
    """How many source rows have no watermark (never read)."""
    return f"SELECT count(*) FROM {wrapped(relation, query)} WHERE {quote_ident(watermark)} IS NULL"


def _connect(url: str):
    """A connection whose transaction is READ ONLY from its first statement: whatever the table or
    the admin's query does (nextval(), a function that writes), PostgreSQL refuses to write. Each
    read is one such transaction, rolled back after."""
    import adbc_driver_postgresql.dbapi as pg

    expanded = expand(url)
    sep = "&" if "?" in expanded else "?"
    if "connect_timeout=" not in expanded:
        expanded += f"{sep}connect_timeout={CONNECT_TIMEOUT_S}"
    connection = pg.connect(expanded)  # not autocommit: the statements below share one transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
    except BaseException:
        connection.close()
        raise
    return connection


def _driver_error(exc: Exception, url: str, field_name: str) -> InvalidInput:
    text = str(exc)
    for secret in secrets_in(url):
        text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    text = re.sub(r"\s+", " ", text).strip()[:600]
    return InvalidInput(f"PostgreSQL at {redact(url)} answered: {text}", field=field_name)


def _is_connection_error(exc: Exception) -> bool:
    return "connect" in str(exc).lower() and ("failed" in str(exc).lower() or "refused" in str(exc).lower())


def fetch(url: str, relation: str | None, query: str | None, watermark: str, since: Any = None,
          limit_zero: bool = False) -> pa.Table:
    """The source's rows at or past `since` (all of them when None) as an Arrow table, types
    normalized for DuckDB (`normalize`). Driver errors become InvalidInput with the URL redacted."""
    import adbc_driver_manager

    sql = source_sql(relation, query, watermark, since is not None, limit_zero)
    try:
        with _connect(url) as connection, connection.cursor() as cursor:
            cursor.execute(sql, [since] if since is not None else None)
            table = cursor.fetch_arrow_table()
            connection.rollback()  # read only: nothing to keep
    except adbc_driver_manager.Error as exc:
        raise _driver_error(exc, url, "url" if _is_connection_error(exc) else ("query" if query else "table")) from None
    return normalize(table)


def normalize(table: pa.Table) -> pa.Table:
    """Arrow columns DuckDB and Parquet take as they are: PostgreSQL `numeric` (an opaque
    extension over text in ADBC) becomes float64 by a vectorised cast (amounts; a value beyond
    float64 would become inf and is refused by the import's checks), other extension types their
    text, and field metadata is dropped."""
    columns, fields = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if isinstance(kind, pa.ExtensionType):
            storage = pa.chunked_array([c.storage for c in column.chunks], type=kind.storage_type)
            type_name = getattr(kind, "type_name", "")
            if type_name == "numeric":
                storage = pc.cast(pc.if_else(pc.equal(storage, "NaN"), None, storage), pa.float64())
            column = storage
        columns.append(column)
        fields.append(pa.field(name, column.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def watermark_type(table: pa.Table, watermark: str) -> str:
    if watermark not in table.column_names:
        raise InvalidInput(f"the source has no column {watermark!r} for the watermark.", field="watermark",
                           hint=f"Its columns: {', '.join(table.column_names[:30])}.")
    kind = table.schema.field(watermark).type
    if pa.types.is_timestamp(kind):
        return "timestamptz" if kind.tz else "timestamp"
    if pa.types.is_date(kind):
        return "date"
    if pa.types.is_integer(kind):
        return "integer"
    raise InvalidInput(f"the watermark column {watermark!r} is {kind}; it must be a timestamp, a date or an integer "
                       "that grows as rows are added or changed.", field="watermark",
                       hint="For example an updated_at timestamp, or a sequence bumped on every change.")


def duckdb_columns(conn: duckdb.DuckDBPyConnection, table: pa.Table) -> list[tuple[str, str]]:
    """(name, DuckDB type) of an Arrow table's columns, as the mapping guesser reads them."""
    conn.register("_source_schema", table)
    try:
        return [(r[0], r[1]) for r in conn.execute("DESCRIBE SELECT * FROM _source_schema").fetchall()]
    finally:
        conn.unregister("_source_schema")


def plan_mapping(conn: duckdb.DuckDBPyConnection, table: pa.Table, overrides: list[str], watermark: str) -> ColumnMapping:
    """The mapping a source's rows are imported with: guessed from the column names (as for a
    file) with the admin's ROLE=COLUMN overrides; the watermark column is not kept unless mapped,
    and a transaction id is required (it is what rows are de-duplicated on)."""
    columns = duckdb_columns(conn, table)
    names = [n for n, _ in columns]
    mapping = guess_mapping(columns)
    if not any(o.partition("=")[2].strip() == watermark for o in overrides):
        mapping._take(watermark)
    mapping = mapping.with_overrides(overrides, names).validate(names, "the source")
    if not mapping.roles.get("transaction_id"):
        raise InvalidInput("no column is mapped to the transaction id; a source needs one, to recognise a row it "
                           "has already stored.", field="map",
                           hint=f"Map one, e.g. --map transaction_id=COLUMN (columns: {', '.join(names[:30])}).")
    return mapping


def since_value(settings: SourceSettings) -> Any:
    """The bind parameter of the next read: the stored watermark minus the overlap, or None (all rows)."""
    if settings.last_watermark is None:
        return None
    kind, stored, overlap = settings.watermark_type, settings.last_watermark, settings.overlap
    if kind == "integer":
        return int(stored) - int(overlap)
    if kind == "date":
        return date.fromisoformat(stored) - timedelta(days=math.ceil(overlap / 86400))
    value = datetime.fromisoformat(stored) - timedelta(seconds=overlap)
    return value.replace(tzinfo=UTC) if kind == "timestamptz" else value


def max_watermark(table: pa.Table, settings: SourceSettings) -> str | None:
    """The highest watermark among fetched rows, as stored (ISO text in UTC, or the integer)."""
    if table.num_rows == 0:
        return settings.last_watermark
    column = table.column(settings.watermark)
    if settings.watermark_type == "timestamptz":
        column = pc.cast(column, pa.timestamp("us", tz="UTC"))
    top = pc.max(column).as_py()
    if top is None:
        return settings.last_watermark
    if settings.watermark_type == "timestamptz":
        text = top.astimezone(UTC).replace(tzinfo=None).isoformat()
    elif settings.watermark_type in ("timestamp", "date"):
        text = top.isoformat()
    else:
        text = str(int(top))
    if settings.last_watermark is None:
        return text
    older = _as_comparable(settings.last_watermark, settings.watermark_type)
    return text if _as_comparable(text, settings.watermark_type) > older else settings.last_watermark


def _as_comparable(text: str, kind: str) -> Any:
    if kind == "integer":
        return int(text)
    if kind == "date":
        return date.fromisoformat(text)
    return datetime.fromisoformat(text)


def write_parquet(table: pa.Table, path: os.PathLike[str] | str) -> None:
    pq.write_table(table, str(path), compression="zstd")


def source_key(table: pa.Table, id_column: str, row: int | None) -> str | None:
    """The id of the fetched row numbered `row` as the import numbers Parquet rows (1 = first)."""
    if row is None or not 1 <= row <= table.num_rows:
        return None
    value = table.column(id_column)[row - 1].as_py()
    return None if value is None else str(value)


def rephrase(exc: UserError, settings: SourceSettings, table: pa.Table) -> UserError:
    """An import error about the temporary file, said in the source's terms: the source, the
    row's key (its transaction id) and the column."""
    if exc.file is None:
        return exc
    key = source_key(table, settings.id_column, exc.row)
    where = f"{settings.id_column} {key!r}" if key is not None else (
        f"row {exc.row:,} of this read" if exc.row is not None else None)
    problem = exc.problem
    problem = re.sub(r"\(rows ([\d,]+) and ([\d,]+)\)", lambda m: "(at " + " and ".join(
        f"{settings.id_column} {source_key(table, settings.id_column, int(n.replace(',', '')))!r}"
        for n in m.groups()) + ")", problem)
    problem = re.sub(r"first rows: ([\d, ]+)\)", lambda m: "first keys: " + ", ".join(
        repr(source_key(table, settings.id_column, int(n.strip().replace(',', ''))))
        for n in m.group(1).split(", ") if n.strip().replace(",", "").isdigit()) + ")", problem)
    hint = exc.hint
    if hint and "skip bad rows" in hint:
        hint = "Correct the row in the source (a sync refuses bad rows; nothing was stored), then sync again."
    return type(exc)(f"{where}: {problem}" if where else problem, file=f"source {settings.name!r}",
                     column=exc.column, hint=hint)


# --- storing settings ------------------------------------------------------------------------------

_COLUMNS = ("id, name, dataset, dataset_id, url, relation, query, watermark, watermark_type, overlap, mapping, "
            "timezone, features, created_at, created_by, last_watermark, last_sync_at, last_sync, syncs, rows_new, "
            "rows_updated")


def _settings(record: dict[str, Any]) -> SourceSettings:
    record["mapping"] = json.loads(record["mapping"])
    record["last_sync"] = json.loads(record["last_sync"]) if record["last_sync"] else None
    return SourceSettings(**record)


def list_sources(conn: duckdb.DuckDBPyConnection) -> list[SourceSettings]:
    return [_settings(r) for r in fetch_records(conn, f"SELECT {_COLUMNS} FROM database_sources ORDER BY name")]


def get_source(conn: duckdb.DuckDBPyConnection, name: str) -> SourceSettings | None:
    found = fetch_records(conn, f"SELECT {_COLUMNS} FROM database_sources WHERE name = ?", [name])
    return _settings(found[0]) if found else None


def next_id(conn: duckdb.DuckDBPyConnection) -> int:
    return int(fetch_one(conn, "SELECT nextval('database_source_ids')")[0])


def insert(conn: duckdb.DuckDBPyConnection, s: SourceSettings) -> None:
    conn.execute(
        f"INSERT INTO database_sources ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(', ')))})",
        [s.id, s.name, s.dataset, s.dataset_id, s.url, s.relation, s.query, s.watermark, s.watermark_type, s.overlap,
         json.dumps(s.mapping), s.timezone, s.features, s.created_at, s.created_by, s.last_watermark, s.last_sync_at,
         json.dumps(s.last_sync, default=str) if s.last_sync else None, s.syncs, s.rows_new, s.rows_updated])


def delete(conn: duckdb.DuckDBPyConnection, source_id: int) -> None:
    conn.execute("DELETE FROM database_sources WHERE id = ?", [source_id])


def record_sync(conn: duckdb.DuckDBPyConnection, s: SourceSettings, dataset_id: int | None, watermark: str | None,
                at: datetime, report: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE database_sources SET dataset_id = ?, last_watermark = ?, last_sync_at = ?, last_sync = ?, "
        "syncs = syncs + 1, rows_new = rows_new + ?, rows_updated = rows_updated + ? WHERE id = ?",
        [dataset_id, watermark, at, json.dumps(report, default=str), int(report.get("new", 0)),
         int(report.get("updated", 0)), s.id])


# --- merging checked rows into the dataset ----------------------------------------------------------


@dataclass
class Merged:
    new: int = 0
    updated: int = 0
    skipped: int = 0
    updated_ids: list[str] = field(default_factory=list)  # the first few, for the report
    changed_columns: dict[str, int] = field(default_factory=dict)  # column -> rows updated in it


def merge(conn: duckdb.DuckDBPyConnection, staging: Dataset, target: Dataset, examples: int = 20) -> Merged:
    """Merge a staging dataset's checked rows (imported from this read) into `target`, by
    transaction id: new ids appended (numbered after the stored rows, in the read's order); ids
    stored with any other value updated in place (the row keeps its tx_row, so its labels, case
    and scores stay attached); identical rows skipped. The registry's count and period are the
    caller's last write (`update_registry`)."""
    stored = [c for c in target.columns if c.name != "tx_row"]
    mine = [c for c in staging.columns if c.name != "tx_row"]
    if [(c.name, c.role) for c in stored] != [(c.name, c.role) for c in mine]:
        raise InvalidInput("the source's rows no longer have the dataset's columns.", field="mapping",
                           hint=f"The dataset stores {', '.join(c.name for c in stored)}; this read gave "
                           f"{', '.join(c.name for c in mine)}. Keep the source's columns, or add a new source.")
    t, s = target.table, staging.table
    names = [quote_ident(c.name) for c in stored]
    others = [n for n in names if n != '"transaction_id"']
    differs = " OR ".join(f"t.{n} IS DISTINCT FROM s.{n}" for n in others) or "false"
    conn.execute("CREATE TEMP TABLE _sync_changed AS SELECT s.transaction_id, "
                 + ", ".join(f"(t.{n} IS DISTINCT FROM s.{n}) AS {n}" for n in others)
                 + f" FROM {s} s JOIN {t} t USING (transaction_id) WHERE {differs}")
    try:
        counts = fetch_one(conn, "SELECT count(*), " + ", ".join(f"count(*) FILTER ({n})" for n in others)
                           + " FROM _sync_changed") if others else (0,)
        updated = int(counts[0])
        changed = {c.name: int(v) for c, v in zip([c for c in stored if c.name != "transaction_id"], counts[1:],
                                                   strict=True) if v}
        ids = [r[0] for r in conn.execute("SELECT transaction_id FROM _sync_changed ORDER BY transaction_id LIMIT ?",
                                          [examples]).fetchall()]
        if updated:
            conn.execute(f"UPDATE {t} t SET {', '.join(f'{n} = s.{n}' for n in others)} FROM {s} s "
                         "WHERE t.transaction_id = s.transaction_id "
                         "AND t.transaction_id IN (SELECT transaction_id FROM _sync_changed)")
    finally:
        conn.execute("DROP TABLE IF EXISTS _sync_changed")
    first = int(fetch_one(conn, f"SELECT coalesce(max(tx_row), -1) + 1 FROM {t}")[0])
    new = int(fetch_one(conn, f"SELECT count(*) FROM {s} WHERE transaction_id NOT IN (SELECT transaction_id FROM {t})")[0])
    if new:
        conn.execute(f"INSERT INTO {t} (tx_row, {', '.join(names)}) SELECT ? + row_number() OVER (ORDER BY s.tx_row) - 1, "
                     f"{', '.join(f's.{n}' for n in names)} FROM {s} s "
                     f"WHERE s.transaction_id NOT IN (SELECT transaction_id FROM {t}) ORDER BY s.tx_row", [first])
    total = int(fetch_one(conn, f"SELECT count(*) FROM {s}")[0])
    return Merged(new, updated, total - new - updated, ids, changed)


def table_counts(conn: duckdb.DuckDBPyConnection, target: Dataset) -> tuple[int, datetime | None, datetime | None]:
    """The dataset table's row count and period, as the registry holds them."""
    rows, low, high = fetch_one(conn, f"SELECT count(*), min(ts), max(ts) FROM {target.table}")
    return int(rows), low, high


def update_registry(conn: duckdb.DuckDBPyConnection, target: Dataset) -> None:
    """Write `target`'s row count and period (`table_counts`) to the registry. A sync writes this
    last, just before it commits: the `datasets` row is what live scoring updates with every
    request (and what DuckDB refuses a second writer on), so it is held for as short a time as
    possible."""
    conn.execute("UPDATE datasets SET row_count = ?, min_ts = ?, max_ts = ? WHERE id = ?",
                 [target.row_count, target.min_ts, target.max_ts, target.id])


def source_problems(problems: list[dict[str, Any]], settings: SourceSettings, table: pa.Table) -> list[dict[str, Any]]:
    """The import's non-fatal problems (values of optional columns that did not parse, stored as
    empty) in the source's terms: the first rows of the temporary file become the source keys
    (transaction ids) of those rows."""
    said = []
    for p in problems:
        keys = [source_key(table, settings.id_column, r) for r in p.get("rows", [])]
        said.append({"column": p.get("column"), "role": p.get("role"), "count": int(p.get("count", 0)),
                     "problem": p.get("problem"), "value": p.get("value"), "action": p.get("action"),
                     "keys": [k for k in keys if k is not None], "hint": p.get("hint")})
    return said


def describe_problem(p: dict[str, Any], id_column: str) -> str:
    """One problem as a line (the command line, the page): column, count, first keys, value, action."""
    keys = ", ".join(repr(k) for k in p["keys"][:5])
    return (f"column '{p['column']}' ({p['role']}), {p['count']:,} value{'s' if p['count'] != 1 else ''}"
            + (f" (first {id_column} {keys})" if keys else "") + f": {p['value']!r} {p['problem']}; {p['action']}")


def drop_staging(conn: duckdb.DuckDBPyConnection, staging: Dataset) -> None:
    """The staging dataset an import made for one read: its table and registry row, gone."""
    conn.execute(f"DROP TABLE IF EXISTS {staging.table}")
    conn.execute("DELETE FROM datasets WHERE id = ?", [staging.id])


def sources_of_dataset(conn: duckdb.DuckDBPyConnection, dataset_id: int) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM database_sources WHERE dataset_id = ?", [dataset_id]).fetchall()]
