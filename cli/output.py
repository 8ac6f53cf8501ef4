"""What the command line shares: who it acts as, progress lines, argument types, metric lines."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import datetime
from typing import Any

# Who the audit trail records for command-line work: the operator's account on this machine.
OPERATOR = f"cli:{getpass.getuser() or 'unknown'}"


class Progress:
    """Progress lines on stderr, e.g. `[ 45%] Checking 1,000,000 rows`."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, fraction: float, message: str) -> None:
        if not self.quiet:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)


def date_arg(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def print_metrics(metrics: dict[str, Any]) -> None:
    period = metrics.get("period", {})
    where = "in-sample (all rows)" if period.get("in_sample") else f"from {period.get('from') or 'start'} until {period.get('until') or 'end'}"
    print(f"evaluated {where}: {metrics['rows']:,} rows, {metrics['labelled']:,} labelled, {metrics['fraud']:,} fraud, "
          f"{metrics['alerts']:,} alerts")
    if not metrics["labelled"]:
        print("no labels: map a label column or label cases to get metrics")
        return
    print(f"precision {fmt(metrics['precision'])}  recall {fmt(metrics['recall'])}  F1 {fmt(metrics['f1'])}  "
          f"ROC AUC {fmt(metrics['roc_auc'])}  average precision {fmt(metrics['average_precision'])}")
    print(f"precision@{metrics['k']} {fmt(metrics['precision_at_k'])}  card precision@{metrics['k']} "
          f"{fmt(metrics['card_precision_at_k'])} (handbook's, known compromised cards left out: "
          f"{fmt(metrics.get('card_precision_at_k_handbook'))})")
    c = metrics["confusion"]
    print(f"confusion: tp {c['tp']:,}  fp {c['fp']:,}  fn {c['fn']:,}  tn {c['tn']:,}")
    for scenario, r in sorted(metrics["recall_by_scenario"].items()):
        print(f"  recall {scenario:<22} {r['recall']:.3f} ({r['caught']:,} of {r['fraud']:,})")
