"""Browser sessions that survive a reload: sign in (a server-side session and its signed cookie),
use (each page run checks the cookie's session: its signature, its user, its idle and absolute
expiry), sign out, end a session as an admin, and set the expiry. Every start and end is audited:
a `login` row names the session it started, a `logout` row the one a sign-out ended, and a
`session_end` row any other end (expiry, an admin, a change of password or role, a disabled user).

The cookie itself is set by the server's `/session/start` route (a page script cannot set an
`HttpOnly` cookie): sign-in mints a one-time hand-off code, kept in this process's memory for a
minute, which the route exchanges for the cookie.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from application import users
from application.context import Context, retry_on_conflict
from data import sessions as store
from data.audit import record
from data.errors import NotFound
from data.sessions import COOKIE_NAME, Expiry, SessionRow
from data.users import User, get_user

__all__ = ["COOKIE_NAME", "SignedIn", "Checked", "sign_in", "check", "sign_out", "end", "set_expiry", "expiry",
           "open_sessions", "redeem_handoff"]

HANDOFF_SECONDS = 60
_handoffs: dict[str, tuple[str, float]] = {}
_handoffs_lock = threading.Lock()


@dataclass(frozen=True)
class SignedIn:
    user: User
    session_id: int
    cookie: str  # the signed token: what the browser's cookie holds
    handoff: str  # one-time code the /session/start route exchanges for the cookie


@dataclass(frozen=True)
class Checked:
    """A cookie's session: the user when it is valid, else why not ('missing', 'tampered',
    'unknown', an end reason such as 'sign_out' or 'expired_idle', or 'user_gone')."""

    user: User | None
    session_id: int | None
    reason: str | None = None


def _mint_handoff(cookie: str) -> str:
    code = secrets.token_urlsafe(24)
    now = time.monotonic()
    with _handoffs_lock:
        for stale in [k for k, (_, at) in _handoffs.items() if now - at > HANDOFF_SECONDS]:
            del _handoffs[stale]
        _handoffs[code] = (cookie, now)
    return code


def redeem_handoff(code: str | None) -> str | None:
    """The cookie value a hand-off code stands for, once, within a minute of sign-in; else None."""
    with _handoffs_lock:
        found = _handoffs.pop(code or "", None)
    if found is None or time.monotonic() - found[1] > HANDOFF_SECONDS:
        return None
    return found[0]


def sign_in(ctx: Context, username: str, password: str, *, client: str | None = None,
            address: str | None = None) -> SignedIn:
    """Check the name and password (as `users.sign_in`: audited, failures lock the name) and start
    a server-side session; the `login` audit row names it."""
    name = (username or "").strip()[:64]
    with ctx.unit_of_work() as conn:
        outcome = users.check_credentials(conn, name, password, ctx.clock())
        if isinstance(outcome, User):
            server_secret = store.ensure_secret(conn)
            token = store.new_token()
            row = store.insert_session(conn, token, outcome.username, ctx.clock(), client, address)
            record(conn, outcome.username, "login", target=outcome.username,
                   after={"role": outcome.role, "session": row.id})
            cookie = store.sign(server_secret, token)
        else:
            failure = outcome
    if isinstance(outcome, User):
        return SignedIn(outcome, row.id, cookie, _mint_handoff(cookie))
    raise failure


@retry_on_conflict
def check(ctx: Context, cookie: str | None) -> Checked:
    """The session a cookie value refers to, if it is valid now: signed by this server, not
    ended, within its idle and absolute expiry, and its user still enabled. Using it counts as
    activity (written at most every TOUCH_SECONDS). A session found expired is ended (audited)."""
    if not cookie:
        return Checked(None, None, "missing")
    conn = ctx.conn
    token = store.verify(store.secret(conn), cookie)
    if token is None:
        return Checked(None, None, "tampered")
    row = store.find_session(conn, token)
    if row is None:
        return Checked(None, None, "unknown")
    if row.ended_at is not None:
        return Checked(None, row.id, row.end_reason)
    now = ctx.clock()
    expired = store.expiry(conn).expired(row, now)
    user = get_user(conn, row.username)
    if expired or user is None:
        reason = expired or "disabled"
        with ctx.unit_of_work() as work:
            store.end_session(work, row.id, now, "server", reason)
            record(work, "server", "session_end", target=row.username, after={"session": row.id, "reason": reason})
        return Checked(None, row.id, reason)
    if (now - row.last_seen_at).total_seconds() >= store.TOUCH_SECONDS:
        with ctx.unit_of_work() as work:
            store.touch(work, row.id, now)
    return Checked(user, row.id)


def sign_out(ctx: Context, cookie: str | None) -> int | None:
    """End the cookie's session (audited `logout`); the id of the session ended, or None when it
    was not a valid session any more."""
    token = store.verify(store.secret(ctx.conn), cookie)
    row = store.find_session(ctx.conn, token) if token else None
    if row is None or row.ended_at is not None:
        return None
    with ctx.unit_of_work() as conn:
        store.end_session(conn, row.id, ctx.clock(), ctx.actor, "sign_out")
        record(conn, row.username, "logout", target=row.username, after={"session": row.id})
    return row.id


def end(ctx: Context, session_id: int) -> SessionRow:
    """An admin ends a session: its browser is asked to sign in again on its next page run."""
    row = store.get_session(ctx.conn, session_id)
    if row is None:
        raise NotFound(f"there is no session {session_id}.", field="session")
    if row.ended_at is not None:
        raise NotFound(f"session {session_id} has already ended ({row.end_reason}).", field="session")
    with ctx.unit_of_work() as conn:
        store.end_session(conn, row.id, ctx.clock(), ctx.actor, "ended_by_admin")
        record(conn, ctx.actor, "session_end", target=row.username, after={"session": row.id, "reason": "ended_by_admin"})
    return row


def set_expiry(ctx: Context, idle_minutes: int, absolute_hours: int) -> Expiry:
    """Set how long a session lasts unused (idle) and in all (absolute); applies to open sessions at
    their next use. Admins only (the page is theirs; the command line is the operator's)."""
    wanted = store.check_expiry(idle_minutes, absolute_hours)
    with ctx.unit_of_work() as conn:
        before = store.expiry(conn)
        store.put_setting(conn, store.IDLE_MINUTES, wanted.idle_minutes, ctx.actor)
        store.put_setting(conn, store.ABSOLUTE_HOURS, wanted.absolute_hours, ctx.actor)
        record(conn, ctx.actor, "setting_change", target="session expiry",
               before={"idle_minutes": before.idle_minutes, "absolute_hours": before.absolute_hours},
               after={"idle_minutes": wanted.idle_minutes, "absolute_hours": wanted.absolute_hours})
    return wanted


def expiry(ctx: Context) -> Expiry:
    return store.expiry(ctx.conn)


def open_sessions(ctx: Context) -> list[tuple[SessionRow, Expiry, str | None]]:
    """Sessions not ended, each with the expiry in force and whether it has expired unused."""
    rules = store.expiry(ctx.conn)
    now = ctx.clock()
    return [(row, rules, rules.expired(row, now)) for row in store.open_sessions(ctx.conn)]
