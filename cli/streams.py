"""`centinela consume`: set, stop or list a dataset's Kafka consumer (the server runs it)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from application.context import Context
from data.errors import InvalidInput


def register(commands: argparse._SubParsersAction) -> None:
    c = commands.add_parser("consume", help="read a dataset's transactions from a Kafka topic (run by the server)")
    c.add_argument("dataset", nargs="?", help="the dataset the transactions belong to")
    c.add_argument("--bootstrap", help="the brokers, HOST:PORT[,HOST:PORT...]")
    c.add_argument("--topic", help="the topic of JSON transactions (one per message, keyed as the API's)")
    c.add_argument("--group", help="the consumer group (default centinela-DATASET)")
    c.add_argument("--decisions-topic", help="publish every decision here (keyed by transaction_id)")
    c.add_argument("--dead-letter-topic", help="refused messages, with the reason (default TOPIC.dead-letter)")
    c.add_argument("--stop", action="store_true", help="stop the dataset's consumer (its settings are kept)")
    c.add_argument("--list", action="store_true", help="list the consumers and their settings")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=consume)


def consume(args: argparse.Namespace, ctx: Context) -> int:
    from application import streams
    if args.list:
        found = [s.as_dict() for s in streams.list_consumers(ctx)]
        if args.json:
            print(json.dumps(found, default=str))
        for s in [] if args.json else found:
            print(f"{s['dataset']:<20} {'running' if s['enabled'] else 'stopped':<8} {s['bootstrap']} "
                  f"{s['topic']} -> {s['decisions_topic'] or '(no decisions topic)'} (group {s['group']})")
        return 0
    if not args.dataset:
        raise InvalidInput("give a DATASET (or --list).", field="dataset")
    if args.stop:
        stopped = streams.stop_consumer(ctx, args.dataset)
        print(f"stopped the Kafka consumer of dataset {stopped.dataset!r} (topic {stopped.topic})")
        return 0
    if not args.bootstrap or not args.topic:
        raise InvalidInput("--bootstrap HOST:PORT and --topic T are required (or --stop, --list).",
                           field="bootstrap" if not args.bootstrap else "topic")
    saved = streams.configure_consumer(ctx, args.dataset, args.bootstrap, args.topic, args.group,
                                       args.decisions_topic, args.dead_letter_topic)
    if args.json:
        print(json.dumps(saved.as_dict(), default=str))
        return 0
    print(f"dataset {saved.dataset!r} reads {saved.bootstrap}/{saved.topic} as group {saved.group_id}; decisions to "
          f"{saved.decisions_topic or '(none)'}, refused messages to {saved.dead_letter_topic}. The server runs it "
          "(it starts within seconds while the server runs, or when the server starts).")
    return 0
