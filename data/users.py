"""Local users: names, roles and argon2 password hashes (argon2-cffi), stored; sign-in reads them.

Storage and checks only: signing in, adding and changing users, with their audit rows, are the
actions in `application.users`. There is no default password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from data.db import fetch_one
from data.errors import Conflict, InvalidInput, NotFound

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
        raise InvalidInput(f"{name[:80]!r} is not a valid user name.", field="username",
                           hint="1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit.")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}.", field="role")
    return role


def check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(f"the password is too short: at least {MIN_PASSWORD} characters.", field="password")
    if len(password) > 1_024:
        raise InvalidInput("the password is too long: at most 1,024 characters.", field="password")
    return password


def has_users(conn: duckdb.DuckDBPyConnection) -> bool:
    return fetch_one(conn, "SELECT count(*) FROM users")[0] > 0


def hash_password(password: str) -> str:
    """The argon2id hash of a checked password (slow by design: compute it before a transaction)."""
    return _hasher.hash(check_password(password))


def insert_user(conn: duckdb.DuckDBPyConnection, username: str, password_hash: str, role: str, created_by: str) -> User:
    """Store a new user (names are unique regardless of case)."""
    if fetch_one(conn, "SELECT 1 FROM users WHERE lower(username) = lower(?)", [username]):
        raise Conflict(f"a user named {username!r} already exists.", field="username")
    conn.execute("INSERT INTO users VALUES (?, ?, ?, current_timestamp::TIMESTAMP, ?, NULL)",
                 [username, password_hash, role, created_by])
    return User(username, role)


def get_user(conn: duckdb.DuckDBPyConnection, username: str) -> User | None:
    row = fetch_one(conn, "SELECT username, role FROM users WHERE username = ? AND disabled_at IS NULL", [username])
    return User(*row) if row else None


def list_users(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every user without the hash: name, role, who created it, when, disabled."""
    return conn.execute("SELECT username, role, created_at, created_by, disabled_at FROM users ORDER BY username").df()


def recent_failures(conn: duckdb.DuckDBPyConnection, username: str, now: datetime | None = None) -> int:
    """Failed sign-ins for this name within the lock-out window."""
    since = (now or datetime.now()) - timedelta(minutes=LOCK_MINUTES)
    return fetch_one(conn, "SELECT count(*) FROM audit WHERE action = 'login_failed' AND target = ? AND created_at >= ?",
                     [username, since])[0]


def verify_password(conn: duckdb.DuckDBPyConnection, username: str, password: str) -> User | None:
    """The enabled user with this name and password, or None (unknown name and wrong password
    alike). A hash made with older argon2 settings is replaced by a current one."""
    row = fetch_one(conn, "SELECT username, password_hash, role FROM users WHERE username = ? AND disabled_at IS NULL",
                    [username])
    try:
        if row is None or row[1] is None:
            raise VerificationError("unknown user")
        _hasher.verify(row[1], password or "")
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(row[1]):
        conn.execute("UPDATE users SET password_hash = ? WHERE username = ?", [_hasher.hash(password), username])
    return User(row[0], row[2])


def user_state(conn: duckdb.DuckDBPyConnection, username: str) -> dict[str, object]:
    """A user's role and whether it is disabled; NotFound if there is no such user."""
    row = fetch_one(conn, "SELECT role, disabled_at IS NOT NULL FROM users WHERE username = ?", [username])
    if row is None:
        raise NotFound(f"there is no user named {username!r}.", field="username")
    return {"role": row[0], "disabled": row[1]}


def other_enabled_admins(conn: duckdb.DuckDBPyConnection, username: str) -> int:
    return fetch_one(conn, "SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL AND username <> ?",
                     [username])[0]


def update_user(conn: duckdb.DuckDBPyConnection, username: str, *, role: str, disabled: bool,
                password_hash: str | None) -> None:
    conn.execute("UPDATE users SET role = ?, disabled_at = CASE WHEN ? THEN coalesce(disabled_at, current_timestamp::TIMESTAMP) "
                 "END, password_hash = coalesce(?, password_hash) WHERE username = ?",
                 [role, disabled, password_hash, username])


def role_for_identity(email: str | None, mapping: dict[str, str], default: str | None = None) -> str | None:
    """The role an SSO identity gets: its exact address in `mapping`, else its '@domain', else
    `default` (None: no access)."""
    if not email:
        return None
    email = email.strip().lower()
    lowered = {k.strip().lower(): v for k, v in mapping.items()}
    role = lowered.get(email) or lowered.get("@" + email.rpartition("@")[2]) or default
    return role if role in ROLES else None
