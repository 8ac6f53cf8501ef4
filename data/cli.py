"""`centinela`: the command line for scripted use and batch jobs.

Every command works on the database in $CENTINELA_DB (default ./centinela.duckdb), prints
progress on long work to stderr, and on bad input exits with status 2 and the same message
the app shows.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from data.datasets import delete_dataset, get_dataset, list_datasets
from data.db import DatabaseInUseError, connect, database_path, quote_ident, sql_string
from data.errors import DataError
from data.features import compute_features, feature_catalogue
from data.ingest import ENCODINGS, import_file, inspect_file
from data.synthetic import SyntheticConfig, store_synthetic

# Who the audit trail records for command-line work: the operator's account on this machine.
OPERATOR = f"cli:{getpass.getuser() or 'unknown'}"


class _Progress:
    """Progress lines on stderr, e.g. `[ 45%] Checking 1,000,000 rows`."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, fraction: float, message: str) -> None:
        if not self.quiet:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centinela", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate a synthetic Peru dataset")
    gen.add_argument("--rows", type=int, default=200_000, help="number of transactions (default 200,000)")
    gen.add_argument("--name", required=True, help="dataset name")
    gen.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    gen.add_argument("--fraud-rate", type=float, default=0.005, help="share of fraudulent transactions (default 0.005)")
    gen.add_argument("--days", type=int, default=90, help="length of the period in days (default 90)")
    gen.add_argument("--start", type=date.fromisoformat, default=date(2026, 8, 1), help="first day, YYYY-MM-DD")
    gen.add_argument("--no-features", action="store_true", help="do not compute features afterwards")

    imp = sub.add_parser("import", help="import a CSV or Parquet file as a dataset")
    imp.add_argument("path", type=Path)
    imp.add_argument("--name", required=True, help="dataset name")
    imp.add_argument("--map", action="append", default=[], metavar="ROLE=COLUMN",
                     help="set a role's column (ROLE= unmaps it; categorical=a,b and numeric=c,d set extras); repeatable")
    imp.add_argument("--encoding", choices=ENCODINGS, default="utf-8", help="CSV text encoding (default utf-8)")
    imp.add_argument("--skip-bad-rows", action="store_true",
                     help="leave out rows whose timestamp or amount does not parse (they are counted and listed)")
    imp.add_argument("--show-mapping", action="store_true", help="print the guessed mapping and stop")
    imp.add_argument("--no-features", action="store_true", help="do not compute features afterwards")

    lst = sub.add_parser("datasets", help="list datasets")
    lst.add_argument("--json", action="store_true", help="print JSON")

    feat = sub.add_parser("features", help="compute a dataset's features and print the catalogue")
    feat.add_argument("name")
    feat.add_argument("--label-delay-days", type=int, default=7,
                      help="labels are used by features only once this many days old (default 7)")
    feat.add_argument("--show", action="store_true", help="print the catalogue without computing")
    feat.add_argument("--json", action="store_true", help="print JSON")

    exp = sub.add_parser("export", help="write a dataset to CSV or Parquet")
    exp.add_argument("name")
    exp.add_argument("--out", type=Path, required=True, help="file ending in .csv or .parquet")

    rm = sub.add_parser("delete", help="move a dataset to the trash (restorable from the Data page)")
    rm.add_argument("name")

    fit = sub.add_parser("fit", help="fit a detector (or an ensemble), score every transaction, record the run")
    fit.add_argument("name", help="dataset")
    fit.add_argument("--detector", action="append", default=[], metavar="NAME",
                     help="detector to fit; repeat for an ensemble (default isolation_forest)")
    fit.add_argument("--param", action="append", default=[], metavar="K=V",
                     help="detector parameter; for an ensemble DETECTOR.K=V; repeatable")
    fit.add_argument("--contamination", type=float, default=0.01, help="share of rows to alert on (default 0.01)")
    fit.add_argument("--combine", choices=("mean", "max", "rank"), default="mean", help="ensemble combination")
    fit.add_argument("--train-until", type=_date, help="fit on transactions before this date (YYYY-MM-DD)")
    fit.add_argument("--categorical", default="", help="comma-separated categorical columns to add as features")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--json", action="store_true", help="print the run as JSON")

    score = sub.add_parser("score", help="score the dataset again with a run's saved model")
    score.add_argument("name", help="dataset")
    score.add_argument("--run", type=int, help="run id (default: the dataset's active run)")
    score.add_argument("--contamination", type=float, help="report alerts at this contamination")

    ev = sub.add_parser("evaluate", help="print a run's metrics against the labels")
    ev.add_argument("name", help="dataset")
    ev.add_argument("--run", type=int, help="run id (default: the dataset's active run)")
    ev.add_argument("--test-from", type=_date, help="evaluate on transactions from this date")
    ev.add_argument("--test-until", type=_date, help="... and before this date")
    ev.add_argument("--contamination", type=float, help="threshold at this contamination (default: the run's)")
    ev.add_argument("--k", type=int, default=100, help="k for precision@k and card precision@k (default 100)")
    ev.add_argument("--json", action="store_true", help="print JSON")

    lab = sub.add_parser("label", help="add analyst labels from a CSV file (transaction_id,label[,analyst][,note])")
    lab.add_argument("name", help="dataset")
    lab.add_argument("--file", type=Path, required=True, help="CSV file; one bad row rejects the whole file")
    lab.add_argument("--analyst", default=os.environ.get("CENTINELA_ANALYST") or getpass.getuser() or "cli",
                     help="analyst for rows without one (default $CENTINELA_ANALYST, else the system user)")

    re_ = sub.add_parser("retrain", help="train a new model version on the labels (not promoted)")
    re_.add_argument("name", help="dataset")
    re_.add_argument("--model", choices=("hgb", "rf"), default="hgb", help="HistGradientBoosting (default) or RandomForest")
    re_.add_argument("--train-until", type=_date, help="use labels of transactions before this date only")
    re_.add_argument("--base-run", type=int, help="detector run whose score is a feature (default: the active one)")
    re_.add_argument("--no-truth", action="store_true", help="analyst labels only, not the dataset's label column")
    re_.add_argument("--json", action="store_true", help="print the version as JSON")

    pro = sub.add_parser("promote", help="make a run or model version the one the queue ranks by")
    pro.add_argument("name", help="dataset")
    pro.add_argument("version", type=int, help="run / version id (see `centinela models`)")

    mod = sub.add_parser("models", help="list a dataset's detector runs and model versions")
    mod.add_argument("name", help="dataset")
    mod.add_argument("--json", action="store_true", help="print JSON")

    usr = sub.add_parser("users", help="app users: add, list, change (the first admin too)")
    usr_sub = usr.add_subparsers(dest="users_command", required=True)
    add = usr_sub.add_parser("add", help="add a user; asks for the password (or reads it from stdin)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=("analyst", "manager", "data_scientist", "admin"))
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    usr_sub.add_parser("list", help="list users and roles").add_argument("--json", action="store_true")
    usr_sub.add_parser("first-admin", help="with no user yet: create the admin from $CENTINELA_ADMIN_PASSWORD, "
                                          "or ask for its password at a terminal (`make run` calls this)")
    chg = usr_sub.add_parser("set", help="change a user's role or password, or disable / enable it")
    chg.add_argument("username")
    chg.add_argument("--role", choices=("analyst", "manager", "data_scientist", "admin"))
    chg.add_argument("--password-stdin", action="store_true", help="read a new password from standard input")
    state = chg.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true")
    state.add_argument("--enable", action="store_true")

    aud = sub.add_parser("audit", help="print the audit trail, newest first")
    aud.add_argument("--actor", help="only this actor")
    aud.add_argument("--action", action="append", default=[], help="only this action (repeatable)")
    aud.add_argument("--limit", type=int, default=100)
    aud.add_argument("--json", action="store_true", help="print JSON lines")
    return parser


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _detector_params(names: list[str], items: list[str]) -> dict[str, dict[str, str]]:
    """K=V (one detector) or DETECTOR.K=V (ensemble) into per-detector dictionaries."""
    params: dict[str, dict[str, str]] = {n: {} for n in names}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise DataError(f"--param {item!r} is not K=V.")
        detector, dot, key = key.rpartition(".")
        if not dot:
            if len(names) > 1:
                raise DataError(f"--param {item!r}: with several detectors, write DETECTOR.{key}=VALUE.")
            detector = names[0]
        if detector not in params:
            raise DataError(f"--param {item!r} names detector {detector!r}, which is not being fitted.")
        params[detector][key] = value
    return params


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress = _Progress(args.quiet)
    try:
        conn = connect()
    except DatabaseInUseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    try:
        return _run(args, conn, progress)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # configuration out of range (rows, fraud rate, delay)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()


def _read_password(from_stdin: bool) -> str:
    """A password from standard input, or typed twice at a terminal (never an argument: it would
    stay in the shell history and the process list)."""
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Password again: ") != first:
        raise DataError("the two passwords differ.")
    return first


def _users(args: argparse.Namespace, conn) -> int:
    import pandas as pd

    from data.users import add_user, change_user, list_users

    if args.users_command == "first-admin":
        from data.users import ADMIN_PASSWORD_ENV, ensure_first_admin, has_users

        if has_users(conn):
            return 0
        created = ensure_first_admin(conn)
        if created is None and sys.stdin.isatty():
            print("No user exists yet. Create the first admin (user name 'admin').")
            created = add_user(conn, "admin", _read_password(False), "admin", OPERATOR)
        if created is None:
            print(f"No user exists yet: set {ADMIN_PASSWORD_ENV} or run `centinela users add NAME --role admin`; "
                  "the app shows the same until then.")
        else:
            print(f"created the first admin, {created.username!r}; sign in with it")
        return 0
    if args.users_command == "add":
        user = add_user(conn, args.username, _read_password(args.password_stdin), args.role, OPERATOR)
        print(f"added {user.username!r} as {user.role}")
    elif args.users_command == "list":
        users = list_users(conn)
        if args.json:
            print(users.to_json(orient="records", date_format="iso"))
        for row in ([] if args.json else users.itertuples()):
            state = " (disabled)" if pd.notna(row.disabled_at) else ""
            print(f"{row.username:<24} {row.role:<15} added {row.created_at:%Y-%m-%d} by {row.created_by}{state}")
    else:
        password = _read_password(True) if args.password_stdin else None
        disabled = True if args.disable else False if args.enable else None
        change_user(conn, args.username, OPERATOR, role=args.role, password=password, disabled=disabled)
        print(f"changed {args.username!r}")
    return 0


def _run(args: argparse.Namespace, conn, progress: _Progress) -> int:
    if args.command == "users":
        return _users(args, conn)

    if args.command == "audit":
        import pandas as pd

        from data.audit import audit_log

        log = audit_log(conn, actor=args.actor, actions=tuple(args.action), limit=args.limit)
        for row in log.itertuples():
            if args.json:
                print(json.dumps({"id": row.id, "when": str(row.when), "actor": row.actor, "action": row.action,
                                  "dataset_id": None if pd.isna(row.dataset_id) else int(row.dataset_id),
                                  "target": row.target, "before": row.before, "after": row.after}, default=str))
            else:
                print(f"{row.when:%Y-%m-%d %H:%M:%S}  {row.actor:<20} {row.action:<12} {row.target or ''}")
        return 0

    if args.command == "generate":
        cfg = SyntheticConfig(rows=args.rows, seed=args.seed, fraud_rate=args.fraud_rate, start=args.start, days=args.days)
        dataset = store_synthetic(conn, args.name, cfg, progress=progress, actor=OPERATOR)
        print(f"generated {dataset.name!r}: {dataset.row_count:,} rows, {dataset.min_ts} to {dataset.max_ts}")
        if not args.no_features:
            _features(conn, dataset, 7, progress)
        return 0

    if args.command == "import":
        info = inspect_file(conn, args.path, encoding=args.encoding)
        mapping = info.guessed_mapping().with_overrides(args.map, info.column_names)
        if args.show_mapping:
            print(json.dumps({"roles": mapping.roles, "categorical": mapping.categorical, "numeric": mapping.numeric}, indent=2))
            return 0
        result = import_file(conn, args.path, args.name, mapping, encoding=info.encoding,
                             skip_bad_rows=args.skip_bad_rows, progress=progress, actor=OPERATOR)
        print(f"imported {result.dataset.name!r}: {result.rows_stored:,} of {result.rows_read:,} rows "
              f"in {result.seconds:.1f} s")
        for note in result.notes:
            print(f"note: {note}")
        for p in result.problems:
            print(f"problem: column '{p['column']}' ({p['role']}): {p['count']:,} values did not parse, "
                  f"first rows {', '.join(f'{r:,}' for r in p['rows'])}; {p['action']}")
        if not args.no_features:
            _features(conn, result.dataset, 7, progress)
        return 0

    if args.command == "datasets":
        rows = [
            {"name": d.name, "rows": d.row_count, "from": str(d.min_ts), "to": str(d.max_ts),
             "label_column": d.import_report.get("mapping", {}).get("roles", {}).get("label")
             or ("is_fraud" if d.has_role("label") else None), "source": d.source}
            for d in list_datasets(conn)
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

    if args.command == "features":
        dataset = get_dataset(conn, args.name)
        if not args.show:
            _features(conn, dataset, args.label_delay_days, progress)
        catalogue = feature_catalogue(conn, dataset)
        if args.json:
            print(catalogue.to_json(orient="records", indent=2))
        else:
            for row in catalogue.itertuples():
                why = f"  ({row.reason})" if row.reason else ""
                print(f"{row.status:<12} {row.feature:<24} [{row.unit}] {row.description}{why}")
        return 0

    if args.command == "export":
        dataset = get_dataset(conn, args.name)
        suffix = args.out.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise DataError("the output must end in .csv or .parquet.", file=str(args.out))
        columns = ", ".join(quote_ident(c.name) for c in dataset.columns if c.name != "tx_row")
        fmt = "(HEADER, FORMAT csv)" if suffix == ".csv" else "(FORMAT parquet)"
        progress(0.1, f"Writing {dataset.row_count:,} rows to {args.out}")
        # COPY takes no parameter for its target, so the path goes in as an escaped literal.
        conn.execute(f"COPY (SELECT {columns} FROM {dataset.table} ORDER BY tx_row) TO {sql_string(str(args.out))} {fmt}")
        print(f"wrote {dataset.row_count:,} rows to {args.out}")
        return 0

    if args.command == "fit":
        from detectors.pipeline import FeatureSpec, ensure_features
        from detectors.runs import fit_run

        dataset = get_dataset(conn, args.name)
        names = args.detector or ["isolation_forest"]
        spec = None
        if args.categorical:
            feature_set = ensure_features(conn, dataset)
            spec = FeatureSpec(list(feature_set.computed), [c.strip() for c in args.categorical.split(",") if c.strip()])
        run = fit_run(conn, dataset, names, _detector_params(names, args.param), contamination=args.contamination,
                      combine=args.combine, train_until=args.train_until, spec=spec, seed=args.seed, progress=progress,
                      created_by=OPERATOR)
        if args.json:
            print(json.dumps(run.__dict__, default=str, indent=2))
        else:
            sampled = " (fitted on a sample)" if run.sampled else ""
            print(f"run #{run.id}: {run.detector}{sampled}, fit {run.fit_seconds:.1f} s on {run.fit_rows:,} rows, "
                  f"scored in {run.score_seconds:.1f} s; now the active run of {dataset.name!r}")
            _print_metrics(run.metrics)
        return 0

    if args.command == "score":
        from detectors.runs import alert_count, rescore, resolve_run

        dataset = get_dataset(conn, args.name)
        run = resolve_run(conn, dataset, args.run)
        scores = rescore(conn, dataset, run, progress=progress)
        threshold, alerts = alert_count(scores, args.contamination or run.contamination)
        print(f"run #{run.id}: scored {len(scores):,} rows; {alerts:,} alerts at contamination "
              f"{args.contamination or run.contamination:g} (threshold {threshold:.4f})")
        return 0

    if args.command == "evaluate":
        from detectors.runs import evaluate_run, resolve_run

        dataset = get_dataset(conn, args.name)
        run = resolve_run(conn, dataset, args.run)
        metrics = evaluate_run(conn, dataset, run, args.contamination, args.test_from, args.test_until, args.k)
        if args.json:
            print(json.dumps({"run": run.id, "detector": run.detector, **metrics}, indent=2, default=str))
        else:
            print(f"run #{run.id} ({run.detector}) on {dataset.name!r}")
            _print_metrics(metrics)
        return 0

    if args.command == "label":
        from data.cases import import_labels

        dataset = get_dataset(conn, args.name)
        _, count = import_labels(conn, dataset, str(args.file), args.analyst)
        print(f"added {count:,} labels to {dataset.name!r} from {args.file.name} (one action; undo it on the queue page)")
        return 0

    if args.command == "retrain":
        from detectors.supervised import retrain

        dataset = get_dataset(conn, args.name)
        run = retrain(conn, dataset, model=args.model, base_run_id=args.base_run, use_truth=not args.no_truth,
                      train_until=args.train_until, created_by=OPERATOR,
                      progress=progress)
        if args.json:
            print(json.dumps({"version": run.id, "model": run.detector, "label_counts": run.label_counts,
                              **run.metrics}, indent=2, default=str))
        else:
            m, b = run.metrics, run.metrics["baseline"]
            print(f"version #{run.id} ({run.detector}) trained on {run.label_counts['fraud']:,} fraud and "
                  f"{run.label_counts['legitimate']:,} legitimate labels; not promoted")
            print(f"on the newest labels (from {m['validation']['from']}): average precision {_fmt(m['average_precision'])} "
                  f"vs {_fmt(b['average_precision'])} for detector run #{b['run']}; precision@{m['k']} "
                  f"{_fmt(m['precision_at_k'])} vs {_fmt(b['precision_at_k'])}")
            print(f"promote it with: centinela promote {dataset.name!r} {run.id}")
        return 0

    if args.command == "promote":
        from detectors.supervised import promote

        dataset = get_dataset(conn, args.name)
        run = promote(conn, dataset, args.version, OPERATOR)
        print(f"run #{run.id} ({run.detector}) now ranks the queue of {dataset.name!r}")
        return 0

    if args.command == "models":
        from detectors.runs import active_run, list_runs

        dataset = get_dataset(conn, args.name)
        current = active_run(conn, dataset)
        rows = [{"id": r.id, "kind": r.kind, "model": r.detector, "active": current is not None and r.id == current.id,
                 "base_run": r.base_run_id, "created_at": str(r.created_at), "created_by": r.created_by,
                 "average_precision": r.metrics.get("average_precision"), "precision_at_k": r.metrics.get("precision_at_k"),
                 "labels": r.label_counts} for r in list_runs(conn, dataset)]
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
        else:
            print(f"{'':1} {'id':>4}  {'kind':<10} {'model':<18} {'AP':>6} {'P@k':>6}  created")
            for r in rows:
                print(f"{'*' if r['active'] else ' '} {r['id']:>4}  {r['kind']:<10} {r['model']:<18} "
                      f"{_fmt(r['average_precision']):>6} {_fmt(r['precision_at_k']):>6}  {r['created_at'][:16]} by {r['created_by']}")
            print("* ranks the queue")
        return 0

    if args.command == "delete":
        dataset = delete_dataset(conn, args.name, OPERATOR)
        print(f"moved {dataset.name!r} to the trash; restore it from the Data page")
        return 0
    raise AssertionError(args.command)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _print_metrics(metrics: dict) -> None:
    period = metrics.get("period", {})
    where = "in-sample (all rows)" if period.get("in_sample") else f"from {period.get('from') or 'start'} until {period.get('until') or 'end'}"
    print(f"evaluated {where}: {metrics['rows']:,} rows, {metrics['labelled']:,} labelled, {metrics['fraud']:,} fraud, "
          f"{metrics['alerts']:,} alerts")
    if not metrics["labelled"]:
        print("no labels: map a label column or label cases to get metrics")
        return

    def pct(v):
        return "—" if v is None else f"{v:.3f}"

    print(f"precision {pct(metrics['precision'])}  recall {pct(metrics['recall'])}  F1 {pct(metrics['f1'])}  "
          f"ROC AUC {pct(metrics['roc_auc'])}  average precision {pct(metrics['average_precision'])}")
    print(f"precision@{metrics['k']} {pct(metrics['precision_at_k'])}  card precision@{metrics['k']} {pct(metrics['card_precision_at_k'])}")
    c = metrics["confusion"]
    print(f"confusion: tp {c['tp']:,}  fp {c['fp']:,}  fn {c['fn']:,}  tn {c['tn']:,}")
    for scenario, r in sorted(metrics["recall_by_scenario"].items()):
        print(f"  recall {scenario:<22} {r['recall']:.3f} ({r['caught']:,} of {r['fraud']:,})")


def _features(conn, dataset, delay: int, progress: _Progress) -> None:
    fs = compute_features(conn, dataset, label_delay_days=delay, progress=progress)
    print(f"features: {len(fs.computed)} computed in {fs.seconds:.1f} s" + (f", {len(fs.skipped)} skipped" if fs.skipped else ""))
    for name, reason in fs.skipped.items():
        print(f"skipped {name}: {reason}")


if __name__ == "__main__":
    sys.exit(main())
