"""Outbound webhooks: an admin registers a URL for some events (alert raised, label added, case
changed, model promoted), optionally of one dataset; the server's dispatcher
(integrations/webhooks.py) delivers each event, signed, from the outbox that the actions fill in
their own transactions (data.webhooks.enqueue)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from application.context import Context
from application.rules import require_role
from data import webhooks as store
from data.audit import record
from data.errors import Conflict, InvalidInput, NotFound
from data.webhooks import STATES


@dataclass(frozen=True)
class Registered:
    webhook: store.Webhook
    secret: str  # shown once: the receiver verifies the signature with it


def _require_admin(ctx: Context, what: str) -> None:
    require_role(ctx, ("admin",), what)


def _webhook(ctx: Context, name: str) -> store.Webhook:
    found = store.get_webhook(ctx.conn, str(name or "").strip())
    if found is None:
        names = [w.name for w in store.list_webhooks(ctx.conn)]
        raise NotFound(f"there is no webhook {name!r}.", field="name",
                       hint=f"Webhooks: {', '.join(names)}." if names else "There are no webhooks yet.")
    return found


def add_webhook(ctx: Context, name: str, url: str, events: list[str] | tuple[str, ...] | str,
                dataset: str | None = None) -> Registered:
    """Register a webhook (enabled) and its signing secret, which is shown once."""
    _require_admin(ctx, "manage webhooks")
    name, url, events = store.check_name(name), store.check_url(url), store.check_events(events)
    target = ctx.dataset(dataset) if dataset else None
    secret = store.new_secret()
    with ctx.unit_of_work() as conn:
        if store.get_webhook(conn, name) is not None:
            raise Conflict(f"a webhook named {name!r} exists.", field="name",
                           hint="Choose another name, or remove that one first.")
        store.insert_webhook(conn, name, url, events, target.id if target else None, secret, ctx.clock(), ctx.actor)
        added = store.get_webhook(conn, name)
        record(conn, ctx.actor, "webhook_add", dataset_id=target.id if target else None, target=name,
               after=added.as_dict())
    return Registered(added, secret)


def set_enabled(ctx: Context, name: str, enabled: bool) -> store.Webhook:
    """Pause a webhook (its events wait in the outbox, none is lost) or resume it."""
    _require_admin(ctx, "manage webhooks")
    with ctx.unit_of_work() as conn:
        found = _webhook(ctx, name)
        if found.enabled == bool(enabled):
            raise Conflict(f"webhook {found.name!r} is already {'enabled' if enabled else 'paused'}.", field="name")
        store.set_enabled(conn, found.id, bool(enabled))
        record(conn, ctx.actor, "webhook_change", dataset_id=found.dataset_id, target=found.name,
               before={"enabled": found.enabled}, after={"enabled": bool(enabled)})
    return _webhook(ctx, name)


def rotate_secret(ctx: Context, name: str) -> Registered:
    """A new signing secret (shown once); deliveries from now on are signed with it."""
    _require_admin(ctx, "manage webhooks")
    secret = store.new_secret()
    with ctx.unit_of_work() as conn:
        found = _webhook(ctx, name)
        store.set_secret(conn, found.id, secret)
        record(conn, ctx.actor, "webhook_change", dataset_id=found.dataset_id, target=found.name,
               after={"secret": "rotated"})
    return Registered(found, secret)


def remove_webhook(ctx: Context, name: str) -> int:
    """Remove a webhook; its undelivered events are given up (they stay in the log). Returns how many."""
    _require_admin(ctx, "manage webhooks")
    with ctx.unit_of_work() as conn:
        found = _webhook(ctx, name)
        dropped = store.delete_webhook(conn, found.id, ctx.clock())
        record(conn, ctx.actor, "webhook_remove", dataset_id=found.dataset_id, target=found.name,
               before=found.as_dict(), after={"undelivered_given_up": dropped})
    return dropped


def redeliver(ctx: Context, delivery_id: int) -> dict:
    """Send one event again, now, as a new delivery of the same event (a failed one, or one the
    receiver lost). Returns the new delivery (`id`) and the one it repeats (`again`)."""
    _require_admin(ctx, "redeliver webhook events")
    with ctx.unit_of_work() as conn:
        found = store.requeue(conn, int(delivery_id), ctx.clock())
        record(conn, ctx.actor, "webhook_redeliver", dataset_id=None, target=f"delivery #{int(delivery_id)}",
               before={"delivered_at": found["delivered_at"], "given_up_at": found["given_up_at"]},
               after={"event": found["event"], "event_id": found["event_id"], "delivery": found["id"]})
    return found


def list_webhooks(ctx: Context) -> list[store.Webhook]:
    return store.list_webhooks(ctx.conn)


def delivery_log(ctx: Context, webhook: str | None = None, state: str | None = None, limit: int = 500) -> pd.DataFrame:
    """The newest deliveries (what, to whom, state, attempts, last status or error), newest first."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"unknown delivery state {state!r}.", field="state", hint=f"States: {', '.join(STATES)}.")
    if webhook:
        _webhook(ctx, webhook)
    return store.delivery_log(ctx.conn, webhook or None, state, limit)


def attempts(ctx: Context, delivery_id: int) -> pd.DataFrame:
    return store.attempts_of(ctx.conn, delivery_id)


def counts(ctx: Context) -> dict[str, dict[str, int]]:
    return store.counts(ctx.conn)
