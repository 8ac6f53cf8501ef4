"""API keys: a long random key per external system, stored only as its SHA-256.

A key is 256 bits from `secrets`, so a fast hash is enough to keep it safe at rest (a password
hash exists to slow the guessing of short secrets, and would cost every request tens of
milliseconds). Each key has scopes (score, label, read; operate: run any command-line action
through the app, cli/remote.py), may be limited to one dataset, may
expire, and can be revoked; revoked keys stay listed, as the audit trail names them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from data.db import check_simple_name, fetch_records
from data.errors import Conflict, InvalidInput, NotFound

SCOPES = ("score", "label", "read", "operate")  # operate: any command-line action, through the app
KEY_PREFIX = "cent_"


@dataclass(frozen=True)
class ApiKey:
    name: str
    prefix: str  # the key's first characters, to tell keys apart in lists
    scopes: tuple[str, ...]
    dataset_id: int | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "prefix": self.prefix, "scopes": list(self.scopes), "dataset_id": self.dataset_id,
                "created_at": self.created_at, "created_by": self.created_by, "expires_at": self.expires_at,
                "revoked_at": self.revoked_at, "revoked_by": self.revoked_by}


def check_name(name: str) -> str:
    return check_simple_name(name, "key")


def check_scopes(scopes: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    if isinstance(scopes, str):
        scopes = [s for s in scopes.split(",")]
    cleaned = tuple(dict.fromkeys(s.strip() for s in scopes if s and s.strip()))
    if not cleaned:
        raise InvalidInput("a key needs at least one scope.", field="scope", hint=f"Scopes: {', '.join(SCOPES)}.")
    bad = [s for s in cleaned if s not in SCOPES]
    if bad:
        raise InvalidInput(f"unknown scope {bad[0]!r}.", field="scope", hint=f"Scopes: {', '.join(SCOPES)}.")
    return cleaned


def new_key() -> str:
    """A fresh key: the prefix and 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


_COLUMNS = "name, prefix, scopes, dataset_id, created_at, created_by, expires_at, revoked_at, revoked_by"


def _from(record: dict[str, Any]) -> ApiKey:
    record["scopes"] = tuple(json.loads(record["scopes"]))
    return ApiKey(**record)


def insert_key(conn: duckdb.DuckDBPyConnection, name: str, key: str, scopes: tuple[str, ...], dataset_id: int | None,
               created_by: str, expires_at: datetime | None) -> ApiKey:
    if fetch_records(conn, "SELECT 1 FROM api_keys WHERE name = ?", [name]):
        raise Conflict(f"a key named {name!r} already exists.", field="name",
                       hint="Choose another name (revoked keys keep theirs, as the audit trail names them).")
    conn.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, current_timestamp::TIMESTAMP, ?, ?, NULL, NULL)",
                 [name, key_hash(key), key[:len(KEY_PREFIX) + 6], json.dumps(list(scopes)), dataset_id, created_by,
                  expires_at])
    return get_key(conn, name)


def get_key(conn: duckdb.DuckDBPyConnection, name: str) -> ApiKey:
    found = fetch_records(conn, f"SELECT {_COLUMNS} FROM api_keys WHERE name = ?", [name])
    if not found:
        raise NotFound(f"no API key named {name!r}.", field="name")
    return _from(found[0])


def key_by_hash(conn: duckdb.DuckDBPyConnection, digest: str) -> ApiKey | None:
    found = fetch_records(conn, f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?", [digest])
    return _from(found[0]) if found else None


def list_keys(conn: duckdb.DuckDBPyConnection) -> list[ApiKey]:
    return [_from(r) for r in fetch_records(conn, f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, name")]


def mark_revoked(conn: duckdb.DuckDBPyConnection, name: str, actor: str) -> None:
    conn.execute("UPDATE api_keys SET revoked_at = current_timestamp::TIMESTAMP, revoked_by = ? WHERE name = ?",
                 [actor, name])
