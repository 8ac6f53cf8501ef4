"""`centinela keys`: API keys for other systems (create prints the key once), list, revoke."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from application.context import Context


def register(commands: argparse._SubParsersAction) -> None:
    k = commands.add_parser("keys", help="API keys for the HTTP API: create, list, revoke")
    sub = k.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key; prints it once, alone on the last line")
    create.add_argument("name")
    create.add_argument("--scope", required=True, help="comma-separated: score, label, read")
    create.add_argument("--dataset", help="only this dataset (default: every dataset)")
    create.add_argument("--expires-days", type=float, help="the key stops working after this many days")
    create.add_argument("--json", action="store_true", help='print {"name": ..., "key": ...}')
    create.set_defaults(func=create_key)
    listing = sub.add_parser("list", help="every key: name, scopes, dataset, state (never the key)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_keys)
    revoke = sub.add_parser("revoke", help="revoke a key: later requests with it get 401")
    revoke.add_argument("name")
    revoke.set_defaults(func=revoke_key)


def create_key(args: argparse.Namespace, ctx: Context) -> int:
    from application import keys
    created = keys.create(ctx, args.name, args.scope, args.dataset, args.expires_days)
    if args.json:
        print(json.dumps({"name": created.key.name, "key": created.secret}))
        return 0
    print(f"created key {created.key.name!r} (scopes {', '.join(created.key.scopes)}"
          f"{', dataset #' + str(created.key.dataset_id) if created.key.dataset_id else ''}); it is shown only now:")
    print(created.secret)
    return 0


def list_keys(args: argparse.Namespace, ctx: Context) -> int:
    from application import keys
    found = keys.list_keys(ctx)
    now = ctx.clock()
    if args.json:
        print(json.dumps([{**k.as_dict(), "state": k.state(now)} for k in found], default=str))
        return 0
    for k in found:
        print(f"{k.name:<24} {k.prefix}…  {','.join(k.scopes):<18} "
              f"{'dataset #' + str(k.dataset_id) if k.dataset_id else 'all datasets':<14} {k.state(now):<8} "
              f"created {k.created_at:%Y-%m-%d} by {k.created_by}")
    return 0


def revoke_key(args: argparse.Namespace, ctx: Context) -> int:
    from application import keys
    keys.revoke(ctx, args.name)
    print(f"revoked key {args.name!r}")
    return 0
