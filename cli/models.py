"""Commands on labels and learned versions: label, retrain, promote, models."""

from __future__ import annotations

import argparse
import getpass
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from application.gate_settings import DEFAULT_GATE_DAYS, DEFAULT_GATE_METRIC, GATE_METRICS
from cli.output import date_arg, fmt
from detectors.choices import DEFAULT_IMBALANCE, DEFAULT_MODEL, IMBALANCE, MODELS

if TYPE_CHECKING:
    from application.context import Context


def register(commands: argparse._SubParsersAction) -> None:
    lab = commands.add_parser("label", help="add analyst labels from a CSV file (transaction_id,label[,analyst][,note])")
    lab.add_argument("name", help="dataset")
    lab.add_argument("--file", type=Path, required=True, help="CSV file; one bad row rejects the whole file")
    lab.add_argument("--analyst", default=os.environ.get("CENTINELA_ANALYST") or getpass.getuser() or "cli",
                     help="analyst for rows without one (default $CENTINELA_ANALYST, else the system user)")
    lab.set_defaults(func=label)

    re_ = commands.add_parser("retrain", help="train a new model version on the labels (not promoted)")
    re_.add_argument("name", help="dataset")
    re_.add_argument("--model", choices=list(MODELS), default=DEFAULT_MODEL,
                     help=f"the classifier: {', '.join(f'{k} ({v})' for k, v in MODELS.items())}; default {DEFAULT_MODEL}")
    re_.add_argument("--imbalance", choices=list(IMBALANCE), default=DEFAULT_IMBALANCE,
                     help=f"how the rare fraud class is handled (default {DEFAULT_IMBALANCE})")
    re_.add_argument("--search", type=int, default=0, metavar="N",
                     help="first search N parameter configurations on time-ordered folds of the older labels")
    re_.add_argument("--train-until", type=date_arg, help="use labels of transactions before this date only")
    re_.add_argument("--hold-out-days", type=int, metavar="N",
                     help="use labels before the last N labelled days only, so `promote --if-better --days N` "
                          "judges the version on labels it never saw")
    re_.add_argument("--base-run", type=int, help="detector run whose score is a feature (default: the active one)")
    re_.add_argument("--no-truth", action="store_true", help="analyst labels only, not the dataset's label column")
    re_.add_argument("--json", action="store_true", help="print the version as JSON")
    re_.set_defaults(func=retrain)

    pro = commands.add_parser("promote", help="make a run or model version the one the queue ranks by")
    pro.add_argument("name", help="dataset")
    pro.add_argument("version", type=int, help="run / version id (see `centinela models`)")
    pro.add_argument("--if-better", action="store_true",
                     help="the evaluation gate: promote only if the version beats the active one on the last "
                          "labelled days (exit 0 either way; see \"promoted\" in --json)")
    pro.add_argument("--metric", choices=list(GATE_METRICS), default=DEFAULT_GATE_METRIC,
                     help=f"what the gate compares (default {DEFAULT_GATE_METRIC})")
    pro.add_argument("--days", type=int, default=DEFAULT_GATE_DAYS,
                     help=f"the last N labelled days the gate judges on (default {DEFAULT_GATE_DAYS})")
    pro.add_argument("--json", action="store_true", help="print JSON (with --if-better: the gate's comparison)")
    pro.set_defaults(func=promote)

    mod = commands.add_parser("models", help="list a dataset's detector runs and model versions")
    mod.add_argument("name", help="dataset")
    mod.add_argument("--json", action="store_true", help="print JSON")
    mod.set_defaults(func=list_)


def label(args: argparse.Namespace, ctx: Context) -> int:
    from application import labels
    done = labels.label_file(ctx, args.name, str(args.file), args.analyst)
    print(f"added {done.count:,} labels to {args.name!r} from {args.file.name} (one action; undo it on the queue page)")
    return 0


