"""`centinela`: the command line for scripted use and batch jobs.

Every command works on the database in $CENTINELA_DB (default ./centinela.duckdb), prints
progress on long work to stderr, and on bad input exits with status 2 and the same message
the app shows. While the app holds the database, commands run through it (cli/remote.py). Each command is a small handler (`set_defaults(func=...)`) that parses its
arguments, calls one action of the application layer and prints its result.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cli import (
    admin,
    backups,
    database_sources,
    datasets,
    keys,
    models,
    remote,
    replay,
    rules,
    runs,
    spark,
    streams,
    webhooks,
)
from cli.output import OPERATOR, Progress
from data.db import DatabaseInUseError, connect
from data.errors import UserError

if TYPE_CHECKING:
    from application.context import Context

EXIT_USER_ERROR, EXIT_DATABASE_IN_USE = 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centinela", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (datasets, runs, models, rules, admin, keys, replay, backups, spark, streams, webhooks,
                   database_sources):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if not getattr(args, "needs_db", True):  # replay (a client of a running server), restore (opens it itself)
        try:
            return args.func(args, None)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except DatabaseInUseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_DATABASE_IN_USE
        except OSError as exc:
            print(f"error: {'cannot reach the server: ' if args.command == 'replay' else ''}{exc}", file=sys.stderr)
            return EXIT_USER_ERROR
    try:
        conn = connect()
    except DatabaseInUseError as exc:  # the app holds the file: the command runs through it
        if not getattr(args, "forwardable", True):  # Spark jobs: never inside the web server's process
            print(f"error: {exc}", file=sys.stderr)
            print(f"hint: {args.in_use_hint}", file=sys.stderr)
            return EXIT_DATABASE_IN_USE
        return remote.forward(argv, exc, getattr(args, "in_use_hint", None))
    from application.context import Context  # pandas: only for a command run here, not one forwarded

    try:
        return execute(args, Context(conn, OPERATOR, Progress(args.quiet)))
    finally:
        conn.close()


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Run a parsed command as `ctx`'s actor: its exit status, a user error printed as the app words it."""
    try:
        return args.func(args, ctx)
    except UserError as exc:  # anything else is a bug: a traceback, exit status 1
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


def execute_argv(argv: Sequence[str], ctx: Context) -> int:
    """A command sent to the server by `cli.remote` (the server holds the database), run there
    on `ctx`: parsed and run exactly as `main` would, printing to this thread's streams."""
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exc:  # a usage error or --help: argparse has printed it
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USER_ERROR
    if not getattr(args, "needs_db", True):
        print(f"error: `centinela {args.command}` runs on the client, not through the app.", file=sys.stderr)
        return EXIT_USER_ERROR
    return execute(args, ctx.with_progress(Progress(args.quiet)))
