"""The DuckDB store: opening the file, schema migrations, identifier safety and transactions.

One connection per process (the app caches it with `st.cache_resource`); each thread works
through its own `connection.cursor()`, which DuckDB makes safe to use concurrently.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from data.errors import InvalidInput

DEFAULT_DB_PATH = "centinela.duckdb"
DB_ENV_VAR = "CENTINELA_DB"

# Each migration moves the schema up one version. Append; never edit a released one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE datasets (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            table_name VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            row_count BIGINT NOT NULL,
            min_ts TIMESTAMP,
            max_ts TIMESTAMP,
            columns JSON NOT NULL,
            import_report JSON NOT NULL,
            deleted_at TIMESTAMP
        )""",
        "CREATE SEQUENCE dataset_ids START 1",
        """CREATE TABLE feature_sets (
            dataset_id INTEGER PRIMARY KEY,
            table_name VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL,
            params JSON NOT NULL,
            computed JSON NOT NULL,
            skipped JSON NOT NULL,
            seconds DOUBLE NOT NULL
        )""",
        # Analyst labels are append-only: the latest row per transaction is the current label.
        """CREATE TABLE labels (
            dataset_id INTEGER NOT NULL,
            transaction_id VARCHAR NOT NULL,
            label VARCHAR NOT NULL CHECK (label IN ('fraud', 'legitimate', 'unsure')),
            analyst VARCHAR NOT NULL,
            note VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
    ),
    (
        # Every detector fit is a run; scores for every transaction are stored per run.
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            dataset_id INTEGER NOT NULL,
            detector VARCHAR NOT NULL,
            params JSON NOT NULL,
            contamination DOUBLE NOT NULL,
            features JSON NOT NULL,
            dataset_fingerprint VARCHAR NOT NULL,
            train_from TIMESTAMP,
            train_until TIMESTAMP,
            fit_rows BIGINT NOT NULL,
            sampled BOOLEAN NOT NULL,
            fit_seconds DOUBLE NOT NULL,
            score_seconds DOUBLE NOT NULL,
            metrics JSON NOT NULL,
            artifact VARCHAR NOT NULL,
            artifact_sha256 VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL,
            note VARCHAR
        )""",
        "CREATE SEQUENCE run_ids START 1",
        "CREATE TABLE scores (run_id INTEGER NOT NULL, tx_row BIGINT NOT NULL, score DOUBLE NOT NULL)",
        "CREATE TABLE active_runs (dataset_id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL)",
        """CREATE TABLE tuning_trials (
            study VARCHAR NOT NULL,
            dataset_id INTEGER NOT NULL,
            trial INTEGER NOT NULL,
            detector VARCHAR NOT NULL,
            params JSON NOT NULL,
            contamination DOUBLE NOT NULL,
            metric VARCHAR NOT NULL,
            value DOUBLE,
            average_precision DOUBLE,
            precision_at_k DOUBLE,
            f1 DOUBLE,
            seconds DOUBLE NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
    ),
    (
        # Labels gain an order that does not depend on clocks (id) and an action they belong to
        # (batch_id), so an action can be undone by appending an undo, never by deleting.
        "CREATE SEQUENCE label_ids START 1",
        "ALTER TABLE labels ADD COLUMN id BIGINT",
        "ALTER TABLE labels ADD COLUMN batch_id VARCHAR",
        "CREATE TABLE label_undos (batch_id VARCHAR PRIMARY KEY, analyst VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL)",
        # The current label of a transaction: its latest label outside undone actions.
        """CREATE VIEW current_labels AS
           SELECT dataset_id, transaction_id, label, analyst, note, created_at AS labelled_at, batch_id
           FROM labels
           WHERE batch_id IS NULL OR batch_id NOT IN (SELECT batch_id FROM label_undos)
           QUALIFY row_number() OVER (PARTITION BY dataset_id, transaction_id
                                      ORDER BY coalesce(id, 0) DESC, created_at DESC) = 1""",
        # Case workflow, append-only: each event is the case's full new state.
        "CREATE SEQUENCE case_event_ids START 1",
        """CREATE TABLE case_events (
            id BIGINT PRIMARY KEY,
            dataset_id INTEGER NOT NULL,
            transaction_id VARCHAR NOT NULL,
            status VARCHAR NOT NULL CHECK (status IN ('open', 'in_review', 'closed')),
            assignee VARCHAR,
            reason VARCHAR,
            actor VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        """CREATE VIEW current_cases AS
           SELECT dataset_id, transaction_id, status, assignee, reason, actor, created_at AS updated_at
           FROM case_events
           QUALIFY row_number() OVER (PARTITION BY dataset_id, transaction_id ORDER BY id DESC) = 1""",
        # SHAP attributions, computed on demand and kept: a run's model and rows never change.
        """CREATE TABLE explanations (
            run_id INTEGER NOT NULL,
            tx_row BIGINT NOT NULL,
            method VARCHAR NOT NULL,
            base_value DOUBLE NOT NULL,
            output DOUBLE NOT NULL,
            attributions JSON NOT NULL,
            seconds DOUBLE NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, tx_row)
        )""",
        """CREATE TABLE global_importance (
            run_id INTEGER PRIMARY KEY,
            method VARCHAR NOT NULL,
            importance JSON NOT NULL,
            alert_rows INTEGER NOT NULL,
            normal_rows INTEGER NOT NULL,
            seconds DOUBLE NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
    ),
    (
        # Supervised model versions are runs too (their scores are fraud probabilities), trained
        # on labels on top of a detector run's anomaly score.
        "ALTER TABLE runs ADD COLUMN kind VARCHAR NOT NULL DEFAULT 'detector'",
        "ALTER TABLE runs ADD COLUMN base_run_id INTEGER",
        "ALTER TABLE runs ADD COLUMN label_counts JSON",
        # Every change of a dataset's active run, append-only: who promoted or rolled back what.
        """CREATE TABLE promotions (
            dataset_id INTEGER NOT NULL,
            run_id INTEGER NOT NULL,
            action VARCHAR NOT NULL CHECK (action IN ('fit', 'promote', 'rollback')),
            actor VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        "INSERT INTO promotions SELECT dataset_id, run_id, 'fit', 'migration', current_timestamp::TIMESTAMP FROM active_runs",
    ),
    (
        # Sign-in: local users with argon2 password hashes (never the password), and a role each.
        """CREATE TABLE users (
            username VARCHAR PRIMARY KEY,
            password_hash VARCHAR,
            role VARCHAR NOT NULL CHECK (role IN ('analyst', 'manager', 'data_scientist', 'admin')),
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL,
            disabled_at TIMESTAMP
        )""",
        # The audit trail, append-only: who did what, when, to what, with before/after values.
        "CREATE SEQUENCE audit_ids START 1",
        """CREATE TABLE audit (
            id BIGINT PRIMARY KEY,
            created_at TIMESTAMP NOT NULL,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            dataset_id INTEGER,
            target VARCHAR,
            before_value JSON,
            after_value JSON
        )""",
    ),
    (
        # Lineage: a feature set's version hashes the feature definitions and the label snapshot
        # they were computed from; every run, stored explanation and global importance records the
        # version it saw, so a stale one can be told from a current one. Older rows stay NULL
        # (unknown), which reads as stale.
        "ALTER TABLE feature_sets ADD COLUMN version VARCHAR",
        "ALTER TABLE feature_sets ADD COLUMN labels_snapshot VARCHAR",
        "ALTER TABLE runs ADD COLUMN feature_version VARCHAR",
        # The alert threshold at the run's contamination, kept with it by the actions that change
        # either (fit, save threshold, rescore); NULL for older runs, computed when read.
        "ALTER TABLE runs ADD COLUMN threshold DOUBLE",
        "ALTER TABLE explanations ADD COLUMN feature_version VARCHAR",
        # What an explanation's attributions add up to, as its model declared it (for the caption).
        "ALTER TABLE explanations ADD COLUMN explains VARCHAR",
        "ALTER TABLE global_importance ADD COLUMN feature_version VARCHAR",
    ),
    (
        # Each dataset's time zone: its timestamps are wall time there (imports convert offsets,
        # zone names and Unix times to it). Datasets from before were read as America/Lima time.
        "ALTER TABLE datasets ADD COLUMN timezone VARCHAR",
        "UPDATE datasets SET timezone = 'America/Lima'",
    ),
    (
        # Live scoring: API keys (only a SHA-256 of each key is kept, never the key), and the
        # decision taken for each transaction scored through the API, with how it arrived.
        """CREATE TABLE api_keys (
            name VARCHAR PRIMARY KEY,
            key_hash VARCHAR NOT NULL UNIQUE,
            prefix VARCHAR NOT NULL,
            scopes JSON NOT NULL,
            dataset_id INTEGER,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL,
            expires_at TIMESTAMP,
            revoked_at TIMESTAMP,
            revoked_by VARCHAR
        )""",
        """CREATE TABLE decisions (
            dataset_id INTEGER NOT NULL,
            transaction_id VARCHAR NOT NULL,
            tx_row BIGINT NOT NULL,
            run_id INTEGER NOT NULL,
            score DOUBLE NOT NULL,
            alert BOOLEAN NOT NULL,
            threshold DOUBLE NOT NULL,
            model JSON NOT NULL,
            reasons JSON NOT NULL,
            api_key VARCHAR NOT NULL,
            request_id VARCHAR NOT NULL,
            received_at TIMESTAMP NOT NULL,
            PRIMARY KEY (dataset_id, transaction_id)
        )""",
    ),
    (
        # Rules and lists. Everything is append-only: a rule's versions are immutable snapshots of
        # what an analyst wrote, and its lifecycle (draft, shadow, active, retired, deleted) is a
        # stream of events naming the version they deploy, so what ran when can always be told.
        "CREATE SEQUENCE rule_ids START 1",
        """CREATE TABLE rules (
            id INTEGER PRIMARY KEY,
            dataset_id INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL
        )""",
        """CREATE TABLE rule_versions (
            rule_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            condition VARCHAR NOT NULL,
            action VARCHAR NOT NULL CHECK (action IN ('alert', 'allow')),
            severity INTEGER NOT NULL,
            description VARCHAR,
            restored_from INTEGER,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL,
            PRIMARY KEY (rule_id, version)
        )""",
        "CREATE SEQUENCE rule_event_ids START 1",
        """CREATE TABLE rule_events (
            id BIGINT PRIMARY KEY,
            rule_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            status VARCHAR NOT NULL CHECK (status IN ('draft', 'shadow', 'active', 'retired', 'deleted')),
            actor VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        # A rule as it stands: its latest event, with the version that event deploys.
        """CREATE VIEW current_rules AS
           SELECT r.id, r.dataset_id, r.name, e.version, e.status, e.actor AS changed_by, e.created_at AS changed_at,
                  v.condition, v.action, v.severity, v.description, r.created_at, r.created_by
           FROM rules r
           JOIN (SELECT * FROM rule_events QUALIFY row_number() OVER (PARTITION BY rule_id ORDER BY id DESC) = 1) e
             ON e.rule_id = r.id
           JOIN rule_versions v ON v.rule_id = r.id AND v.version = e.version""",
        # Hits recorded as transactions are scored live (shadow rules raise nothing but are recorded).
        """CREATE TABLE rule_hits (
            dataset_id INTEGER NOT NULL,
            rule_id INTEGER NOT NULL,
            version INTEGER NOT NULL,
            status VARCHAR NOT NULL,
            tx_row BIGINT NOT NULL,
            transaction_id VARCHAR NOT NULL,
            recorded_at TIMESTAMP NOT NULL
        )""",
        "CREATE SEQUENCE list_ids START 1",
        """CREATE TABLE lists (
            id INTEGER PRIMARY KEY,
            dataset_id INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL CHECK (kind IN ('block', 'allow')),
            key_column VARCHAR NOT NULL,
            description VARCHAR,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL
        )""",
        # List entries, append-only: adding and removing are events; an entry's history is its events.
        "CREATE SEQUENCE list_entry_ids START 1",
        """CREATE TABLE list_entry_events (
            id BIGINT PRIMARY KEY,
            list_id INTEGER NOT NULL,
            value VARCHAR NOT NULL,
            action VARCHAR NOT NULL CHECK (action IN ('add', 'remove')),
            reason VARCHAR,
            expires_at TIMESTAMP,
            actor VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )""",
        """CREATE VIEW current_list_entries AS
           SELECT list_id, value, reason, expires_at, actor AS added_by, created_at AS added_at FROM (
               SELECT * FROM list_entry_events
               QUALIFY row_number() OVER (PARTITION BY list_id, value ORDER BY id DESC) = 1)
           WHERE action = 'add'""",
    ),
    (
        # Settings an admin changes (session expiry) and the server's own secret (the key that signs
        # session cookies), one JSON value per key.
        """CREATE TABLE settings (
            key VARCHAR PRIMARY KEY,
            value JSON NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            updated_by VARCHAR NOT NULL
        )""",
        # Browser sessions, server-side: the cookie carries a random token (signed); only its
        # SHA-256 is kept. A session ends (ended_at, why) by sign-out, expiry, an admin, or a change
        # to its user; it is never deleted, so the admin's list and the audit trail agree.
        "CREATE SEQUENCE session_ids START 1",
        """CREATE TABLE sessions (
            id BIGINT PRIMARY KEY,
            token_hash VARCHAR NOT NULL UNIQUE,
            username VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            last_seen_at TIMESTAMP NOT NULL,
            client VARCHAR,
            address VARCHAR,
            ended_at TIMESTAMP,
            ended_by VARCHAR,
            end_reason VARCHAR
        )""",
    ),
    (
        # 11: a run's threshold-free figures on its evaluation period (metrics, PR and ROC curves),
        # computed when it is saved and again when what they depend on changed (`stamp`): derived
        # values, like explanations, so the Detect page opens without computing them.
        """CREATE TABLE run_figures (
            run_id INTEGER NOT NULL,
            k INTEGER NOT NULL,
            stamp VARCHAR NOT NULL,
            figures JSON NOT NULL,
            seconds DOUBLE NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (run_id, k)
        )""",
    ),
    (
        # 12: a Kafka consumer per dataset, run by the server process (integrations/kafka.py);
        # kept when stopped (enabled false), so the page shows what was configured.
        """CREATE TABLE kafka_consumers (
            dataset_id INTEGER PRIMARY KEY,
            bootstrap VARCHAR NOT NULL,
            topic VARCHAR NOT NULL,
            group_id VARCHAR NOT NULL,
            decisions_topic VARCHAR,
            dead_letter_topic VARCHAR NOT NULL,
            enabled BOOLEAN NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            updated_by VARCHAR NOT NULL
        )""",
    ),
    (
        # 13: outbound webhooks (integrations/webhooks.py). An event is written to the outbox, one
        # row per subscribed webhook, in the transaction of the change it reports; the server's
        # dispatcher delivers it later (retries with back-off), so neither a receiver that is down
        # nor a killed server loses it. Every attempt is kept for the delivery log.
        "CREATE SEQUENCE webhook_ids START 1",
        """CREATE TABLE webhooks (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            url VARCHAR NOT NULL,
            events VARCHAR[] NOT NULL,
            dataset_id INTEGER,
            secret VARCHAR NOT NULL,
            enabled BOOLEAN NOT NULL,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL
        )""",
        "CREATE SEQUENCE webhook_delivery_ids START 1",
        """CREATE TABLE webhook_outbox (
            id BIGINT PRIMARY KEY,
            event_id VARCHAR NOT NULL,
            webhook_id INTEGER NOT NULL,
            event VARCHAR NOT NULL,
            dataset_id INTEGER,
            payload VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TIMESTAMP NOT NULL,
            delivered_at TIMESTAMP,
            given_up_at TIMESTAMP,
            last_status INTEGER,
            last_error VARCHAR
        )""",
        """CREATE TABLE webhook_attempts (
            delivery_id BIGINT NOT NULL,
            attempt INTEGER NOT NULL,
            attempted_at TIMESTAMP NOT NULL,
            status INTEGER,
            error VARCHAR,
            milliseconds DOUBLE NOT NULL,
            PRIMARY KEY (delivery_id, attempt)
        )""",
    ),
    (
        # 14: database sources (data/database_sources.py): a PostgreSQL table or query that fills a
        # dataset incrementally. The URL holds no literal password (refused; ${VARIABLE} references,
        # ~/.pgpass or a libpq service instead). The watermark is written in the same transaction
        # as the rows it covers, so a sync killed half-way leaves both as they were.
        "CREATE SEQUENCE database_source_ids START 1",
        """CREATE TABLE database_sources (
            id INTEGER PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            dataset VARCHAR NOT NULL,
            dataset_id INTEGER,
            url VARCHAR NOT NULL,
            relation VARCHAR,
            query VARCHAR,
            watermark VARCHAR NOT NULL,
            watermark_type VARCHAR NOT NULL,
            overlap DOUBLE NOT NULL,
            mapping JSON NOT NULL,
            timezone VARCHAR NOT NULL,
            features BOOLEAN NOT NULL,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL,
            last_watermark VARCHAR,
            last_sync_at TIMESTAMP,
            last_sync JSON,
            syncs INTEGER NOT NULL,
            rows_new BIGINT NOT NULL,
            rows_updated BIGINT NOT NULL
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

ProgressFn = Callable[[float, str], None]

# $start <= t.ts < $end, either end open when its parameter is NULL (named parameters).
PERIOD_SQL = ("(CAST($start AS TIMESTAMP) IS NULL OR t.ts >= $start) "
              "AND (CAST($end AS TIMESTAMP) IS NULL OR t.ts < $end)")


def no_progress(fraction: float, message: str) -> None:
    """Progress sink for callers that do not report progress."""


def database_path() -> Path:
    """The database file: `$CENTINELA_DB`, else ./centinela.duckdb."""
    return Path(os.environ.get(DB_ENV_VAR) or DEFAULT_DB_PATH)


class DatabaseInUseError(RuntimeError):
    """Another process holds the database file open for writing."""


def connect(path: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the database file and migrate it to the current schema."""
    target = Path(path) if path is not None else database_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = duckdb.connect(str(target))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseInUseError(
                f"{target}: the database is open in another process (is the app running?). "
                f"Stop it or point {DB_ENV_VAR} at another file."
            ) from exc
        raise
    # DuckDB draws a progress bar on stderr for long queries; the app reports progress itself.
    conn.execute("SET enable_progress_bar = false")
    migrate(conn)
    return conn


_shared: dict[str, duckdb.DuckDBPyConnection] = {}
_shared_lock = threading.Lock()
_local = threading.local()


def shared_connection(path: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """The process's one connection to the database file (opened and migrated on first use): the
    pages and the HTTP API of one server share it, as DuckDB has one writing process."""
    key = str((Path(path) if path is not None else database_path()).resolve())
    with _shared_lock:
        if key not in _shared:
            _shared[key] = connect(key)
        return _shared[key]


def thread_cursor(path: str | os.PathLike[str] | None = None) -> duckdb.DuckDBPyConnection:
    """This thread's cursor on the shared connection (a cursor per thread is safe to use side by side)."""
    conn = shared_connection(path)
    cursors = getattr(_local, "cursors", None)
    if cursors is None:
        cursors = _local.cursors = {}
    cursor = cursors.get(id(conn))
    if cursor is None:
        cursor = cursors[id(conn)] = conn.cursor()
    return cursor


def schema_version(conn: duckdb.DuckDBPyConnection) -> int:
    """The schema version the database is at; 0 for a new file."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]


def migrate(conn: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration the database lacks, each in its own transaction."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)"
    )
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {current} is newer than this Centinela ({SCHEMA_VERSION}); upgrade"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with transaction(conn):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, current_timestamp)", [version])
    return SCHEMA_VERSION


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing: commit when the block ends, roll back everything if it raises.

    Only migrations and the application layer's unit of work open transactions: storage
    functions in data/ run inside the caller's and never commit by themselves.
    """
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def quote_ident(name: str) -> str:
    """Quote an identifier for SQL; embedded quotes are doubled so no name can break out."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"invalid SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


# The names an admin gives what they create (API keys, webhooks, database sources): one rule for all.
SIMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_simple_name(value: str, what: str) -> str:
    """`value` stripped, if it is 1-64 letters, digits, dots, dashes or underscores starting with a
    letter or digit; else InvalidInput on field `name`, naming `what` (a key, a webhook, a source)."""
    text = (value or "").strip()
    if not SIMPLE_NAME.match(text):
        raise InvalidInput(f"{what} name {str(value)[:80]!r} is not allowed.", field="name",
                           hint="Use 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit.")
    return text


def checked_ident(name: str) -> str:
    """An identifier the app itself made (table names): must be plain, returned quoted."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"unexpected identifier: {name!r}")
    return quote_ident(name)


def sql_string(value: str) -> str:
    """A string literal, for the few places DuckDB takes no parameter (table-function options)."""
    if "\x00" in value:
        raise ValueError("NUL byte in SQL string")
    return "'" + value.replace("'", "''") + "'"


def fetch_records(conn: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> list[dict[str, Any]]:
    """Every row of a query as a dict keyed by column name (decode rows by name, never by position)."""
    result = conn.execute(sql, params or [])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def fetch_one(conn: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> tuple | None:
    """The first row of a query, or None; reads the whole result so the connection is left idle.

    DuckDB 2 refuses some calls (register, unregister) while a result is partly read, and
    `fetchone()` leaves it so.
    """
    rows = conn.execute(sql, params or []).fetchall()
    return rows[0] if rows else None
