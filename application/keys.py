"""API keys: an admin creates one (the key is shown once), lists and revokes them; every request
to the API is authenticated here, with the scope and dataset it needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from application import stamped
from application.context import Context
from data import keys as store
from data import users
from data.audit import record
from data.errors import Conflict, Forbidden, InvalidInput
from data.keys import ApiKey

MAX_DAYS = 3_650


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    secret: str  # the key itself: shown once, never stored


def _require_admin(ctx: Context) -> None:
    """Keys are an admin's business: on a database with users, the actor must be an admin
    (the command line acts as the operator at the machine, as for users)."""
    if ctx.actor.startswith("cli:") or not users.has_users(ctx.conn):
        return
    user = users.get_user(ctx.conn, ctx.actor)
    if user is None or user.role != "admin":
        raise Forbidden("only an admin can manage API keys.")


def create(ctx: Context, name: str, scopes: list[str] | tuple[str, ...] | str, dataset: str | None = None,
           expires_days: float | None = None) -> CreatedKey:
    """Create a key with these scopes (optionally for one dataset, optionally expiring)."""
    _require_admin(ctx)
    name, scopes = store.check_name(name), store.check_scopes(scopes)
    dataset_id = ctx.dataset(dataset).id if dataset else None
    expires_at = None
    if expires_days is not None:
        if not 0 < float(expires_days) <= MAX_DAYS:
            raise InvalidInput(f"a key expires after 0 to {MAX_DAYS:,} days, not {expires_days}.", field="expires_days")
        expires_at = ctx.clock() + timedelta(days=float(expires_days))
    secret = store.new_key()
    with ctx.unit_of_work() as conn:
        key = store.insert_key(conn, name, secret, scopes, dataset_id, ctx.actor, expires_at)
        record(conn, ctx.actor, "key_create", dataset_id=dataset_id, target=name,
               after={"scopes": list(scopes), "dataset": dataset, "expires_at": expires_at, "prefix": key.prefix})
    return CreatedKey(key, secret)


def list_keys(ctx: Context) -> list[ApiKey]:
    return store.list_keys(ctx.conn)


def revoke(ctx: Context, name: str) -> ApiKey:
    """Revoke a key: every later request with it gets 401."""
    _require_admin(ctx)
    with ctx.unit_of_work() as conn:
        key = store.get_key(conn, name)
        if key.revoked_at is not None:
            raise Conflict(f"key {name!r} is already revoked.", field="name")
        store.mark_revoked(conn, name, ctx.actor)
        record(conn, ctx.actor, "key_revoke", dataset_id=key.dataset_id, target=name, before={"scopes": list(key.scopes)})
    return store.get_key(ctx.conn, name)


class Unauthenticated(Exception):
    """No key, or a key that is unknown, revoked or expired (HTTP 401)."""


def authenticate(ctx: Context, secret: str | None, scope: str, dataset_id: int | None = None,
                 now: datetime | None = None, at: stamped.Stamp | None = None) -> ApiKey:
    """The key behind `secret`, if it may use `scope` (on `dataset_id`); Unauthenticated (401)
    or Forbidden (403) otherwise. The key's row is kept between requests under stamp `at` (read
    here when not given): a revoked key is refused at its next request."""
    if not secret:
        raise Unauthenticated("an API key is required: send it as 'Authorization: Bearer <key>'.")
    digest = store.key_hash(secret)
    at = at or stamped.stamp(ctx.conn, ctx.database)
    key = stamped.kept(at, ("api_key", digest), lambda: store.key_by_hash(ctx.conn, digest))
    if key is None:
        raise Unauthenticated("unknown API key.")
    state = key.state(now or ctx.clock())
    if state != "active":
        raise Unauthenticated(f"API key {key.name!r} is {state}.")
    if scope not in key.scopes:
        raise Forbidden(f"API key {key.name!r} lacks the {scope!r} scope.", field="scope")
    check_dataset(key, dataset_id)
    return key


def check_dataset(key: ApiKey, dataset_id: int | None) -> None:
    """Forbidden (403) when a key for one dataset is used on another."""
    if dataset_id is not None and key.dataset_id is not None and key.dataset_id != dataset_id:
        raise Forbidden(f"API key {key.name!r} is for another dataset.", field="dataset")


def actor(key: ApiKey) -> str:
    """How a key's actions are attributed in the audit trail and on labels."""
    return f"api:{key.name}"
