"""Commands on detector runs: fit, score, evaluate."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from cli.output import date_arg, print_metrics
from data.errors import InvalidInput
from detectors.choices import COMBINE, DEFAULT_CONTAMINATION, DEFAULT_DETECTOR

if TYPE_CHECKING:
    from application.context import Context


def register(commands: argparse._SubParsersAction) -> None:
    fit = commands.add_parser("fit", help="fit a detector (or an ensemble), score every transaction, record the run")
    fit.add_argument("name", help="dataset")
    fit.add_argument("--detector", action="append", default=[], metavar="NAME",
                     help=f"detector to fit; repeat for an ensemble (default {DEFAULT_DETECTOR})")
    fit.add_argument("--param", action="append", default=[], metavar="K=V",
                     help="detector parameter; for an ensemble DETECTOR.K=V; repeatable")
    fit.add_argument("--contamination", type=float, default=DEFAULT_CONTAMINATION,
                     help=f"share of rows to alert on (default {DEFAULT_CONTAMINATION})")
    fit.add_argument("--combine", choices=COMBINE, default=COMBINE[0], help="ensemble combination")
    fit.add_argument("--train-until", type=date_arg, help="fit on transactions before this date (YYYY-MM-DD)")
    fit.add_argument("--categorical", default="", help="comma-separated categorical columns to add as features")
    fit.add_argument("--seed", type=int, default=0, help="random state (same seed, same model)")
    fit.add_argument("--json", action="store_true", help="print the run as JSON")
    fit.set_defaults(func=fit_)

    score = commands.add_parser("score", help="score the dataset again with a run's saved model")
    score.add_argument("name", help="dataset")
    score.add_argument("--run", type=int, help="run id (default: the dataset's active run)")
    score.add_argument("--contamination", type=float, help="report alerts at this contamination")
    score.set_defaults(func=score_)

    ev = commands.add_parser("evaluate", help="print a run's metrics against the labels")
    ev.add_argument("name", help="dataset")
    ev.add_argument("--run", type=int, help="run id (default: the dataset's active run)")
    ev.add_argument("--test-from", type=date_arg, help="evaluate on transactions from this date")
    ev.add_argument("--test-until", type=date_arg, help="... and before this date")
    ev.add_argument("--contamination", type=float, help="threshold at this contamination (default: the run's)")
    ev.add_argument("--k", type=int, default=100, help="k for precision@k and card precision@k (default 100)")
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.set_defaults(func=evaluate)


def detector_params(names: list[str], items: list[str]) -> dict[str, dict[str, str]]:
    """K=V (one detector) or DETECTOR.K=V (ensemble) into per-detector dictionaries."""
    params: dict[str, dict[str, str]] = {n: {} for n in names}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInput(f"--param {item!r} is not K=V.", field="param")
        detector, dot, key = key.rpartition(".")
        if not dot:
            if len(names) > 1:
                raise InvalidInput(f"--param {item!r}: with several detectors, write DETECTOR.{key}=VALUE.", field="param")
            detector = names[0]
        if detector not in params:
            raise InvalidInput(f"--param {item!r} names detector {detector!r}, which is not being fitted.", field="param")
        params[detector][key] = value
    return params


def fit_(args: argparse.Namespace, ctx: Context) -> int:
    from application import runs as actions
    names = args.detector or [DEFAULT_DETECTOR]
    categorical = [c.strip() for c in args.categorical.split(",") if c.strip()]
    run = actions.fit(ctx, args.name, names, detector_params(names, args.param), contamination=args.contamination,
                      combine=args.combine, train_until=args.train_until, categorical=categorical, random_state=args.seed)
    if args.json:
        print(json.dumps(run.__dict__, default=str, indent=2))
    else:
        sampled = " (fitted on a sample)" if run.sampled else ""
        print(f"run #{run.id}: {run.detector}{sampled}, fit {run.fit_seconds:.1f} s on {run.fit_rows:,} rows, "
              f"scored in {run.score_seconds:.1f} s; now the active run of {args.name!r}")
        print_metrics(run.metrics)
    return 0


def score_(args: argparse.Namespace, ctx: Context) -> int:
    from application import runs as actions
    done = actions.rescore(ctx, args.name, args.run, args.contamination)
    print(f"run #{done.run.id}: scored {done.rows:,} rows; {done.alerts:,} alerts at contamination "
          f"{done.contamination:g} (threshold {done.threshold:.4f})")
    return 0


def evaluate(args: argparse.Namespace, ctx: Context) -> int:
    from application import runs as actions
    run, metrics = actions.evaluate_run(ctx, args.name, args.run, contamination=args.contamination,
                                        start=args.test_from, end=args.test_until, k=args.k)
    if args.json:
        print(json.dumps({"run": run.id, "detector": run.detector, **metrics}, indent=2, default=str))
    else:
        print(f"run #{run.id} ({run.detector}) on {args.name!r}")
        print_metrics(metrics)
    return 0
