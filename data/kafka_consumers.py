"""Kafka consumers' settings, one per dataset: where to read transactions and where to write
decisions and dead letters. The server process runs them (integrations/kafka.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from data.db import fetch_records
from data.errors import InvalidInput

# Kafka's own rule for topic names (and what a group id of ours may be): 1-249 of these.
TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
# host:port, comma-separated; a host is a name, an IPv4 address or a bracketed IPv6 address.
SERVER_PATTERN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]{0,252}):([0-9]{1,5})$")


@dataclass(frozen=True)
class ConsumerSettings:
    dataset_id: int
    dataset: str
    bootstrap: str
    topic: str
    group_id: str
    decisions_topic: str | None
    dead_letter_topic: str
    enabled: bool
    updated_at: datetime
    updated_by: str

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "bootstrap": self.bootstrap, "topic": self.topic, "group": self.group_id,
                "decisions_topic": self.decisions_topic, "dead_letter_topic": self.dead_letter_topic,
                "enabled": self.enabled, "updated_at": self.updated_at, "updated_by": self.updated_by}


def check_bootstrap(value: str) -> str:
    servers = [s.strip() for s in (value or "").split(",") if s.strip()]
    if not servers:
        raise InvalidInput("give the broker as HOST:PORT (several separated by commas).", field="bootstrap")
    for server in servers:
        match = SERVER_PATTERN.match(server)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise InvalidInput(f"{server[:80]!r} is not HOST:PORT.", field="bootstrap",
                               hint="For example 127.0.0.1:9092 or kafka-1.bank.pe:9092,kafka-2.bank.pe:9092")
    return ",".join(servers)


def check_topic(value: str, field: str) -> str:
    text = (value or "").strip()
    if not TOPIC_PATTERN.match(text) or text in (".", ".."):
        raise InvalidInput(f"{text[:80]!r} is not a Kafka topic name.", field=field,
                           hint="Use 1-249 letters, digits, dots, dashes or underscores.")
    return text


_SELECT = """SELECT k.dataset_id, d.name AS dataset, k.bootstrap, k.topic, k.group_id, k.decisions_topic,
                    k.dead_letter_topic, k.enabled, k.updated_at, k.updated_by
             FROM kafka_consumers k JOIN datasets d ON d.id = k.dataset_id AND d.deleted_at IS NULL"""


def list_consumers(conn: duckdb.DuckDBPyConnection) -> list[ConsumerSettings]:
    """Every configured consumer of a live dataset, by dataset name."""
    return [ConsumerSettings(**r) for r in fetch_records(conn, _SELECT + " ORDER BY d.name")]


def get_consumer(conn: duckdb.DuckDBPyConnection, dataset_id: int) -> ConsumerSettings | None:
    found = fetch_records(conn, _SELECT + " WHERE k.dataset_id = ?", [dataset_id])
    return ConsumerSettings(**found[0]) if found else None


def save(conn: duckdb.DuckDBPyConnection, settings: ConsumerSettings) -> None:
    conn.execute("DELETE FROM kafka_consumers WHERE dataset_id = ?", [settings.dataset_id])
    conn.execute("INSERT INTO kafka_consumers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [settings.dataset_id, settings.bootstrap, settings.topic, settings.group_id, settings.decisions_topic,
                  settings.dead_letter_topic, settings.enabled, settings.updated_at, settings.updated_by])
