"""Browser sessions and settings, stored: what a signed-in browser's cookie refers to.

A session is a row keyed by the SHA-256 of a random token; the browser holds the token, signed
with the server's secret (HMAC-SHA256), in an `HttpOnly`, `SameSite=Strict` cookie. The database
never holds a token, so a copy of it (a backup) signs nobody in. Expiry is computed when a session
is used, from two settings an admin changes: idle minutes (since it was last used) and absolute
hours (since it started).

Storage and checks only: starting, using and ending sessions, with their audit rows, are the
actions in `application.sessions`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from data.db import fetch_one, fetch_records
from data.errors import InvalidInput

COOKIE_NAME = "centinela_session"
IDLE_MINUTES, ABSOLUTE_HOURS = "session_idle_minutes", "session_absolute_hours"
DEFAULTS: dict[str, int] = {IDLE_MINUTES: 30, ABSOLUTE_HOURS: 12}
LIMITS: dict[str, tuple[int, int]] = {IDLE_MINUTES: (1, 24 * 60), ABSOLUTE_HOURS: (1, 24 * 30)}
SECRET = "session_secret"
TOUCH_SECONDS = 30  # a session's last use is written at most this often (each page run reads it)
END_REASONS = ("sign_out", "expired_idle", "expired_absolute", "password_changed", "role_changed", "disabled",
               "ended_by_admin")


@dataclass(frozen=True)
class SessionRow:
    id: int
    username: str
    created_at: datetime
    last_seen_at: datetime
    client: str | None
    address: str | None
    ended_at: datetime | None
    end_reason: str | None


@dataclass(frozen=True)
class Expiry:
    idle_minutes: int
    absolute_hours: int

    def idle_deadline(self, row: SessionRow) -> datetime:
        return row.last_seen_at + timedelta(minutes=self.idle_minutes)

    def absolute_deadline(self, row: SessionRow) -> datetime:
        return row.created_at + timedelta(hours=self.absolute_hours)

    def expired(self, row: SessionRow, now: datetime) -> str | None:
        """Why the session has expired at `now` ('expired_absolute' first), or None."""
        if now >= self.absolute_deadline(row):
            return "expired_absolute"
        if now >= self.idle_deadline(row):
            return "expired_idle"
        return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign(secret: str, token: str) -> str:
    """The cookie value: the token and its HMAC-SHA256 under the server's secret."""
    mac = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return f"{token}.{mac}"


def verify(secret: str | None, cookie: str | None) -> str | None:
    """The token of a cookie value whose signature is the server's, else None (tampered, malformed)."""
    if not secret or not cookie or len(cookie) > 200 or cookie.count(".") != 1:
        return None
    token, _, mac = cookie.partition(".")
    expected = hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()
    return token if token and hmac.compare_digest(mac.encode(), expected.encode()) else None


# --- settings -----------------------------------------------------------------------------


def get_setting(conn: duckdb.DuckDBPyConnection, key: str) -> Any:
    row = fetch_one(conn, "SELECT value FROM settings WHERE key = ?", [key])
    return json.loads(row[0]) if row else None


def put_setting(conn: duckdb.DuckDBPyConnection, key: str, value: Any, actor: str) -> None:
    conn.execute("INSERT INTO settings VALUES (?, ?, current_timestamp::TIMESTAMP, ?) ON CONFLICT (key) DO UPDATE "
                 "SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                 [key, json.dumps(value), actor])


def expiry(conn: duckdb.DuckDBPyConnection) -> Expiry:
    """The session expiry an admin set, else the defaults (30 minutes idle, 12 hours in all)."""
    values = {key: get_setting(conn, key) for key in DEFAULTS}
    return Expiry(int(values[IDLE_MINUTES] or DEFAULTS[IDLE_MINUTES]),
                  int(values[ABSOLUTE_HOURS] or DEFAULTS[ABSOLUTE_HOURS]))


def check_expiry(idle_minutes: int, absolute_hours: int) -> Expiry:
    for key, value in ((IDLE_MINUTES, idle_minutes), (ABSOLUTE_HOURS, absolute_hours)):
        low, high = LIMITS[key]
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            unit = "minutes" if key == IDLE_MINUTES else "hours"
            raise InvalidInput(f"{key.replace('session_', '').replace('_', ' ')} must be {low} to {high:,} {unit}, "
                               f"not {value!r}.", field=key)
    if idle_minutes > absolute_hours * 60:
        raise InvalidInput("the idle expiry cannot be longer than the absolute one.", field=IDLE_MINUTES)
    return Expiry(idle_minutes, absolute_hours)


def secret(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The server's secret that signs session cookies (None until the first sign-in makes it)."""
    value = get_setting(conn, SECRET)
    return str(value) if value else None


def ensure_secret(conn: duckdb.DuckDBPyConnection) -> str:
    """The server's secret, made (256 random bits) the first time it is needed."""
    conn.execute("INSERT INTO settings VALUES (?, ?, current_timestamp::TIMESTAMP, 'server') ON CONFLICT (key) DO NOTHING",
                 [SECRET, json.dumps(secrets.token_hex(32))])
    return str(secret(conn))


# --- sessions -----------------------------------------------------------------------------

_COLUMNS = "id, username, created_at, last_seen_at, client, address, ended_at, end_reason"


def insert_session(conn: duckdb.DuckDBPyConnection, token: str, username: str, now: datetime,
                   client: str | None, address: str | None) -> SessionRow:
    row = fetch_one(conn, f"INSERT INTO sessions VALUES (nextval('session_ids'), ?, ?, ?, ?, ?, ?, NULL, NULL, NULL) "
                          f"RETURNING {_COLUMNS}",
                    [token_hash(token), username, now, now, (client or "")[:200] or None, (address or "")[:64] or None])
    return SessionRow(*row)


def find_session(conn: duckdb.DuckDBPyConnection, token: str) -> SessionRow | None:
    row = fetch_one(conn, f"SELECT {_COLUMNS} FROM sessions WHERE token_hash = ?", [token_hash(token)])
    return SessionRow(*row) if row else None


def get_session(conn: duckdb.DuckDBPyConnection, session_id: int) -> SessionRow | None:
    row = fetch_one(conn, f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", [int(session_id)])
    return SessionRow(*row) if row else None


def touch(conn: duckdb.DuckDBPyConnection, session_id: int, now: datetime) -> None:
    conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ? AND ended_at IS NULL", [now, session_id])


def end_session(conn: duckdb.DuckDBPyConnection, session_id: int, now: datetime, by: str, reason: str) -> None:
    if reason not in END_REASONS:
        raise ValueError(f"unknown end reason {reason!r}")
    conn.execute("UPDATE sessions SET ended_at = ?, ended_by = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
                 [now, by[:128], reason, session_id])


def open_sessions(conn: duckdb.DuckDBPyConnection, username: str | None = None) -> list[SessionRow]:
    """Sessions not ended (some may have expired without being used since), oldest first."""
    rows = fetch_records(conn, f"SELECT {_COLUMNS} FROM sessions WHERE ended_at IS NULL "
                               "AND (CAST($user AS VARCHAR) IS NULL OR username = $user) ORDER BY id", {"user": username})
    return [SessionRow(**r) for r in rows]
