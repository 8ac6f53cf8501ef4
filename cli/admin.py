"""Commands for operators: users (the first admin too) and the audit trail."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING

from data.errors import InvalidInput
from data.users import ROLES

if TYPE_CHECKING:
    from application.context import Context


def register(commands: argparse._SubParsersAction) -> None:
    usr = commands.add_parser("users", help="app users: add, list, change (the first admin too)")
    usr_sub = usr.add_subparsers(dest="users_command", required=True)
    add = usr_sub.add_parser("add", help="add a user; asks for the password (or reads it from stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=add_user)
    usr_sub.add_parser("list", help="list users and roles").add_argument("--json", action="store_true")
    usr_sub.choices["list"].set_defaults(func=list_)
    first = usr_sub.add_parser("first-admin", help="with no user yet: create the admin from $CENTINELA_ADMIN_PASSWORD, "
                                                   "or ask for its password at a terminal (`make run` calls this)")
    first.set_defaults(func=first_admin)
    chg = usr_sub.add_parser("set", help="change a user's role or password, or disable / enable it")
    chg.add_argument("username")
    chg.add_argument("--role", choices=ROLES)
    chg.add_argument("--password-stdin", action="store_true", help="read a new password from standard input")
    state = chg.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true")
    state.add_argument("--enable", action="store_true")
    chg.set_defaults(func=change_user)

    aud = commands.add_parser("audit", help="print the audit trail, newest first")
    aud.add_argument("--actor", help="only this actor")
    aud.add_argument("--action", action="append", default=[], help="only this action (repeatable)")
    aud.add_argument("--limit", type=int, default=100)
    aud.add_argument("--json", action="store_true", help="print JSON lines")
    aud.set_defaults(func=audit)


def read_password(from_stdin: bool) -> str:
    """A password from standard input, or typed twice at a terminal (never an argument: it would
    stay in the shell history and the process list)."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Password again: ") != first:
        raise InvalidInput("the two passwords differ.", field="password")
    return first


def first_admin(args: argparse.Namespace, ctx: Context) -> int:
    from application import users
    from data.users import ADMIN_PASSWORD_ENV, has_users
    if has_users(ctx.conn):
        return 0
    created = users.first_admin_from_environment(ctx)
    if created is None and sys.stdin.isatty():
        print("No user exists yet. Create the first admin (user name 'admin').")
        created = users.add(ctx, "admin", read_password(False), "admin")
    if created is None:
        print(f"No user exists yet: set {ADMIN_PASSWORD_ENV} or run `centinela users add NAME --role admin`; "
              "the app shows the same until then.")
    else:
        print(f"created the first admin, {created.username!r}; sign in with it")
    return 0


def add_user(args: argparse.Namespace, ctx: Context) -> int:
    from application import users
    user = users.add(ctx, args.username, read_password(args.password_stdin), args.role)
    print(f"added {user.username!r} as {user.role}")
    return 0


def list_(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd

    from data.users import list_users
    found = list_users(ctx.conn)
    if args.json:
        print(found.to_json(orient="records", date_format="iso"))
        return 0
    for row in found.itertuples():
        state = " (disabled)" if pd.notna(row.disabled_at) else ""
        print(f"{row.username:<24} {row.role:<15} added {row.created_at:%Y-%m-%d} by {row.created_by}{state}")
    return 0


def change_user(args: argparse.Namespace, ctx: Context) -> int:
    from application import users
    password = read_password(True) if args.password_stdin else None
    disabled = True if args.disable else False if args.enable else None
    users.change(ctx, args.username, role=args.role, password=password, disabled=disabled)
    print(f"changed {args.username!r}")
    return 0


def audit(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd

    from data.audit import audit_log
    log = audit_log(ctx.conn, actor=args.actor, actions=tuple(args.action), limit=args.limit)
    for row in log.itertuples():
        if args.json:
            print(json.dumps({"id": row.id, "when": str(row.when), "actor": row.actor, "action": row.action,
                              "dataset_id": None if pd.isna(row.dataset_id) else int(row.dataset_id),
                              "target": row.target, "before": row.before, "after": row.after}, default=str))
        else:
            print(f"{row.when:%Y-%m-%d %H:%M:%S}  {row.actor:<20} {row.action:<12} {row.target or ''}")
    return 0
