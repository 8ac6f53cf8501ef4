"""Local users: names, roles and argon2 password hashes (argon2-cffi), with sign-in that is
audited and slowed down after repeated failures.

The first admin comes from $CENTINELA_ADMIN_PASSWORD (and $CENTINELA_ADMIN_USER, default
"admin") when the database has no user yet, or from `centinela users add NAME --role admin`.
There is no default password.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from data.audit import record
from data.db import fetch_one, transaction
from data.errors import DataError

ROLES = ("analyst", "manager", "data_scientist", "admin")
ROLE_TITLES = {"analyst": "Analyst", "manager": "Manager", "data_scientist": "Data scientist", "admin": "Admin"}
ADMIN_USER_ENV, ADMIN_PASSWORD_ENV = "CENTINELA_ADMIN_USER", "CENTINELA_ADMIN_PASSWORD"
MIN_PASSWORD = 10
MAX_FAILURES, LOCK_MINUTES = 5, 15  # failed sign-ins for one name within the window lock it for the window
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class User:
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def check_username(username: str) -> str:
    name = (username or "").strip()
    if not _USERNAME.match(name):
        raise DataError(f"{name[:80]!r} is not a valid user name.",
                        hint="1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit.")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise DataError(f"role must be one of {', '.join(ROLES)}, not {role!r}.")
    return role


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise DataError(f"the password is too short: at least {MIN_PASSWORD} characters.")
    if len(password) > 1_024:
        raise DataError("the password is too long: at most 1,024 characters.")
    return password


def has_users(conn: duckdb.DuckDBPyConnection) -> bool:
    return fetch_one(conn, "SELECT count(*) FROM users")[0] > 0


def add_user(conn: duckdb.DuckDBPyConnection, username: str, password: str, role: str, created_by: str) -> User:
    """Create a user (its password hashed with argon2id); recorded in the audit trail."""
    name, role = check_username(username), check_role(role)
    digest = _hasher.hash(check_password(password))
    with transaction(conn):
        if fetch_one(conn, "SELECT 1 FROM users WHERE lower(username) = lower(?)", [name]):
            raise DataError(f"a user named {name!r} already exists.")
        conn.execute("INSERT INTO users VALUES (?, ?, ?, current_timestamp::TIMESTAMP, ?, NULL)",
                     [name, digest, role, created_by])
        record(conn, created_by, "user_add", target=name, after={"role": role})
    return User(name, role)


def get_user(conn: duckdb.DuckDBPyConnection, username: str) -> User | None:
    row = fetch_one(conn, "SELECT username, role FROM users WHERE username = ? AND disabled_at IS NULL", [username])
    return User(*row) if row else None


def list_users(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every user without the hash: name, role, who created it, when, disabled."""
    return conn.execute("SELECT username, role, created_at, created_by, disabled_at FROM users ORDER BY username").df()


def _recent_failures(conn: duckdb.DuckDBPyConnection, username: str) -> int:
    since = datetime.now() - timedelta(minutes=LOCK_MINUTES)
    return fetch_one(conn, "SELECT count(*) FROM audit WHERE action = 'login_failed' AND target = ? AND created_at >= ?",
                     [username, since])[0]


def authenticate(conn: duckdb.DuckDBPyConnection, username: str, password: str) -> User:
    """The user whose name and password these are; every attempt is audited. Raises DataError with
    one message for unknown name and wrong password alike (a guesser learns nothing)."""
    name = (username or "").strip()[:64]
    if _recent_failures(conn, name) >= MAX_FAILURES:
        record(conn, name or "(empty)", "login_failed", target=name, after={"reason": "locked"})
        raise DataError(f"too many failed sign-ins for this name: try again in {LOCK_MINUTES} minutes.")
    row = fetch_one(conn, "SELECT username, password_hash, role FROM users WHERE username = ? AND disabled_at IS NULL",
                    [name])
    try:
        if row is None or row[1] is None:
            raise VerificationError("unknown user")
        _hasher.verify(row[1], password or "")
    except (VerificationError, InvalidHashError):
        record(conn, name or "(empty)", "login_failed", target=name)
        raise DataError("wrong user name or password.") from None
    if _hasher.check_needs_rehash(row[1]):
        conn.execute("UPDATE users SET password_hash = ? WHERE username = ?", [_hasher.hash(password), name])
    record(conn, name, "login", target=name, after={"role": row[2]})
    return User(row[0], row[2])


def change_user(conn: duckdb.DuckDBPyConnection, username: str, actor: str, *, role: str | None = None,
                password: str | None = None, disabled: bool | None = None) -> User | None:
    """Change a user's role, password or disabled state; audited with before and after (never
    the password). An admin cannot remove the last enabled admin."""
    role = check_role(role) if role else None
    digest = _hasher.hash(check_password(password)) if password else None  # slow: before the transaction
    with transaction(conn):
        # Read the current state inside the transaction, so the last-admin check and the audit's
        # "before" are the state this change replaces.
        row = fetch_one(conn, "SELECT role, disabled_at IS NOT NULL FROM users WHERE username = ?", [username])
        if row is None:
            raise DataError(f"there is no user named {username!r}.")
        before = {"role": row[0], "disabled": row[1]}
        after = {"role": role or row[0], "disabled": row[1] if disabled is None else disabled}
        admins = fetch_one(conn, "SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL AND username <> ?",
                           [username])[0]
        if before["role"] == "admin" and not before["disabled"] and (after["role"] != "admin" or after["disabled"]) \
                and admins == 0:
            raise DataError("this is the last admin: make another user admin first.")
        conn.execute("UPDATE users SET role = ?, disabled_at = CASE WHEN ? THEN coalesce(disabled_at, current_timestamp::TIMESTAMP) "
                     "END, password_hash = coalesce(?, password_hash) WHERE username = ?",
                     [after["role"], after["disabled"], digest, username])
        changes = {**after, **({"password": "changed"} if digest else {})}
        record(conn, actor, "user_change", target=username, before=before, after=changes)
    return get_user(conn, username)


def ensure_first_admin(conn: duckdb.DuckDBPyConnection) -> User | None:
    """With no user yet and $CENTINELA_ADMIN_PASSWORD set, create the first admin from it."""
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if not password or has_users(conn):
        return None
    return add_user(conn, os.environ.get(ADMIN_USER_ENV) or "admin", password, "admin", "environment")


def role_for_identity(email: str | None, mapping: dict[str, str], default: str | None = None) -> str | None:
    """The role an SSO identity gets: its exact address in `mapping`, else its '@domain', else
    `default` (None: no access)."""
    if not email:
        return None
    email = email.strip().lower()
    lowered = {k.strip().lower(): v for k, v in mapping.items()}
    role = lowered.get(email) or lowered.get("@" + email.rpartition("@")[2]) or default
    return role if role in ROLES else None