def retrain(args: argparse.Namespace, ctx: Context) -> int:
    from application import models
    run = models.retrain(ctx, args.name, model=args.model, imbalance=args.imbalance, search=args.search,
                         base_run_id=args.base_run, use_truth=not args.no_truth, train_until=args.train_until,
                         hold_out_days=args.hold_out_days)
    if args.json:
        print(json.dumps({"version": run.id, "model": run.detector, "label_counts": run.label_counts, **run.metrics},
                         indent=2, default=str))
        return 0
    m, b = run.metrics, run.metrics["baseline"]
    print(f"version #{run.id} ({run.detector}) trained on {run.label_counts['fraud']:,} fraud and "
          f"{run.label_counts['legitimate']:,} legitimate labels; not promoted")
    print(f"on the newest labels (from {m['validation']['from']}): average precision {fmt(m['average_precision'])} "
          f"vs {fmt(b['average_precision'])} for detector run #{b['run']}; precision@{m['k']} "
          f"{fmt(m['precision_at_k'])} vs {fmt(b['precision_at_k'])}")
    searched = m.get("search")
    if searched:
        print(f"searched {searched['trials']} configurations on {len(searched['folds'])} time-ordered folds: best "
              f"{searched['best']['params']} (mean AP {searched['best']['average_precision']:.3f}, defaults "
              f"{searched['defaults_average_precision']:.3f})")
    print(f"promote it with: centinela promote {args.name!r} {run.id}")
    return 0


def promote(args: argparse.Namespace, ctx: Context) -> int:
    from application import runs
    if args.if_better:
        return promote_if_better(args, ctx)
    run = runs.activate(ctx, args.name, args.version)
    if args.json:
        print(json.dumps({"promoted": True, "version": run.id, "model": run.detector}))
        return 0
    print(f"run #{run.id} ({run.detector}) now ranks the queue of {args.name!r}")
    return 0


def promote_if_better(args: argparse.Namespace, ctx: Context) -> int:
    from application import models
    gate = models.promote_if_better(ctx, args.name, args.version, metric=args.metric, days=args.days)
    if args.json:
        print(json.dumps(gate.as_dict(), indent=2, default=str))
        return 0
    on = gate.judged_on
    print(f"judged on {on['labelled']:,} labelled transactions ({on['fraud']:,} fraud) from {on['from']} to "
          f"{on['until']} (the last {on['days']} labelled days, after each version's training cut-off)")
    for role, v in (("candidate", gate.candidate), ("active", gate.active)):
        if v is not None:
            seen = "; fitted on some of these labels, so it looks better than it is" if v["saw_these_labels"] else ""
            shown = dict.fromkeys([gate.metric, "average_precision", "precision_at_k"])
            at_k = f"@{v['k']}"
            figures = ", ".join(f"{m.replace('_at_k', at_k)} {fmt(v[m])}" for m in shown)
            print(f"  {role:<9} #{v['version']} ({v['model']}): {figures}{seen}")
    print(f"{'promoted' if gate.promoted else 'not promoted'}: {gate.reason}")
    return 0


def list_(args: argparse.Namespace, ctx: Context) -> int:
    from application import models, runs
    current = runs.active(ctx, args.name)
    rows = [{"id": r.id, "kind": r.kind, "model": r.detector, "active": current is not None and r.id == current.run.id,
             "base_run": r.base_run_id, "created_at": str(r.created_at), "created_by": r.created_by,
             "average_precision": r.metrics.get("average_precision"), "precision_at_k": r.metrics.get("precision_at_k"),
             "labels": r.label_counts} for r in models.versions(ctx, args.name)]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{'':1} {'id':>4}  {'kind':<10} {'model':<18} {'AP':>6} {'P@k':>6}  created")
    for r in rows:
        print(f"{'*' if r['active'] else ' '} {r['id']:>4}  {r['kind']:<10} {r['model']:<18} "
              f"{fmt(r['average_precision']):>6} {fmt(r['precision_at_k']):>6}  {r['created_at'][:16]} by {r['created_by']}")
    print("* ranks the queue")
    return 0
