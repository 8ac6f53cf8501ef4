"""Commands on datasets: generate, import, datasets, features, export, delete."""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from data.conventions import DATE_ORDERS, DECIMALS, DEFAULT_TIMEZONE, EPOCH_UNITS
from data.features import DEFAULT_LABEL_DELAY_DAYS
from data.ingest import ENCODINGS
from data.synthetic import SyntheticConfig

if TYPE_CHECKING:
    from application.context import Context
    from data.features import FeatureSet
    from data.ingest import ImportResult

DEFAULTS = SyntheticConfig()


def register(commands: argparse._SubParsersAction) -> None:
    gen = commands.add_parser("generate", help="generate a synthetic Peru dataset")
    gen.add_argument("--rows", type=int, default=200_000, help="number of transactions (default 200,000)")
    gen.add_argument("--name", required=True, help="dataset name")
    gen.add_argument("--seed", type=int, default=DEFAULTS.seed, help="random seed (same seed, same data)")
    gen.add_argument("--fraud-rate", type=float, default=DEFAULTS.fraud_rate,
                     help=f"share of fraudulent transactions (default {DEFAULTS.fraud_rate})")
    gen.add_argument("--days", type=int, default=DEFAULTS.days, help=f"length of the period in days (default {DEFAULTS.days})")
    gen.add_argument("--start", type=date.fromisoformat, default=DEFAULTS.start, help="first day, YYYY-MM-DD")
    gen.add_argument("--no-features", action="store_true", help="do not compute features afterwards")
    gen.set_defaults(func=generate)

    imp = commands.add_parser("import", help="import a CSV, Parquet or Excel (.xlsx) file as a dataset")
    imp.add_argument("path", type=Path)
    imp.add_argument("--name", required=True, help="dataset name")
    imp.add_argument("--map", action="append", default=[], metavar="ROLE=COLUMN",
                     help="set a role's column (ROLE= unmaps it; categorical=a,b and numeric=c,d set extras; "
                     "timestamp=DATE_COLUMN+TIME_COLUMN combines two columns); repeatable")
    imp.add_argument("--encoding", choices=ENCODINGS, default="utf-8", help="CSV text encoding (default utf-8)")
    imp.add_argument("--timezone", default=DEFAULT_TIMEZONE,
                     help=f"the dataset's time zone: offsets and zone names are converted to it, other times are taken "
                     f"to be in it (default {DEFAULT_TIMEZONE})")
    imp.add_argument("--decimal", choices=DECIMALS, help="decimal separator of every number column (default: detected)")
    imp.add_argument("--date-order", choices=DATE_ORDERS, help="dd/mm/yyyy (dmy) or mm/dd/yyyy (mdy) (default: detected)")
    imp.add_argument("--epoch-unit", choices=EPOCH_UNITS,
                     help="the timestamp is Unix time in seconds or milliseconds (default: detected)")
    imp.add_argument("--sheet", help="the workbook sheet to read (default: the first)")
    imp.add_argument("--skip-bad-rows", action="store_true",
                     help="leave out rows whose timestamp or amount does not parse (they are counted and listed)")
    imp.add_argument("--show-mapping", action="store_true", help="print the guessed mapping and stop")
    imp.add_argument("--no-features", action="store_true", help="do not compute features afterwards")
    imp.add_argument("--json", action="store_true", help="print the import report as JSON")
    imp.set_defaults(func=import_)

    lst = commands.add_parser("datasets", help="list datasets")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=list_)

    feat = commands.add_parser("features", help="compute a dataset's features and print the catalogue")
    feat.add_argument("name")
    feat.add_argument("--label-delay-days", type=int, default=DEFAULT_LABEL_DELAY_DAYS,
                      help=f"labels are used by features only once this many days old (default {DEFAULT_LABEL_DELAY_DAYS})")
    feat.add_argument("--show", action="store_true", help="print the catalogue without computing")
    feat.add_argument("--json", action="store_true", help="print JSON")
    feat.set_defaults(func=features)

    exp = commands.add_parser("export", help="write a dataset to CSV or Parquet")
    exp.add_argument("name")
    exp.add_argument("--out", type=Path, required=True, help="file ending in .csv or .parquet")
    exp.set_defaults(func=export)

    rm = commands.add_parser("delete", help="move a dataset to the trash (restorable from the Data page)")
    rm.add_argument("name")
    rm.set_defaults(func=delete)


def _print_features(fs: FeatureSet | None) -> None:
    if fs is None:
        return
    print(f"features: {len(fs.computed)} computed in {fs.seconds:.1f} s" + (f", {len(fs.skipped)} skipped" if fs.skipped else ""))
    for name, reason in fs.skipped.items():
        print(f"skipped {name}: {reason}")


