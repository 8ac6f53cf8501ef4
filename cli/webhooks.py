"""`centinela webhooks`: outbound webhooks (add prints the signing secret once), list, pause,
resume, rotate the secret, remove; the delivery log; send an event again."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from data.webhooks import EVENTS, STATES

if TYPE_CHECKING:
    from application import webhooks
    from application.context import Context



def register(commands: argparse._SubParsersAction) -> None:
    w = commands.add_parser("webhooks", help="outbound webhooks: add, list, pause, resume, remove, log, redeliver")
    sub = w.add_subparsers(dest="webhooks_command", required=True)
    add = sub.add_parser("add", help="register a webhook; prints its signing secret once, alone on the last line")
    add.add_argument("name")
    add.add_argument("--url", required=True, help="where events are POSTed (http or https)")
    add.add_argument("--events", required=True, help=f"comma-separated: {', '.join(EVENTS)}")
    add.add_argument("--dataset", help="only this dataset's events (default: every dataset)")
    add.add_argument("--json", action="store_true", help='print {"name": ..., "secret": ...}')
    add.set_defaults(func=add_webhook)
    listing = sub.add_parser("list", help="every webhook with its deliveries by state (never the secret)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_webhooks)
    for name, enabled, text in (("pause", False, "stop delivering (events wait in the outbox)"),
                                ("resume", True, "deliver again, the waiting events first")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name")
        p.set_defaults(func=set_enabled, enabled=enabled)
    rotate = sub.add_parser("rotate-secret", help="a new signing secret, printed once")
    rotate.add_argument("name")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=rotate_secret)
    remove = sub.add_parser("remove", help="remove a webhook (its undelivered events are given up)")
    remove.add_argument("name")
    remove.set_defaults(func=remove_webhook)
    log = sub.add_parser("log", help="the newest deliveries: event, state, attempts, last status or error")
    log.add_argument("name", nargs="?", help="only this webhook's")
    log.add_argument("--state", choices=STATES)
    log.add_argument("--limit", type=int, default=50)
    log.add_argument("--json", action="store_true")
    log.set_defaults(func=delivery_log)
    again = sub.add_parser("redeliver", help="send one event again now (by its delivery number in the log)")
    again.add_argument("delivery", type=int)
    again.set_defaults(func=redeliver)


def _secret(args: argparse.Namespace, registered: webhooks.Registered, what: str) -> int:
    if args.json:
        print(json.dumps({"name": registered.webhook.name, "secret": registered.secret}))
        return 0
    print(f"{what}; the receiver verifies the Centinela-Signature header with this secret, shown only now:")
    print(registered.secret)
    return 0


def add_webhook(args: argparse.Namespace, ctx: Context) -> int:
    from application import webhooks
    added = webhooks.add_webhook(ctx, args.name, args.url, args.events, args.dataset)
    hook = added.webhook
    return _secret(args, added, f"webhook {hook.name!r} sends {', '.join(hook.events)} "
                                f"({'dataset ' + repr(hook.dataset) if hook.dataset else 'every dataset'}) to {hook.url}")


def list_webhooks(args: argparse.Namespace, ctx: Context) -> int:
    from application import webhooks
    counts = webhooks.counts(ctx)
    found = [{**w.as_dict(), "deliveries": counts.get(w.name, {})} for w in webhooks.list_webhooks(ctx)]
    if args.json:
        print(json.dumps(found, default=str))
        return 0
    if not found:
        print("no webhooks (centinela webhooks add NAME --url URL --events ...)")
    for w in found:
        states = ", ".join(f"{n:,} {state}" for state, n in sorted(w["deliveries"].items())) or "nothing sent yet"
        print(f"{w['name']:<20} {'enabled' if w['enabled'] else 'paused':<8} {w['url']}  {','.join(w['events'])}  "
              f"{w['dataset'] or 'every dataset'}  ({states})")
    return 0


def set_enabled(args: argparse.Namespace, ctx: Context) -> int:
    from application import webhooks
    hook = webhooks.set_enabled(ctx, args.name, args.enabled)
    print(f"webhook {hook.name!r} {'resumed' if hook.enabled else 'paused'}")
    return 0


def rotate_secret(args: argparse.Namespace, ctx: Context) -> int:
    from application import webhooks
    return _secret(args, webhooks.rotate_secret(ctx, args.name), f"webhook {args.name!r} has a new signing secret")


def remove_webhook(args: argparse.Namespace, ctx: Context) -> int:
    from application import webhooks
    dropped = webhooks.remove_webhook(ctx, args.name)
    print(f"removed webhook {args.name!r}" + (f"; {dropped:,} undelivered events given up" if dropped else ""))
    return 0


def delivery_log(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd

    from application import webhooks
    log = webhooks.delivery_log(ctx, args.name, args.state, max(1, min(args.limit, 10_000)))
    if args.json:
        print(log.to_json(orient="records", date_format="iso"))
        return 0
    if log.empty:
        print("no deliveries")
    for r in log.itertuples(index=False):
        outcome = f"HTTP {int(r.status)}" if pd.notna(r.status) else (r.error if isinstance(r.error, str) else "")
        print(f"#{r.delivery:<7} {r.when:%Y-%m-%d %H:%M:%S} {r.webhook:<16} {r.event:<15} {r.state:<9} "
              f"{r.attempts} attempt(s) {outcome}")
    return 0


def redeliver(args: argparse.Namespace, ctx: Context) -> int:
    from application import webhooks
    found = webhooks.redeliver(ctx, args.delivery)
    print(f"event {found['event_id']} ({found['event']}) of delivery #{args.delivery} is sent again as delivery "
          f"#{found['id']}, within seconds while the server runs")
    return 0
