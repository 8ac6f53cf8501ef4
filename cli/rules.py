"""`centinela rules` and `centinela lists`: write, check, backtest and deploy rules; keep block
and allow lists."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cli.output import date_arg, fmt

if TYPE_CHECKING:
    from application.context import Context
    from data.rules import Rule


def register(commands: argparse._SubParsersAction) -> None:
    r = commands.add_parser("rules", help="rules over transactions and features: add, check, backtest, deploy")
    sub = r.add_subparsers(dest="rules_command", required=True)

    add = sub.add_parser("add", help="draft a rule (exit status 2 and the parser's message if its condition is refused)")
    add.add_argument("dataset")
    add.add_argument("name")
    add.add_argument("--condition", required=True, help="e.g. \"amount > 3 * cust_mean_amount_7d AND hour < 6\"")
    _rule_options(add, defaults=True)
    add.set_defaults(func=add_rule)

    edit = sub.add_parser("edit", help="a new version of a rule with what changes")
    edit.add_argument("dataset")
    edit.add_argument("name")
    edit.add_argument("--condition")
    _rule_options(edit, defaults=False)
    edit.set_defaults(func=edit_rule)

    check = sub.add_parser("check", help="check a condition against a dataset; prints every problem")
    check.add_argument("dataset")
    check.add_argument("--condition", required=True)
    check.set_defaults(func=check_condition)

    test = sub.add_parser("backtest", help="what a rule (or --condition) would have done over a period")
    test.add_argument("dataset")
    test.add_argument("name", nargs="?", help="a rule's name (or give --condition)")
    test.add_argument("--condition", help="backtest a condition that is not saved")
    test.add_argument("--from", dest="start", type=date_arg, help="first day (default: the dataset's first)")
    test.add_argument("--until", dest="end", type=date_arg, help="last day, included (default: the dataset's last)")
    test.add_argument("--json", action="store_true", help="print JSON (hits, precision, recall, per_day, ...)")
    test.set_defaults(func=backtest)

    sug = sub.add_parser("suggest", help="propose rules from the labelled fraud of a period, backtested on a later one")
    sug.add_argument("dataset")
    sug.add_argument("--train-from", type=date_arg)
    sug.add_argument("--train-until", type=date_arg, required=True, help="last day of the training period")
    sug.add_argument("--test-from", type=date_arg, help="first day of the backtest (default: the day after training)")
    sug.add_argument("--test-until", type=date_arg)
    sug.add_argument("--max-rules", type=int, default=5)
    sug.add_argument("--json", action="store_true")
    sug.set_defaults(func=suggest)

    listing = sub.add_parser("list", help="a dataset's rules with status and version")
    listing.add_argument("dataset")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_rules)

    show = sub.add_parser("show", help="a rule: its versions and lifecycle")
    show.add_argument("dataset")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_rule)

    for status, verb, what in (("active", "activate", "raise alerts (or suppress them, for an allow rule)"),
                               ("shadow", "shadow", "evaluate and record hits, raising nothing"),
                               ("retired", "retire", "stop evaluating"), ("draft", "draft", "back to draft")):
        cmd = sub.add_parser(verb, help=f"put a rule in {status}: {what}")
        cmd.add_argument("dataset")
        cmd.add_argument("name")
        cmd.set_defaults(func=set_status, status=status)

    restore = sub.add_parser("restore", help="make an older version current again (as a new version)")
    restore.add_argument("dataset")
    restore.add_argument("name")
    restore.add_argument("version", type=int)
    restore.set_defaults(func=restore_rule)

    delete = sub.add_parser("delete", help="delete a rule (its history stays in the audit trail)")
    delete.add_argument("dataset")
    delete.add_argument("name")
    delete.set_defaults(func=delete_rule)

    li = commands.add_parser("lists", help="block and allow lists: list, create, add, import, remove, history")
    lsub = li.add_subparsers(dest="lists_command", required=True)
    show_lists = lsub.add_parser("list", help="a dataset's lists, or one list's entries")
    show_lists.add_argument("dataset")
    show_lists.add_argument("list", nargs="?")
    show_lists.add_argument("--json", action="store_true")
    show_lists.set_defaults(func=list_lists)
    create = lsub.add_parser("create", help="a new block or allow list over one column")
    create.add_argument("dataset")
    create.add_argument("list")
    create.add_argument("--kind", choices=["block", "allow"], required=True)
    create.add_argument("--key", required=True, help="the column: customer_id, merchant_id, device_id, city or another")
    create.add_argument("--description")
    create.set_defaults(func=create_list)
    add_entry = lsub.add_parser("add", help="put a value on a list")
    add_entry.add_argument("dataset")
    add_entry.add_argument("list")
    add_entry.add_argument("value")
    add_entry.add_argument("--reason", required=True)
    add_entry.add_argument("--expires", type=date_arg, help="the entry stops counting then (YYYY-MM-DD)")
    add_entry.set_defaults(func=add_to_list)
    imp = lsub.add_parser("import", help="entries from a CSV file (value,reason[,expires_at]); all or nothing")
    imp.add_argument("dataset")
    imp.add_argument("list")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=import_list)
    rem = lsub.add_parser("remove", help="take a value off a list")
    rem.add_argument("dataset")
    rem.add_argument("list")
    rem.add_argument("value")
    rem.add_argument("--reason")
    rem.set_defaults(func=remove_from_list)
    hist = lsub.add_parser("history", help="every add and remove of a list's entries (or of one value)")
    hist.add_argument("dataset")
    hist.add_argument("list")
    hist.add_argument("value", nargs="?")
    hist.set_defaults(func=list_history)


def _rule_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    from data.rules import ACTIONS, DEFAULT_SEVERITY
    parser.add_argument("--action", choices=list(ACTIONS), default="alert" if defaults else None,
                        help="alert (raise alerts) or allow (suppress them)" + ("; default alert" if defaults else ""))
    parser.add_argument("--severity", type=int, default=DEFAULT_SEVERITY if defaults else None,
                        help=f"1 to 10{f'; default {DEFAULT_SEVERITY}' if defaults else ''}")
    parser.add_argument("--description")


def _line(rule: Rule) -> str:
    return (f"{rule.name:<28} {rule.status:<8} v{rule.version:<3} {rule.action:<5} severity {rule.severity:<2} "
            f"{rule.condition}")


def add_rule(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    rule = rules.add(ctx, args.dataset, args.name, args.condition, action=args.action, severity=args.severity,
                     description=args.description)
    print(f"drafted rule {rule.name!r} (version {rule.version}); backtest it: centinela rules backtest "
          f"{args.dataset!r} {rule.name}")
    return 0


def edit_rule(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    rule = rules.edit(ctx, args.dataset, args.name, condition=args.condition, action=args.action,
                      severity=args.severity, description=args.description)
    print(f"rule {rule.name!r} is now version {rule.version} ({rule.status})")
    return 0


def check_condition(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    problems = rules.check_condition(ctx, args.dataset, args.condition)
    if not problems:
        print("accepted: " + rules.rendered_condition(ctx, args.dataset, args.condition))
        return 0
    for problem in problems:
        print(f"error: {problem.describe(args.condition)} [{problem.code}]")
    return 2


def backtest(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    result = rules.backtest(ctx, args.dataset, name=args.name, condition=args.condition if not args.name else None,
                            start=args.start, end=args.end)
    if args.json:
        print(json.dumps(result.as_dict(), default=str))
        return 0
    s = result.summary
    print(f"{s['hits']:,} hits over {s['days']} days ({s['from']} to {s['until']}), {fmt(s['hits_per_day'])} a day")
    print(f"precision {fmt(s['precision'])}  recall {fmt(s['recall'])}  (label column: {s['hit_fraud']:,} of its hits "
          f"are fraud, of {s['fraud']:,} frauds)")
    print(f"analysts' labels: precision {fmt(s['analyst_precision'])} ({s['hit_confirmed']:,} confirmed of "
          f"{s['hit_reviewed']:,} reviewed hits), recall {fmt(s['analyst_recall'])}")
    against = f"run #{result.run_id}" if result.run_id else "no model"
    print(f"already alerted by {against}: {s['already_alerted']:,}; added: {s['added']:,} "
          f"({fmt(s['added_per_day'])} a day)")
    return 0


def suggest(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    test_from = args.test_from or args.train_until + timedelta(days=1)
    found = rules.suggest(ctx, args.dataset, train_start=args.train_from, train_end=args.train_until,
                          test_start=test_from, test_end=args.test_until, max_rules=args.max_rules)
    if args.json:
        print(json.dumps([{"condition": s.condition, "fraud": s.fraud, "legitimate": s.legitimate,
                           "precision": s.precision, "backtest": {k: v for k, v in s.backtest.as_dict().items()
                                                                  if k != "per_day"}} for s in found], default=str))
        return 0
    if not found:
        print("no rule suggested: the period's fraud has no short pattern at that precision")
    for s in found:
        b = s.backtest.summary
        print(f"{s.condition}\n  training: {s.fraud:,} fraud, {s.legitimate:,} legitimate (precision "
              f"{s.precision:.3f}); later: {b['hits']:,} hits, precision {fmt(b['precision'])}, recall {fmt(b['recall'])}, "
              f"{fmt(b['added_per_day'])} added a day")
    return 0


def list_rules(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    found = rules.list_rules(ctx, args.dataset)
    if args.json:
        print(json.dumps([r.as_dict() for r in found], default=str))
        return 0
    for rule in found:
        print(_line(rule))
    if not found:
        print("no rules yet")
    return 0


def show_rule(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd

    from application import rules
    detail = rules.show(ctx, args.dataset, args.name)
    if args.json:
        print(json.dumps({**detail.rule.as_dict(), "versions": detail.versions.to_dict("records"),
                          "events": detail.events.to_dict("records"),
                          "recorded_hits": detail.recorded_hits.to_dict("records")}, default=str))
        return 0
    print(_line(detail.rule))
    if detail.rule.description:
        print(f"  {detail.rule.description}")
    print("versions:")
    for v in detail.versions.itertuples():
        restored = f" (restored from v{int(v.restored_from)})" if pd.notna(v.restored_from) else ""
        print(f"  v{v.version} {v.created_at:%Y-%m-%d %H:%M} {v.created_by}: {v.action} severity {v.severity} "
              f"{v.condition}{restored}")
    print("lifecycle:")
    for e in detail.events.itertuples():
        print(f"  {e.created_at:%Y-%m-%d %H:%M} {e.actor}: {e.status} (v{e.version})")
    return 0


def set_status(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    rule = rules.set_status(ctx, args.dataset, args.name, args.status)
    print(f"rule {rule.name!r} (version {rule.version}) is now {rule.status}")
    return 0


def restore_rule(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    rule = rules.restore(ctx, args.dataset, args.name, args.version)
    print(f"rule {rule.name!r}: version {args.version} restored as version {rule.version} ({rule.status})")
    return 0


def delete_rule(args: argparse.Namespace, ctx: Context) -> int:
    from application import rules
    rules.delete(ctx, args.dataset, args.name)
    print(f"deleted rule {args.name!r}")
    return 0


def list_lists(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd

    from application import lists
    if args.list:
        view = lists.show(ctx, args.dataset, args.list)
        if args.json:
            print(json.dumps(view.entries.to_dict("records"), default=str))
            return 0
        rl = view.rule_list
        print(f"{rl.name}: {rl.kind} list of {rl.key_column}, {rl.entries:,} entries in effect")
        for e in view.entries.itertuples():
            until = f" until {e.expires_at:%Y-%m-%d}" if pd.notna(e.expires_at) else ""
            print(f"  {e.value:<24} {'(expired) ' if e.expired else ''}{e.reason} — {e.added_by} "
                  f"{e.added_at:%Y-%m-%d}{until}")
        return 0
    found = lists.lists(ctx, args.dataset)
    if args.json:
        print(json.dumps([dataclasses.asdict(rl) for rl in found], default=str))
        return 0
    for rl in found:
        print(f"{rl.name:<28} {rl.kind:<5} {rl.key_column:<16} {rl.entries:,} entries")
    if not found:
        print("no lists yet")
    return 0


def create_list(args: argparse.Namespace, ctx: Context) -> int:
    from application import lists
    rl = lists.create(ctx, args.dataset, args.list, args.kind, args.key, args.description)
    print(f"created {rl.kind} list {rl.name!r} over {rl.key_column}")
    return 0


def add_to_list(args: argparse.Namespace, ctx: Context) -> int:
    from application import lists
    rl = lists.add_entry(ctx, args.dataset, args.list, args.value, args.reason, args.expires)
    print(f"added {args.value!r} to {rl.name!r} ({rl.entries:,} entries in effect)")
    return 0


def import_list(args: argparse.Namespace, ctx: Context) -> int:
    from application import lists
    count = lists.import_entries(ctx, args.dataset, args.list, str(args.file))
    print(f"imported {count:,} entries into {args.list!r} from {args.file.name}")
    return 0


def remove_from_list(args: argparse.Namespace, ctx: Context) -> int:
    from application import lists
    rl = lists.remove_entry(ctx, args.dataset, args.list, args.value, args.reason)
    print(f"removed {args.value!r} from {rl.name!r} ({rl.entries:,} entries in effect)")
    return 0


def list_history(args: argparse.Namespace, ctx: Context) -> int:
    import pandas as pd

    from application import lists
    view = lists.show(ctx, args.dataset, args.list, value=args.value)
    for e in view.history.itertuples():
        print(f"{e.created_at:%Y-%m-%d %H:%M} {e.actor}: {e.action} {e.value!r}" + (f" — {e.reason}" if pd.notna(e.reason) else ""))
    return 0
