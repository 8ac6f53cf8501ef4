"""Outbound webhooks: who is told of what, the outbox of events still to deliver, and every
delivery attempt (the delivery log).

An action that changes something a webhook subscribes to calls `enqueue` inside its own unit of
work, so the event and the change commit together (or neither does). The server's dispatcher
(integrations/webhooks.py) then delivers each outbox row: marked delivered on a 2xx answer, else
tried again later, until it gives up after its last attempt. Rows are kept for the log.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import duckdb
import httpx
import numpy as np
import pandas as pd

from data.db import check_simple_name, fetch_records
from data.errors import Conflict, InvalidInput, NotFound

EVENTS = ("alert.raised", "label.added", "case.changed", "model.promoted")
EVENT_HELP = {"alert.raised": "a transaction scored live (API or Kafka) raised an alert",
              "label.added": "transactions were labelled (page, command line, API or a file)",
              "case.changed": "cases were taken, assigned, or changed status",
              "model.promoted": "another run or version now ranks the queue (a fit made active, a promotion or a rollback)"}
STATES = ("pending", "retrying", "delivered", "failed")  # of a delivery
MAX_URL = 2_000
MAX_IDS = 10_000  # transaction ids named in one label or case event (the count is always exact)


@dataclass(frozen=True)
class Webhook:
    id: int
    name: str
    url: str
    events: tuple[str, ...]
    dataset_id: int | None
    dataset: str | None  # its name; None: every dataset
    enabled: bool
    created_at: datetime
    created_by: str

    def as_dict(self) -> dict[str, Any]:
        """What may be shown and audited: everything but the signing secret."""
        return {"name": self.name, "url": self.url, "events": list(self.events), "dataset": self.dataset,
                "enabled": self.enabled, "created_at": self.created_at, "created_by": self.created_by}


def check_name(name: str) -> str:
    return check_simple_name(name, "webhook")


def check_url(value: str) -> str:
    """An http(s) URL the dispatcher's client can send to (what it would refuse is refused here)."""
    text = (value or "").strip()
    bad = InvalidInput(f"{text[:120]!r} is not an http(s) URL.", field="url",
                       hint="For example https://alerts.bank.pe/centinela")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
        if parts.hostname:
            parts.hostname.encode("idna")  # an empty or over-long label, as the client would find at sending time
        httpx.URL(text)
    except (ValueError, UnicodeError, httpx.InvalidURL):
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(text) > MAX_URL or any(
            ord(c) < 33 or ord(c) == 127 for c in text):
        raise bad
    if parts.username or parts.password:
        raise InvalidInput("the URL must not carry a user or password: the receiver checks the signature instead.",
                           field="url")
    return text


