"""Transactions from a Kafka topic: an admin configures a consumer per dataset; the server's
consumer (integrations/kafka.py) hands each polled batch of messages to `score_messages`, which
scores them through the HTTP API's own path (`live.score`: the same checks, features, model,
rules and idempotency on transaction_id) and says which messages are dead letters and why."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from application import live
from application.context import Context
from application.datasets import DatasetRef
from application.rules import require_role
from data import kafka_consumers as store
from data.audit import record
from data.errors import Conflict, InvalidInput, UserError

MAX_MESSAGE = 64 * 1024  # bytes: one transaction is well under 1 KiB; a bigger message is not one


@dataclass(frozen=True)
class DeadLetter:
    index: int  # the message's place in the polled batch
    reason: str
    field: str | None = None


@dataclass
class ScoredMessages:
    decisions: dict[int, dict[str, Any]] = field(default_factory=dict)  # message index -> its decision
    dead: list[DeadLetter] = field(default_factory=list)
    stored: int = 0
    alerts: int = 0
    new_scores: list[float] = field(default_factory=list)


def configure_consumer(ctx: Context, dataset: DatasetRef, bootstrap: str, topic: str, group: str | None = None,
                       decisions_topic: str | None = None, dead_letter_topic: str | None = None) -> store.ConsumerSettings:
    """Set (or replace) the dataset's consumer and start it: the server runs it within seconds."""
    require_role(ctx, ("admin",), "configure Kafka consumers")
    target = ctx.dataset(dataset)
    topic = store.check_topic(topic, "topic")
    settings = store.ConsumerSettings(
        target.id, target.name, store.check_bootstrap(bootstrap), topic,
        store.check_topic(group or f"centinela-{target.name}", "group"),
        store.check_topic(decisions_topic, "decisions_topic") if decisions_topic else None,
        store.check_topic(dead_letter_topic or f"{topic[:237]}.dead-letter", "dead_letter_topic"),
        True, ctx.clock(), ctx.actor)
    if settings.dead_letter_topic == topic or settings.decisions_topic == topic:
        raise InvalidInput("the decisions and dead-letter topics must differ from the topic read.",
                           field="dead_letter_topic" if settings.dead_letter_topic == topic else "decisions_topic")
    if settings.decisions_topic == settings.dead_letter_topic:
        raise InvalidInput("the decisions topic and the dead-letter topic must differ.", field="dead_letter_topic")
    with ctx.unit_of_work() as conn:
        before = store.get_consumer(conn, target.id)
        store.save(conn, settings)
        record(conn, ctx.actor, "kafka_consumer_set", dataset_id=target.id, target=topic,
               before=before.as_dict() if before else None, after=settings.as_dict())
    return settings


def stop_consumer(ctx: Context, dataset: DatasetRef) -> store.ConsumerSettings:
    """Stop the dataset's consumer (its settings are kept; `configure_consumer` starts it again)."""
    require_role(ctx, ("admin",), "stop Kafka consumers")
    target = ctx.dataset(dataset)
    with ctx.unit_of_work() as conn:
        before = store.get_consumer(conn, target.id)
        if before is None or not before.enabled:
            raise Conflict(f"dataset {target.name!r} has no running Kafka consumer.", field="dataset")
        stopped = replace(before, enabled=False, updated_at=ctx.clock(), updated_by=ctx.actor)
        store.save(conn, stopped)
        record(conn, ctx.actor, "kafka_consumer_stop", dataset_id=target.id, target=before.topic,
               before=before.as_dict())
    return stopped


def list_consumers(ctx: Context) -> list[store.ConsumerSettings]:
    return store.list_consumers(ctx.conn)


def parse_message(value: bytes | None) -> dict[str, Any]:
    """One message's transaction (a JSON object), or InvalidInput saying why it is not one."""
    if value is None:
        raise InvalidInput("the message has no value.", field="value")
    if len(value) > MAX_MESSAGE:
        raise InvalidInput(f"the message is {len(value):,} bytes; a transaction is at most {MAX_MESSAGE:,}.", field="value")
    try:
        parsed = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the message is not UTF-8 text (byte {exc.start}).", field="value") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput(f"the message is not valid JSON ({getattr(exc, 'msg', 'nested too deeply')}).",
                           field="value") from None
    if not isinstance(parsed, dict):
        raise InvalidInput(f"the message must be a JSON object of fields, not {type(parsed).__name__}.", field="value")
    return parsed


def _rounds(parsed: list[tuple[int, dict[str, Any]]]) -> list[list[tuple[int, dict[str, Any]]]]:
    """Messages split so no round holds one transaction id twice (a batch may not), in order: a
    message sent again inside one poll is then a retry of the round before it."""
    rounds: list[list[tuple[int, dict[str, Any]]]] = []
    seen: dict[str, int] = {}
    for index, item in parsed:
        tx = item.get("transaction_id")
        tx = tx.strip() if isinstance(tx, str) else tx  # as the checks read it
        k = seen.get(tx, 0) if isinstance(tx, str) else 0
        if isinstance(tx, str):
            seen[tx] = k + 1
        while len(rounds) <= k:
            rounds.append([])
        rounds[k].append((index, item))
    return rounds


def score_messages(ctx: Context, dataset: DatasetRef, values: list[bytes | None], *, source: str,
                   check: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> ScoredMessages:
    """Score a polled batch of messages as `source` (how the decisions say they arrived), each
    transaction first checked by `check` (the front end's schema: the API's for the consumer): each
    round is one unit of work through `live.score`; a message the checks refuse is a dead letter
    (named by its index and field) and the rest are scored without it. A problem that is not a
    message's (no such dataset, no active model) is raised: nothing is stored, the batch is not
    consumed."""
    out = ScoredMessages()
    parsed: list[tuple[int, dict[str, Any]]] = []
    for index, value in enumerate(values):
        try:
            parsed.append((index, check(parse_message(value))))
        except InvalidInput as exc:
            out.dead.append(DeadLetter(index, exc.problem, exc.field))
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. an integer of 5,000 digits
            out.dead.append(DeadLetter(index, f"the message could not be read ({type(exc).__name__}: {str(exc)[:200]}).",
                                       "value"))
    for batch in _rounds(parsed):
        _score_round(ctx, dataset, batch, source, out)
    out.dead.sort(key=lambda d: d.index)
    return out


def _score_round(ctx: Context, dataset: DatasetRef, batch: list[tuple[int, dict[str, Any]]], source: str,
                 out: ScoredMessages) -> None:
    """One round (no id twice) as one unit of work; each refused message out, the rest again."""
    while batch:
        try:
            scored = live.score(ctx, dataset, [item for _, item in batch], api_key=source)
        except UserError as exc:
            if exc.item is None or not 0 <= exc.item < len(batch):
                raise
            index, _ = batch.pop(exc.item)
            out.dead.append(DeadLetter(index, exc.problem, exc.field or exc.column))
            continue
        except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
            # A value the checks let through and scoring could not take (a bug to fix, but never a
            # consumer stuck on one message): find it by scoring the round one message at a time.
            # A database or broker problem is not caught here: it is raised, and nothing is consumed.
            if len(batch) == 1:
                out.dead.append(DeadLetter(batch[0][0], f"the transaction could not be scored ({type(exc).__name__}: "
                                                        f"{str(exc)[:200]}).", None))
                return
            for single in batch:
                _score_round(ctx, dataset, [single], source, out)
            return
        for (index, _), decision in zip(batch, scored.decisions, strict=True):
            out.decisions[index] = decision
        out.stored += scored.stored
        out.alerts += scored.alerts
        out.new_scores += scored.new_scores
        return
