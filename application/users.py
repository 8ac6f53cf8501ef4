"""Users and sign-in: add and change users (the last admin cannot be removed), create the first
admin from the environment, sign in and out (each attempt audited; repeated failures lock a
name for a while), and sign in through an SSO identity."""

from __future__ import annotations

import os

from application.context import Context
from data import sessions as session_store
from data import users as store
from data.audit import record
from data.errors import Conflict, Forbidden, InvalidInput, UserError
from data.users import ADMIN_PASSWORD_ENV, ADMIN_USER_ENV, LOCK_MINUTES, MAX_FAILURES, User


def add(ctx: Context, username: str, password: str, role: str) -> User:
    """Create a user with an argon2id password hash; audited (the role, never the password)."""
    name, role = store.check_username(username), store.check_role(role)
    digest = store.hash_password(password)  # slow by design: before the transaction
    with ctx.unit_of_work() as conn:
        user = store.insert_user(conn, name, digest, role, ctx.actor)
        record(conn, ctx.actor, "user_add", target=name, after={"role": role})
    return user


def change(ctx: Context, username: str, *, role: str | None = None, password: str | None = None,
           disabled: bool | None = None) -> User | None:
    """Change a user's role, password or disabled state; audited with before and after (never
    the password). The last enabled admin cannot be demoted or disabled. A change of role or
    password, or disabling, ends the user's browser sessions (a `session_end` row each)."""
    role = store.check_role(role) if role else None
    digest = store.hash_password(password) if password else None
    with ctx.unit_of_work() as conn:
        # The current state is read inside the transaction, so the last-admin check and the
        # audit's "before" are the state this change replaces.
        before = store.user_state(conn, username)
        after = {"role": role or before["role"], "disabled": before["disabled"] if disabled is None else disabled}
        removes_admin = before["role"] == "admin" and not before["disabled"] and (after["role"] != "admin" or after["disabled"])
        if removes_admin and store.other_enabled_admins(conn, username) == 0:
            raise Conflict("this is the last admin: make another user admin first.", field="role")
        store.update_user(conn, username, role=after["role"], disabled=after["disabled"], password_hash=digest)
        # A browser signed in as this user keeps nothing it was given: its sessions end.
        reason = ("disabled" if after["disabled"] and not before["disabled"] else
                  "role_changed" if after["role"] != before["role"] else "password_changed" if digest else None)
        if reason:
            _end_sessions(conn, ctx.actor, username, reason, ctx.clock())
        record(conn, ctx.actor, "user_change", target=username, before=before,
               after={**after, **({"password": "changed"} if digest else {})})
    return store.get_user(ctx.conn, username)


def _end_sessions(conn, actor: str, username: str, reason: str, now) -> list[int]:
    """Inside the caller's unit of work: end every open browser session of a user, one
    `session_end` audit row each."""
    ended = []
    for row in session_store.open_sessions(conn, username):
        session_store.end_session(conn, row.id, now, actor, reason)
        record(conn, actor, "session_end", target=username, after={"session": row.id, "reason": reason})
        ended.append(row.id)
    return ended


def first_admin_from_environment(ctx: Context) -> User | None:
    """With no user yet and $CENTINELA_ADMIN_PASSWORD set, create the first admin from it
    ($CENTINELA_ADMIN_USER, default 'admin'). There is no default password."""
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if not password or store.has_users(ctx.conn):
        return None
    return add(Context(ctx.conn, "environment"), os.environ.get(ADMIN_USER_ENV) or "admin", password, "admin")


def check_credentials(conn, name: str, password: str, now) -> User | UserError:
    """Inside the caller's unit of work: the user whose name and password these are, or the error
    to raise once the unit of work has committed (a failed attempt's audit row is what the
    lock-out counts). Unknown names and wrong passwords get the same message."""
    if store.recent_failures(conn, name, now) >= MAX_FAILURES:
        record(conn, name or "(empty)", "login_failed", target=name, after={"reason": "locked"})
        return Forbidden(f"too many failed sign-ins for this name: try again in {LOCK_MINUTES} minutes.")
    user = store.verify_password(conn, name, password)
    if user is None:
        record(conn, name or "(empty)", "login_failed", target=name)
        return InvalidInput("wrong user name or password.")
    return user


def sign_in(ctx: Context, username: str, password: str) -> User:
    """The user whose name and password these are. Every attempt is audited; unknown names and
    wrong passwords get the same message (a guesser learns nothing), and a name with too many
    recent failures is locked for a while. The app signs in through `application.sessions.sign_in`,
    which also starts a browser session."""
    name = (username or "").strip()[:64]
    with ctx.unit_of_work() as conn:
        outcome = check_credentials(conn, name, password, ctx.clock())
        if isinstance(outcome, User):
            record(conn, outcome.username, "login", target=outcome.username, after={"role": outcome.role})
            return outcome
    raise outcome


def sso_sign_in(ctx: Context, email: str | None, roles: dict[str, str], default_role: str | None = None) -> User:
    """A user for an identity the identity provider vouched for: its role from `roles` (address
    or '@domain'), else `default_role`; Forbidden, audited, when it has none."""
    role = store.role_for_identity(email, roles, default_role)
    with ctx.unit_of_work() as conn:
        if role is None:
            record(conn, email or "(no email)", "login_failed", target=email, after={"reason": "no role"})
        else:
            record(conn, email, "login", target=email, after={"role": role, "via": "sso"})
    if role is None:
        raise Forbidden(f"{email or 'This account'} has no role in Centinela.",
                        hint="Ask an admin to add it to `[centinela.roles]`.")
    return User(str(email), role)


def sign_out(ctx: Context) -> None:
    with ctx.unit_of_work() as conn:
        record(conn, ctx.actor, "logout", target=ctx.actor)