def check_events(values: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    items = values.split(",") if isinstance(values, str) else list(values)
    events = tuple(dict.fromkeys(e.strip() for e in items if e and e.strip()))
    unknown = [e for e in events if e not in EVENTS]
    if not events or unknown:
        raise InvalidInput(f"unknown event {unknown[0]!r}." if unknown else "choose at least one event.",
                           field="events", hint=f"Events: {', '.join(EVENTS)}.")
    return events


def new_secret() -> str:
    """The key the receiver checks signatures with: 32 random bytes, hex."""
    return secrets.token_hex(32)


_SELECT = """SELECT w.id, w.name, w.url, w.events, w.dataset_id, d.name AS dataset, w.enabled, w.created_at,
                    w.created_by
             FROM webhooks w LEFT JOIN datasets d ON d.id = w.dataset_id"""


def _webhook(row: dict[str, Any]) -> Webhook:
    return Webhook(**{**row, "events": tuple(row["events"])})


def list_webhooks(conn: duckdb.DuckDBPyConnection) -> list[Webhook]:
    return [_webhook(r) for r in fetch_records(conn, _SELECT + " ORDER BY w.name")]


def get_webhook(conn: duckdb.DuckDBPyConnection, name: str) -> Webhook | None:
    found = fetch_records(conn, _SELECT + " WHERE w.name = ?", [name])
    return _webhook(found[0]) if found else None


def secret_of(conn: duckdb.DuckDBPyConnection, webhook_id: int) -> str:
    return str(conn.execute("SELECT secret FROM webhooks WHERE id = ?", [webhook_id]).fetchall()[0][0])


def insert_webhook(conn: duckdb.DuckDBPyConnection, name: str, url: str, events: tuple[str, ...],
                   dataset_id: int | None, secret: str, created_at: datetime, created_by: str) -> None:
    conn.execute("INSERT INTO webhooks VALUES (nextval('webhook_ids'), ?, ?, ?, ?, ?, true, ?, ?)",
                 [name, url, list(events), dataset_id, secret, created_at, created_by])


def set_enabled(conn: duckdb.DuckDBPyConnection, webhook_id: int, enabled: bool) -> None:
    conn.execute("UPDATE webhooks SET enabled = ? WHERE id = ?", [enabled, webhook_id])


def set_secret(conn: duckdb.DuckDBPyConnection, webhook_id: int, secret: str) -> None:
    conn.execute("UPDATE webhooks SET secret = ? WHERE id = ?", [secret, webhook_id])


def delete_webhook(conn: duckdb.DuckDBPyConnection, webhook_id: int, at: datetime) -> int:
    """Remove a webhook; its undelivered events are given up (kept in the log). Returns how many."""
    pending = conn.execute(
        """UPDATE webhook_outbox SET given_up_at = ?, last_error = 'the webhook was removed'
           WHERE webhook_id = ? AND delivered_at IS NULL AND given_up_at IS NULL RETURNING id""",
        [at, webhook_id]).fetchall()
    conn.execute("DELETE FROM webhooks WHERE id = ?", [webhook_id])
    return len(pending)


def subscribed(conn: duckdb.DuckDBPyConnection, event: str, dataset_id: int | None) -> bool:
    """Whether a webhook (enabled or paused) takes this event for this dataset."""
    return conn.execute(
        """SELECT count(*) FROM webhooks WHERE list_contains(events, ?)
           AND (dataset_id IS NULL OR dataset_id = ?)""", [event, dataset_id]).fetchall()[0][0] > 0


def _iso(at: datetime) -> str:
    """A time with its UTC offset (the app's clock is the server's local time, without one)."""
    return (at.astimezone() if at.tzinfo is None else at).isoformat()


def _plain(value: Any) -> Any:
    """What json.dumps cannot write by itself: NumPy scalars, times."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (datetime, pd.Timestamp)):
        return _iso(value)
    return str(value)


def enqueue(conn: duckdb.DuckDBPyConnection, event: str, dataset_id: int | None, dataset: str | None,
            items: list[dict[str, Any]], at: datetime) -> int:
    """Write one event per item to the outbox, one row per webhook subscribed to it (same event id
    for every webhook; a paused one's wait there), in the caller's transaction. Returns the rows written."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    if not items:
        return 0
    ids = [uuid.uuid4().hex for _ in items]
    payloads = [json.dumps({"id": i, "type": event, "created_at": _iso(at), "dataset": dataset, "data": item},
                           default=_plain, sort_keys=True) for i, item in zip(ids, items, strict=True)]
    found = conn.execute(
        """INSERT INTO webhook_outbox
           SELECT nextval('webhook_delivery_ids'), e.event_id, w.id, $event, $dataset, e.payload, $at, 0, $at,
                  NULL, NULL, NULL, NULL
           FROM (SELECT unnest($ids::VARCHAR[]) AS event_id, unnest($payloads::VARCHAR[]) AS payload) e, webhooks w
           WHERE list_contains(w.events, $event) AND (w.dataset_id IS NULL OR w.dataset_id = $dataset)
           RETURNING id""",
        {"event": event, "dataset": dataset_id, "at": at, "ids": ids, "payloads": payloads}).fetchall()
    return len(found)


def capped_ids(ids: list[str]) -> dict[str, Any]:
    """The transaction ids an event names: all of them up to MAX_IDS, and always the count."""
    return {"transaction_ids": ids[:MAX_IDS], "count": len(ids), "truncated": len(ids) > MAX_IDS}


@dataclass(frozen=True)
class Delivery:
    id: int
    event_id: str
    event: str
    payload: str
    attempts: int
    webhook_id: int
    webhook: str
    url: str
    secret: str


_PENDING = "o.delivered_at IS NULL AND o.given_up_at IS NULL"


def due_webhooks(conn: duckdb.DuckDBPyConnection, now: datetime, skip: set[int]) -> list[int]:
    """Enabled webhooks with an event due now, but those in `skip` (backing off, or being served).
    About 4 ms with 2 million deliveries kept for the log (2 cores)."""
    return [int(r[0]) for r in conn.execute(
        f"""SELECT DISTINCT o.webhook_id
            FROM (SELECT webhook_id FROM webhook_outbox o WHERE {_PENDING} AND o.next_attempt_at <= ?) o
            JOIN webhooks w ON w.id = o.webhook_id AND w.enabled
            WHERE NOT list_contains(?, o.webhook_id) ORDER BY 1""", [now, sorted(skip)]).fetchall()]


def due(conn: duckdb.DuckDBPyConnection, webhook_id: int, now: datetime, limit: int = 100) -> list[Delivery]:
    """One enabled webhook's undelivered events whose next attempt is due, oldest first."""
    rows = fetch_records(
        conn,
        f"""SELECT o.id, o.event_id, o.event, o.payload, o.attempts, w.id AS webhook_id, w.name AS webhook, w.url,
                   w.secret
            FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id AND w.enabled
            WHERE o.webhook_id = ? AND {_PENDING} AND o.next_attempt_at <= ?
            ORDER BY o.id LIMIT ?""", [int(webhook_id), now, int(limit)])
    return [Delivery(**r) for r in rows]


@dataclass(frozen=True)
class Attempt:
    delivery: Delivery
    at: datetime
    status: int | None
    error: str | None
    milliseconds: float
    retry_at: datetime | None  # None and not delivered: given up

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def record_attempts(conn: duckdb.DuckDBPyConnection, attempts: list[Attempt]) -> None:
    """Attempts and what each leaves: delivered (a 2xx status), due again at `retry_at`, or given
    up (no `retry_at`). One transaction, so the log and the outbox agree."""
    if not attempts:
        return
    frame = pd.DataFrame({
        "id": [a.delivery.id for a in attempts], "attempt": [a.delivery.attempts + 1 for a in attempts],
        "attempted_at": [a.at for a in attempts], "status": pd.array([a.status for a in attempts], dtype="Int32"),
        "error": [None if a.error is None else a.error[:500] for a in attempts],
        "milliseconds": [float(a.milliseconds) for a in attempts], "delivered": [a.delivered for a in attempts],
        "retry_at": pd.to_datetime(pd.Series([a.retry_at for a in attempts], dtype="object")),
    })
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.register("webhook_attempts_new", frame)
        conn.execute("INSERT INTO webhook_attempts SELECT id, attempt, attempted_at, status, error, milliseconds "
                     "FROM webhook_attempts_new")
        conn.execute(
            """UPDATE webhook_outbox o SET attempts = n.attempt, last_status = n.status, last_error = n.error,
                      delivered_at = CASE WHEN n.delivered THEN n.attempted_at END,
                      given_up_at = CASE WHEN NOT n.delivered AND n.retry_at IS NULL THEN n.attempted_at END,
                      next_attempt_at = coalesce(n.retry_at, o.next_attempt_at)
               FROM webhook_attempts_new n WHERE o.id = n.id""")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("webhook_attempts_new")


def requeue(conn: duckdb.DuckDBPyConnection, delivery_id: int, at: datetime) -> dict[str, Any]:
    """Send one event again now, as a new delivery of the same event (same id and body, attempts
    from zero; the first delivery keeps its log). Returns the new delivery."""
    found = fetch_records(conn, "SELECT o.id, o.event_id, o.event, o.webhook_id, o.delivered_at, o.given_up_at, "
                                "w.name AS webhook FROM webhook_outbox o LEFT JOIN webhooks w ON w.id = o.webhook_id "
                                "WHERE o.id = ?", [int(delivery_id)])
    if not found:
        raise NotFound(f"there is no webhook delivery #{delivery_id}.", field="delivery")
    if found[0]["webhook"] is None:
        raise Conflict(f"the webhook of delivery #{delivery_id} was removed.", field="delivery",
                       hint="Add the webhook again; its new events are delivered to it.")
    new_id = conn.execute(
        """INSERT INTO webhook_outbox SELECT nextval('webhook_delivery_ids'), event_id, webhook_id, event, dataset_id,
                  payload, ?, 0, ?, NULL, NULL, NULL, NULL FROM webhook_outbox WHERE id = ? RETURNING id""",
        [at, at, int(delivery_id)]).fetchall()[0][0]
    return {**found[0], "id": int(new_id), "again": int(delivery_id)}


_STATE = """CASE WHEN o.delivered_at IS NOT NULL THEN 'delivered' WHEN o.given_up_at IS NOT NULL THEN 'failed'
                 WHEN o.attempts = 0 THEN 'pending' ELSE 'retrying' END"""


def delivery_log(conn: duckdb.DuckDBPyConnection, webhook: str | None = None, state: str | None = None,
                 limit: int = 500) -> pd.DataFrame:
    """The newest deliveries with their state (pending, retrying, delivered, failed), newest first."""
    return conn.execute(
        f"""SELECT o.id AS delivery, o.created_at AS "when", coalesce(w.name, '(removed)') AS webhook, o.event,
                   d.name AS dataset, {_STATE} AS state, o.attempts, o.last_status AS status, o.last_error AS error,
                   o.delivered_at, CASE WHEN o.delivered_at IS NULL AND o.given_up_at IS NULL
                                        THEN o.next_attempt_at END AS next_attempt_at, o.event_id
            FROM webhook_outbox o LEFT JOIN webhooks w ON w.id = o.webhook_id
            LEFT JOIN datasets d ON d.id = o.dataset_id
            WHERE (CAST($webhook AS VARCHAR) IS NULL OR w.name = $webhook)
              AND (CAST($state AS VARCHAR) IS NULL OR {_STATE} = $state)
            ORDER BY o.id DESC LIMIT $limit""",
        {"webhook": webhook, "state": state, "limit": int(limit)}).df()


def attempts_of(conn: duckdb.DuckDBPyConnection, delivery_id: int) -> pd.DataFrame:
    return conn.execute("SELECT attempt, attempted_at, status, error, milliseconds FROM webhook_attempts "
                        "WHERE delivery_id = ? ORDER BY attempt", [int(delivery_id)]).df()


def counts(conn: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Per webhook name: deliveries by state."""
    rows = conn.execute(
        f"""SELECT w.name, {_STATE} AS state, count(*) FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id
            GROUP BY ALL""").fetchall()
    found: dict[str, dict[str, int]] = {}
    for name, state, n in rows:
        found.setdefault(name, {})[state] = int(n)
    return found


def prune(conn: duckdb.DuckDBPyConnection, before: datetime) -> int:
    """Forget deliveries that were delivered before `before` (and their attempts)."""
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("DELETE FROM webhook_attempts WHERE delivery_id IN "
                     "(SELECT id FROM webhook_outbox WHERE delivered_at < ?)", [before])
        gone = conn.execute("DELETE FROM webhook_outbox WHERE delivered_at < ? RETURNING id", [before]).fetchall()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(gone)


def retry_delay(attempt: int, base_seconds: float, cap_seconds: float = 3_600.0) -> timedelta:
    """Exponential back-off: base, 2 x base, 4 x base, ... up to the cap, after attempt `attempt` (1 = first)."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2 ** max(0, attempt - 1)))
