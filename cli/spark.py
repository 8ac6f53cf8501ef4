"""`centinela spark ...`: the dataset's features and active model on Apache Spark (pyspark needed:
`pip install -r requirements-spark.txt`, and a Java 17 runtime)."""

from __future__ import annotations

import argparse
import importlib.util
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from application.context import Context
from data.errors import InvalidInput

IN_USE_HINT = ("`centinela spark` runs Spark jobs in their own driver, not inside the app: stop the app "
               "(or run the job on a copy of the database: `centinela backup`), then run it again.")


def register(commands: argparse._SubParsersAction) -> None:
    spark = commands.add_parser("spark", help="compute features and score a data lake's Parquet on Apache Spark")
    # A Spark job runs in its own driver, not in the app's process: with the app running on the
    # same database, the job waits for it to stop (the database has one writing process).
    spark.set_defaults(forwardable=False, in_use_hint=IN_USE_HINT)
    sub = spark.add_subparsers(dest="spark_command", required=True, metavar="COMMAND")

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--input", action="append", required=True, metavar="PATH",
                            help="Parquet file, folder (partitioned or not) or glob; repeatable")
        parser.add_argument("--dataset", required=True, help="the workbench dataset whose mapping, features and model apply")
        parser.add_argument("--output", required=True, help="a new folder to write (refused if it exists)")
        parser.add_argument("--master", help="Spark master URL (default: the one spark-submit was given, else local[*])")

    score = sub.add_parser("score", help="score every row with the dataset's active model; decisions and alerts as Parquet by day")
    common(score)
    score.add_argument("--model", type=int, metavar="VERSION", help="a run or model version (default: the active one)")
    score.set_defaults(func=score_)

    imp = sub.add_parser("import-alerts", help="bring a `spark score` output's alerts into the dataset's queue (idempotent)")
    imp.add_argument("path", help="the --output folder of `spark score`, or its alerts/ folder")
    imp.add_argument("--dataset", required=True)
    imp.add_argument("--json", action="store_true", help="print JSON")
    imp.set_defaults(func=import_alerts, forwardable=True)  # no Spark: the app can run it for the command line

    smp = sub.add_parser("sample", help="draw a time-respecting training sample (whole customers) into a new dataset")
    smp.add_argument("--input", action="append", required=True, metavar="PATH", help="Parquet file, folder or glob; repeatable")
    smp.add_argument("--dataset", required=True, help="the new dataset the sample becomes")
    smp.add_argument("--rows", type=int, required=True, help="about this many rows")
    smp.add_argument("--stratify-labels", action="store_true",
                     help="keep every customer with a labelled fraud; draw the others (weights in sample_weight)")
    smp.add_argument("--seed", type=int, default=0, help="the same seed draws the same sample")
    smp.add_argument("--master", help="Spark master URL (default: the one spark-submit was given, else local[*])")
    smp.set_defaults(func=sample_)

    feats = sub.add_parser("features", help="write the dataset's features of every input row as Parquet")
    common(feats)
    feats.set_defaults(func=features_)


def _session(master: str | None):
    if importlib.util.find_spec("pyspark") is None:
        raise InvalidInput("pyspark is not installed.", hint="pip install -r requirements-spark.txt (and a Java 17 runtime)")
    from scaleout.features import session

    return session(master)


def score_(args: argparse.Namespace, ctx: Context) -> int:
    from application import scaleout
    done = scaleout.spark_score(ctx, args.dataset, args.input, args.output, _session(args.master), run_id=args.model)
    print(f"scored {done.rows:,} rows with run #{done.run_id} (threshold {done.threshold:.4f}, feature set "
          f"{done.feature_set_version}): {done.alerts:,} alerts in {done.seconds:.1f} s")
    print(f"decisions: {done.decisions}\nalerts: {done.alerts_path}")
    return 0


def features_(args: argparse.Namespace, ctx: Context) -> int:
    from application import scaleout
    out = scaleout.write_spark_features(ctx, args.dataset, args.input, args.output, _session(args.master))
    print(f"features of {args.dataset!r} written to {out}")
    return 0


def import_alerts(args: argparse.Namespace, ctx: Context) -> int:
    from application import scaleout
    done = scaleout.import_spark_alerts(ctx, args.dataset, args.path)
    if args.json:
        print(json.dumps(done.__dict__))
        return 0
    print(f"{done.imported:,} alerts imported into {args.dataset!r} ({done.already_stored:,} of the "
          f"{done.alerts:,} already stored; scored by run {', '.join(f'#{r}' for r in done.runs) or '-'})")
    stale = [v for v in done.feature_set_versions if v != done.current_version]
    if stale:
        print(f"note: Spark computed feature set {', '.join(stale)}; the dataset's is now {done.current_version} "
              "(its definitions or labels changed since): the imported features are Spark's, as scored.")
    return 0


def sample_(args: argparse.Namespace, ctx: Context) -> int:
    from application import scaleout
    done = scaleout.spark_sample(ctx, args.input, args.dataset, args.rows, _session(args.master),
                                 stratify=args.stratify_labels, seed=args.seed)
    whole = f", {done.kept_whole:,} customers kept whole for their fraud" if args.stratify_labels else ""
    print(f"dataset {done.created.dataset.name!r}: {done.sample_rows:,} of {done.lake_rows:,} rows, drawn by {done.unit} "
          f"at rate {done.rate:.4g}{whole}; weights in sample_weight")
    if done.sample_rows > args.rows and done.rate == 0:
        print(f"note: the customers with a labelled fraud alone hold {done.sample_rows:,} rows, more than the "
              f"{args.rows:,} asked; no other customer was drawn.")
    return 0
