"""The webhook dispatcher, inside the server process (the one that owns the database).

A thread reads the outbox (data.webhooks) five times a second and POSTs each due event to its
webhook's URL, signed:

    Centinela-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>

(the receiver recomputes it over the raw body and compares in constant time; `t` lets it refuse
old replays). `Centinela-Event-Id` is the event's id, the same on every retry, for receivers that
keep what they have seen. A 2xx answer marks the event delivered; anything else (an error
status, a refused connection, no answer within the timeout) is an attempt in the log and the event
is tried again after an exponential back-off, until the last attempt gives it up (an admin can
send it again). Events are marked delivered only after the answer, and outcomes are recorded
in small batches (every 100 or half second), so a server killed in between sends those events
again when it restarts: at least once, never lost; once under normal operation. While a
webhook is failing, its other events wait behind its back-off instead of each trying (one
request per back-off step, not one per event).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx

from api import metrics
from data import webhooks as store
from data.db import thread_cursor

LOG = logging.getLogger(__name__)
POLL_SECONDS = 0.2  # a read of the outbox: about 4 ms with 2 million deliveries kept (data.webhooks.due_webhooks)
TIMEOUT_SECONDS = float(os.environ.get("CENTINELA_WEBHOOK_TIMEOUT_S", "10"))
RETRY_SECONDS = float(os.environ.get("CENTINELA_WEBHOOK_RETRY_S", "10"))  # the first back-off; then doubled, up to 1 h
ATTEMPTS = int(os.environ.get("CENTINELA_WEBHOOK_ATTEMPTS", "16"))  # about 8 hours of trying at the defaults
KEEP_DAYS = int(os.environ.get("CENTINELA_WEBHOOK_KEEP_DAYS", "14"))  # delivered events kept for the log
RECORD_EVERY, RECORD_SECONDS = 100, 0.5  # outcomes written in one transaction per this many, or this often
PARALLEL = 4  # webhooks delivered to at once (each one's events in order, one at a time)
USER_AGENT = "Centinela-Webhooks/1"


def signature(secret: str, body: bytes, at: int) -> str:
    """The `Centinela-Signature` header's value for `body` sent at unix time `at`."""
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def headers(delivery: store.Delivery, body: bytes, at: int) -> dict[str, str]:
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, "Centinela-Event": delivery.event,
            "Centinela-Event-Id": delivery.event_id, "Centinela-Delivery": str(delivery.id),
            "Centinela-Signature": signature(delivery.secret, body, at)}