def generate(args: argparse.Namespace, ctx: Context) -> int:
    from application import datasets as actions
    config = SyntheticConfig(rows=args.rows, seed=args.seed, fraud_rate=args.fraud_rate, start=args.start, days=args.days)
    created = actions.generate(ctx, args.name, config, features=not args.no_features)
    dataset = created.dataset
    print(f"generated {dataset.name!r}: {dataset.row_count:,} rows, {dataset.min_ts} to {dataset.max_ts}")
    _print_features(created.features)
    return 0


def import_(args: argparse.Namespace, ctx: Context) -> int:
    from application import datasets as actions
    from data.conventions import ImportOptions
    from data.ingest import inspect_file
    options = ImportOptions(args.timezone, args.decimal, args.date_order, args.epoch_unit, args.sheet)
    info = inspect_file(ctx.conn, args.path, encoding=args.encoding, sheet=args.sheet)
    mapping = info.guessed_mapping().with_overrides(args.map, info.column_names)
    if args.show_mapping:
        print(json.dumps(mapping.as_dict(), indent=2))
        return 0
    created = actions.import_dataset(ctx, args.path, args.name, mapping, encoding=info.encoding, options=options,
                                     skip_bad_rows=args.skip_bad_rows, features=not args.no_features)
    result = created.report
    if args.json:
        report = result.as_dict()
        if created.features is not None:
            report["features"] = {"computed": created.features.computed, "skipped": created.features.skipped}
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"imported {result.dataset.name!r}: {result.rows_stored:,} of {result.rows_read:,} rows in {result.seconds:.1f} s "
          f"(times in {result.timezone})")
    print_report(result)
    _print_features(created.features)
    return 0


def print_report(result: ImportResult) -> None:
    """The import report as lines: how each column was read, the counts, the rows left out and why."""
    for column in result.columns:
        counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in column["counts"].items())
        source = column["column"] + (f"+{column['time_column']}" if column.get("time_column") else "")
        print(f"column '{source}' ({column['role']}): {column['convention']}" + (f"; {counts}" if counts else ""))
    counts = result.counts
    print(f"refunds (negative amounts): {counts.get('refunds', 0):,}; times converted from another zone or offset: "
          f"{counts.get('converted_offsets', 0):,}; rows left out: {result.skipped_rows:,}")
    for note in result.notes:
        print(f"note: {note}")
    for p in result.problems:
        rows = ", ".join(f"{r:,}" for r in p["rows"])
        print(f"problem: column '{p['column']}' ({p['role']}), {p['count']:,} value{'s' if p['count'] != 1 else ''} "
              f"(first rows {rows}): {p['value']!r} {p['problem']}; {p['action']}")


def list_(args: argparse.Namespace, ctx: Context) -> int:
    from data.datasets import list_datasets
    from data.db import database_path
    rows = [
        {"name": d.name, "rows": d.row_count, "from": str(d.min_ts), "to": str(d.max_ts),
         "label_column": d.import_report.get("mapping", {}).get("roles", {}).get("label")
         or ("is_fraud" if d.has_role("label") else None), "source": d.source, "timezone": d.timezone}
        for d in list_datasets(ctx.conn)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(f"no datasets in {database_path()}; try: centinela generate --rows 200000 --name demo")
    else:
        print(f"{'name':<24} {'rows':>12}  {'from':<19}  {'to':<19}  label column")
        for r in rows:
            print(f"{r['name']:<24} {r['rows']:>12,}  {r['from']:<19}  {r['to']:<19}  {r['label_column'] or '-'}")
    return 0


def features(args: argparse.Namespace, ctx: Context) -> int:
    from application import datasets as actions
    from data.features import feature_catalogue
    dataset = ctx.dataset(args.name)
    if not args.show:
        _print_features(actions.compute_features(ctx, dataset, args.label_delay_days))
    catalogue = feature_catalogue(ctx.conn, dataset)
    if args.json:
        print(catalogue.to_json(orient="records", indent=2))
    else:
        for row in catalogue.itertuples():
            why = f"  ({row.reason})" if row.reason else ""
            print(f"{row.status:<12} {row.feature:<24} [{row.unit}] {row.description}{why}")
    return 0


def export(args: argparse.Namespace, ctx: Context) -> int:
    from application import datasets as actions
    rows = actions.export(ctx, args.name, args.out)
    print(f"wrote {rows:,} rows to {args.out}")
    return 0


def delete(args: argparse.Namespace, ctx: Context) -> int:
    from application import datasets as actions
    dataset = actions.delete(ctx, args.name)
    print(f"moved {dataset.name!r} to the trash; restore it from the Data page")
    return 0
