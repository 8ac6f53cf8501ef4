"""Kafka consumers inside the server process (the one that owns the database).

One thread per configured dataset polls its topic with a consumer group (confluent-kafka),
scores each polled batch through `application.streams.score_messages` (the HTTP API's own path),
publishes every decision to the decisions topic and every refused message to the dead-letter
topic with its reason, waits until the broker has them all, and only then commits the offsets.
A crash anywhere before that commit makes the broker hand the messages out again; the retried
transaction ids then return their stored decisions (stored once, published again: at least once
on the topics, exactly once in the database).

A supervisor thread reads the settings every few seconds, so a consumer configured on a page or
from the command line starts (or stops) without a restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from api import metrics
from api.schemas import decision_json, transaction_item
from application import streams
from application.context import Context
from data.db import database_path, thread_cursor
from data.kafka_consumers import ConsumerSettings, list_consumers

LOG = logging.getLogger(__name__)
POLL_MESSAGES = 1_000  # per poll: one unit of work scores up to this many (the API's batches go to 10,000)
POLL_SECONDS = 0.25  # how long a poll waits for a first message (then takes what else is there, without waiting)
RECONCILE_SECONDS = 2.0
PAUSE_SECONDS = 5.0  # after a problem that is not a message's (the model, the broker), before trying again
FLUSH_SECONDS = 30.0
LAG_SECONDS = 2.0


@dataclass
class ConsumerStatus:
    """What /metrics and the page show of one consumer (updated by its thread)."""

    dataset: str
    topic: str
    consumed: int = 0
    dead_lettered: int = 0
    published: int = 0
    stored: int = 0
    lag: int | None = None
    state: str = "starting"
    last_error: str | None = None
    last_batch_at: float | None = None
    partitions: dict[int, int] = field(default_factory=dict)  # partition -> lag


def _client_settings(settings: ConsumerSettings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap, "client.id": f"centinela-{settings.dataset}"}


def consumer_config(settings: ConsumerSettings) -> dict[str, Any]:
    return {**_client_settings(settings), "group.id": settings.group_id, "auto.offset.reset": "earliest",
            # Offsets are committed by hand, after the decisions are stored and published.
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            # A killed server's partitions go to its successor within seconds, not after the 45 s default.
            "session.timeout.ms": 6_000, "heartbeat.interval.ms": 500,
            # Some brokers (tansu, measured) hold every fetch this long even when data is there: it
            # adds up to this much latency (500 ms by default); 10 ms costs 100 idle fetches a second.
            "fetch.wait.max.ms": 10,
            "max.poll.interval.ms": 300_000}


def producer_config(settings: ConsumerSettings) -> dict[str, Any]:
    # A message the broker has not taken within 20 s fails (reported to on_delivery), inside the
    # worker's 30 s flush: no offset is committed past a decision that was not published.
    return {**_client_settings(settings), "linger.ms": 2, "enable.idempotence": False, "acks": "all",
            "message.timeout.ms": 20_000}


def _json(value: Any) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


class ConsumerWorker(threading.Thread):
    """One dataset's consumer; `stop()` ends it after the batch in hand."""

    def __init__(self, settings: ConsumerSettings, database: str):
        super().__init__(name=f"kafka-{settings.dataset}", daemon=True)
        self.settings, self.database = settings, database
        self.status = ConsumerStatus(settings.dataset, settings.topic)
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def _client_error(self, error) -> None:
        LOG.warning("Kafka consumer of dataset %r: %s", self.settings.dataset, error)
        self.status.last_error = str(error)[:500]

    def run(self) -> None:
        from confluent_kafka import Consumer, Producer

        while not self._halt.is_set():
            consumer = producer = None
            try:
                consumer = Consumer({**consumer_config(self.settings), "error_cb": self._client_error})
                producer = Producer({**producer_config(self.settings), "error_cb": self._client_error})
                consumer.subscribe([self.settings.topic])
                self.status.state, lag_at = "running", 0.0
                while not self._halt.is_set():
                    # Wait for one message, then take what else has arrived without waiting: a
                    # batch is what came while the last one was scored (consume(N, t) would wait
                    # out t whenever fewer than N are there: 50 ms of latency for nothing).
                    messages = consumer.consume(1, POLL_SECONDS)
                    if messages:
                        messages += consumer.consume(POLL_MESSAGES - 1, 0)
                    if messages:
                        self._handle(consumer, producer, messages)
                    if time.monotonic() - lag_at > LAG_SECONDS:
                        self._measure_lag(consumer)
                        lag_at = time.monotonic()
            except Exception as exc:  # a broker, model or database problem: said, then tried again
                LOG.exception("Kafka consumer of dataset %r: %s", self.settings.dataset, exc)
                self.status.state, self.status.last_error = "paused", str(exc)[:500]
                self._halt.wait(PAUSE_SECONDS)
            finally:
                if consumer is not None:
                    consumer.close()  # leaves the group; nothing uncommitted is committed
        self.status.state = "stopped"

    def _handle(self, consumer, producer, messages) -> None:
        """Score one poll, publish its decisions and dead letters, and commit only once the broker
        has them all; anything failing on the way raises before the commit, and the worker starts
        a fresh consumer, which is handed the uncommitted messages again."""
        from confluent_kafka import KafkaException, TopicPartition

        records = []
        for m in messages:
            error = m.error()
            if error is None:
                records.append(m)
            elif error.fatal():
                raise KafkaException(error)
            else:  # partition end, a transient broker error: no message to score
                LOG.info("Kafka consumer of dataset %r: %s", self.settings.dataset, error)
        if not records:
            return
        ctx = Context(thread_cursor(), f"kafka:{self.settings.topic}", database=self.database)
        scored = streams.score_messages(ctx, self.settings.dataset, [m.value() for m in records],
                                        source=f"kafka:{self.settings.topic}", check=transaction_item)
        failed: list[str] = []

        def delivered(error, _message) -> None:
            if error is not None:
                failed.append(str(error))

        if self.settings.decisions_topic:
            for decision in scored.decisions.values():
                producer.produce(self.settings.decisions_topic, key=str(decision["transaction_id"]).encode(),
                                 value=_json(decision_json(decision, dataset=self.settings.dataset)),
                                 on_delivery=delivered)
                producer.poll(0)
        for dead in scored.dead:
            m = records[dead.index]
            raw = m.value() or b""
            producer.produce(self.settings.dead_letter_topic, key=m.key(), value=_json({
                "reason": dead.reason, "field": dead.field, "dataset": self.settings.dataset,
                "topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                "value": raw[:streams.MAX_MESSAGE].decode("utf-8", errors="replace")}),
                headers={"centinela-reason": dead.reason[:500].encode()}, on_delivery=delivered)
            producer.poll(0)
        left = producer.flush(FLUSH_SECONDS)
        if left or failed:
            raise KafkaException(f"{left} messages were not acknowledged by the broker in {FLUSH_SECONDS:.0f} s"
                                 if left else f"{len(failed)} messages were not published: {failed[0]}")
        # The next offset to read, per partition still assigned (a partition revoked meanwhile is
        # read again by its next owner: its transactions are retries there).
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        following: dict[tuple[str, int], int] = {}
        for m in records:
            where = (m.topic(), m.partition())
            following[where] = max(following.get(where, 0), m.offset() + 1)
        offsets = [TopicPartition(t, p, o) for (t, p), o in following.items() if (t, p) in assigned]
        if offsets:
            for committed in consumer.commit(offsets=offsets, asynchronous=False) or []:
                if committed.error is not None:
                    raise KafkaException(committed.error)
        published = len(scored.decisions) if self.settings.decisions_topic else 0
        self.status.consumed += len(records)
        self.status.dead_lettered += len(scored.dead)
        self.status.published += published
        self.status.stored += scored.stored
        self.status.last_batch_at, self.status.last_error = time.time(), None
        metrics.observe_scored(self.settings.dataset, scored.new_scores, scored.alerts)
        metrics.observe_kafka(self.settings.dataset, self.settings.topic, len(records), len(scored.dead), published)

    def _measure_lag(self, consumer) -> None:
        total, lags = 0, {}
        try:
            assigned = consumer.assignment()
            positions = consumer.position(assigned) if assigned else []
            if any(tp.offset < 0 for tp in positions):
                return  # not fetched yet (after a start or a rebalance): no figure rather than a wrong one
            for tp in positions:
                _, high = consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
                lags[tp.partition] = max(0, high - tp.offset)
                total += lags[tp.partition]
        except Exception as exc:
            LOG.debug("lag of %r not measured: %s", self.settings.topic, exc)
            return
        self.status.lag, self.status.partitions = total, lags


class Supervisor(threading.Thread):
    """Keeps one running worker per enabled consumer setting, started and stopped as they change."""

    def __init__(self, database: str | None = None):
        super().__init__(name="kafka-supervisor", daemon=True)
        self.database = database or str(database_path().resolve())
        self.workers: dict[int, ConsumerWorker] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.reconcile()
            except Exception:
                LOG.exception("Kafka supervisor: the consumers' settings could not be read")
            self._halt.wait(RECONCILE_SECONDS)
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.join(timeout=FLUSH_SECONDS)

    def reconcile(self) -> None:
        wanted = {s.dataset_id: s for s in list_consumers(thread_cursor()) if s.enabled}
        for dataset_id, worker in list(self.workers.items()):
            if wanted.get(dataset_id) != worker.settings or not worker.is_alive():
                worker.stop()
                worker.join(timeout=FLUSH_SECONDS)
                if worker.is_alive():  # still finishing its batch: replaced at a later round, never beside it
                    continue
                del self.workers[dataset_id]
        for dataset_id, settings in wanted.items():
            if dataset_id not in self.workers:
                worker = self.workers[dataset_id] = ConsumerWorker(settings, self.database)
                worker.start()
                LOG.info("Kafka consumer of dataset %r started on %s/%s", settings.dataset, settings.bootstrap,
                         settings.topic)

    def stop(self) -> None:
        self._halt.set()

    def statuses(self) -> list[ConsumerStatus]:
        return [w.status for w in list(self.workers.values())]


_SUPERVISOR: Supervisor | None = None


def start() -> Supervisor:
    """Start the process's supervisor (once)."""
    global _SUPERVISOR
    if _SUPERVISOR is None or not _SUPERVISOR.is_alive():
        _SUPERVISOR = Supervisor()
        _SUPERVISOR.start()
    return _SUPERVISOR


def stop() -> None:
    global _SUPERVISOR
    if _SUPERVISOR is not None:
        _SUPERVISOR.stop()
        _SUPERVISOR.join(timeout=FLUSH_SECONDS + 5)
        _SUPERVISOR = None


def statuses() -> list[ConsumerStatus]:
    """The running consumers' figures (none when the supervisor is not running here)."""
    return _SUPERVISOR.statuses() if _SUPERVISOR is not None else []