class Dispatcher(threading.Thread):
    """Every poll, one task per webhook with events due (not backing off, not already being
    served) delivers that webhook's events in order until none is due or one fails; a slow or
    failing receiver holds up only its own webhook."""

    def __init__(self, database: str | None = None) -> None:
        super().__init__(name="webhook-dispatcher", daemon=True)
        self.database = database  # None: $CENTINELA_DB, as the server's pages and API
        self._halt = threading.Event()
        self._blocked: dict[int, float] = {}  # webhook id -> monotonic time its back-off ends
        self._serving: set[int] = set()  # webhooks a task is delivering to now
        self._pruned = 0.0
        self.delivered = 0
        self.failed_attempts = 0
        self.client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False)

    def run(self) -> None:
        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="webhook") as pool:
            while not self._halt.is_set():
                try:
                    self.dispatch(pool)
                    self._prune()
                except Exception:
                    LOG.exception("webhooks: the outbox could not be read")
                self._halt.wait(POLL_SECONDS)
        self.client.close()

    def dispatch(self, pool: ThreadPoolExecutor) -> list[Future]:
        """Start a task for each webhook with events due now; returns the tasks started."""
        conn = thread_cursor(self.database)
        now = time.monotonic()
        skip = {w for w, until in list(self._blocked.items()) if until > now} | set(self._serving)
        started = []
        for webhook_id in store.due_webhooks(conn, datetime.now(), skip):
            self._serving.add(webhook_id)
            task = pool.submit(self._serve, webhook_id)
            task.add_done_callback(lambda _, w=webhook_id: self._serving.discard(w))
            started.append(task)
        return started

    def deliver_due(self, pool: ThreadPoolExecutor) -> int:
        """Deliver what is due now and wait for it; returns how many were delivered."""
        return sum(task.result() for task in self.dispatch(pool))

    def _serve(self, webhook_id: int) -> int:
        delivered = 0
        try:
            while not self._halt.is_set():
                batch = store.due(thread_cursor(self.database), webhook_id, datetime.now())
                if not batch:
                    break
                sent, all_ok = self._deliver_in_order(batch)
                delivered += sent
                if not all_ok:
                    break
        except Exception:  # the database refused a read or a write: tried again at the next poll
            LOG.exception("webhooks: delivering to webhook #%s stopped", webhook_id)
        return delivered

    def _deliver_in_order(self, deliveries: list[store.Delivery]) -> tuple[int, bool]:
        """One webhook's due events, oldest first, until one fails (the others wait behind its
        back-off). Outcomes are recorded in batches (one transaction each), not one by one.
        Returns how many were delivered and whether all of them were."""
        done: list[store.Attempt] = []
        delivered, last_write = 0, time.monotonic()
        try:
            for delivery in deliveries:
                if self._halt.is_set():
                    return delivered, False
                attempt = self.attempt(delivery)
                done.append(attempt)
                if len(done) >= RECORD_EVERY or time.monotonic() - last_write > RECORD_SECONDS:
                    store.record_attempts(thread_cursor(self.database), done)
                    done, last_write = [], time.monotonic()
                if not attempt.delivered:
                    return delivered, False
                delivered += 1
        finally:
            store.record_attempts(thread_cursor(self.database), done)
        return delivered, True

    def attempt(self, delivery: store.Delivery) -> store.Attempt:
        """POST one event; what came of it (not yet recorded)."""
        body = delivery.payload.encode()
        started, at = time.perf_counter(), datetime.now()
        status, error = None, None
        try:
            with self.client.stream("POST", delivery.url, content=body,
                                    headers=headers(delivery, body, int(time.time()))) as answer:
                status = answer.status_code
                if not 200 <= status < 300:  # the start of what it said, for the log; the rest is not read
                    said = next(answer.iter_bytes(200), b"")[:200].decode("utf-8", "replace")
                    error = f"HTTP {status}: {said}"
        except Exception as exc:  # refused, timed out, or a URL the client cannot send to: a failed attempt
            error = f"{type(exc).__name__}: {exc}"[:500]
        milliseconds = (time.perf_counter() - started) * 1000
        attempt_number = delivery.attempts + 1
        retry_at = (None if error is None or attempt_number >= ATTEMPTS
                    else at + store.retry_delay(attempt_number, RETRY_SECONDS))
        outcome = store.Attempt(delivery, at, status, error, milliseconds, retry_at)
        metrics.WEBHOOK_ATTEMPTS.labels(delivery.webhook, "delivered" if outcome.delivered else
                                        "failed" if retry_at else "given_up").inc()
        if outcome.delivered:
            self.delivered += 1
            self._blocked.pop(delivery.webhook_id, None)
        else:
            self.failed_attempts += 1
            wait = (retry_at - at).total_seconds() if retry_at else RETRY_SECONDS
            self._blocked[delivery.webhook_id] = time.monotonic() + wait
            LOG.info("webhook %r: delivery #%s failed (attempt %s%s): %s", delivery.webhook, delivery.id,
                     attempt_number, "" if retry_at else ", given up", error)
        return outcome

    def _prune(self) -> None:
        if time.monotonic() - self._pruned < 3_600:
            return
        self._pruned = time.monotonic()
        gone = store.prune(thread_cursor(self.database), datetime.now() - timedelta(days=KEEP_DAYS))
        if gone:
            LOG.info("webhooks: forgot %s events delivered more than %s days ago", f"{gone:,}", KEEP_DAYS)

    def stop(self) -> None:
        self._halt.set()


_DISPATCHER: Dispatcher | None = None


def start() -> Dispatcher:
    """Start the process's dispatcher (once)."""
    global _DISPATCHER
    if _DISPATCHER is None or not _DISPATCHER.is_alive():
        _DISPATCHER = Dispatcher()
        _DISPATCHER.start()
    return _DISPATCHER


def stop() -> None:
    global _DISPATCHER
    if _DISPATCHER is not None:
        _DISPATCHER.stop()
        _DISPATCHER.join(timeout=TIMEOUT_SECONDS + 5)
        _DISPATCHER = None
