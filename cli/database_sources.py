"""`centinela source add|list|remove` and `centinela sync`: PostgreSQL sources of datasets."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from application.context import Context


def register(commands: argparse._SubParsersAction) -> None:
    s = commands.add_parser("source", help="PostgreSQL tables or queries that fill datasets (then: centinela sync)")
    sub = s.add_subparsers(dest="source_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add a source; its first sync creates the dataset")
    add.add_argument("name", help="the source's name (letters, digits, . - _)")
    add.add_argument("--url", required=True,
                     help="postgresql://USER[:${CENTINELA_PG_...}]@HOST:PORT/DB[?sslmode=...]; no literal password "
                          "(an environment variable of the process that syncs, CENTINELA_PG_* or PGPASSWORD, "
                          "in the password's place only; or ~/.pgpass, PGPASSFILE or service=)")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--table", help="TABLE or SCHEMA.TABLE to read")
    what.add_argument("--query", help="your own SELECT (sent to your PostgreSQL as a subquery)")
    add.add_argument("--watermark", required=True,
                     help="a timestamp, date or integer column that grows when a row is added or changed")
    add.add_argument("--dataset", help="the dataset it fills (default: the source's name); created by the first sync")
    add.add_argument("--overlap", help="how far behind the watermark each sync reads again, for late rows "
                                       "(default 10m for a time watermark, 0 for an integer one)")
    add.add_argument("--map", action="append", default=[], metavar="ROLE=COLUMN",
                     help="set a column's role, as for import (guessed from the names otherwise)")
    add.add_argument("--timezone", default="America/Lima", help="the dataset's time zone (default America/Lima)")
    add.add_argument("--no-features", action="store_true", help="do not compute features after the first sync")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=add_source)
    listing = sub.add_parser("list", help="sources, their last sync and row counts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_sources)
    remove = sub.add_parser("remove", help="forget a source (its dataset stays)")
    remove.add_argument("name")
    remove.set_defaults(func=remove_source)

    sync = commands.add_parser("sync", help="load a source's new and changed rows into its dataset")
    sync.add_argument("name", help="the source")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(func=sync_source)


def add_source(args: argparse.Namespace, ctx: Context) -> int:
    from application import database_sources as sources
    from data.database_sources import describe_overlap, redact
    saved = sources.add_source(ctx, args.name, args.url, watermark=args.watermark, table=args.table, query=args.query,
                               dataset=args.dataset, overlap=args.overlap, maps=args.map, timezone=args.timezone,
                               features=not args.no_features)
    if args.json:
        print(json.dumps(saved.as_dict(), default=str))
        return 0
    roles = ", ".join(f"{role}={column}" for role, column in saved.mapping["roles"].items())
    print(f"source {saved.name!r}: {redact(saved.url)} {saved.relation or '(query)'}, watermark {saved.watermark} "
          f"({saved.watermark_type}, overlap {describe_overlap(saved.overlap, saved.watermark_type)}) -> dataset "
          f"{saved.dataset!r}; mapping {roles}" + (f"; kept: {', '.join(saved.mapping['categorical'] + saved.mapping['numeric'])}"
                                                   if saved.mapping['categorical'] or saved.mapping['numeric'] else ""))
    print(f"run `centinela sync {saved.name}` to load it")
    return 0


def list_sources(args: argparse.Namespace, ctx: Context) -> int:
    from application import database_sources as sources
    found = [s.as_dict() for s in sources.list_sources(ctx)]
    if args.json:
        print(json.dumps(found, default=str))
        return 0
    for s in found:
        last = (f"last sync {s['last_sync_at']:%Y-%m-%d %H:%M:%S}, watermark {s['last_watermark']}"
                if s["last_sync_at"] else "never synced")
        print(f"{s['name']:<20} -> {s['dataset']:<20} {s['syncs']:,} syncs, {s['rows_new']:,} rows new, "
              f"{s['rows_updated']:,} updated; {last}; {s['url']} {s['table'] or '(query)'}")
    if not found:
        print("no database sources (centinela source add NAME --url ... --table T --watermark COLUMN)")
    return 0


def remove_source(args: argparse.Namespace, ctx: Context) -> int:
    from application import database_sources as sources
    removed = sources.remove_source(ctx, args.name)
    print(f"removed source {removed.name!r} (dataset {removed.dataset!r} stays)")
    return 0


def sync_source(args: argparse.Namespace, ctx: Context) -> int:
    from application import database_sources as sources
    from data.database_sources import describe_problem
    report = sources.sync(ctx, args.name)
    if args.json:
        print(json.dumps(report.as_dict(), default=str))
        return 0
    print(f"synced {report.source!r} into dataset {report.dataset!r}"
          + (" (created)" if report.created_dataset else "") + f": {report.rows_read:,} rows read"
          + (f" (since {report.since})" if report.since else "") + f", {report.new:,} new, {report.updated:,} updated, "
          f"{report.skipped:,} unchanged; watermark {report.watermark_before or '(none)'} -> "
          f"{report.watermark_after or '(none)'}; {report.seconds:.1f} s")
    if report.updated:
        columns = ", ".join(f"{c} ({n:,})" for c, n in report.changed_columns.items())
        print(f"updated in place: {columns}; e.g. {', '.join(report.updated_ids[:5])}")
    if report.without_watermark:
        print(f"note: {report.without_watermark:,} source rows have no watermark value and are "
              "never read")
    if report.skipped_rows:
        print(f"rows left out: {report.skipped_rows:,}")
    for note in report.notes:
        print(f"note: {note}")
    if report.problems:  # values the checks stored as empty, by source key (as `centinela import` prints them)
        id_column = sources.source_settings(ctx, report.source).id_column
        for p in report.problems:
            print(f"problem: {describe_problem(p, id_column)}")
    return 0
