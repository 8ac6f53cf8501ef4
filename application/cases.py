"""Cases: take, assign, change status (closing needs a reason); and what the case page, the
command line and the API show of one transaction: its fields, score and rank under the active
run, label, case state and both histories, its surroundings, and why it was flagged."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from application.context import Context, retry_on_conflict
from application.datasets import DatasetRef
from application.labels import audit_target
from application.runs import ActiveRun, require_active
from data import alerts, webhooks
from data import cases as store
from data.audit import record
from data.cases import KEEP
from data.datasets import Dataset
from data.errors import NotFound
from detectors.explain import ExplainerFactory, explain_case
from detectors.runs import score_rank, stored_score


@retry_on_conflict
def change(ctx: Context, dataset: DatasetRef, transaction_ids: Iterable[Any], *, status: str | None = None,
           assignee: Any = KEEP, reason: str | None = None) -> int:
    """Change the status and/or assignee of cases (closing needs a reason); returns the count."""
    actor = store.check_analyst(ctx.actor)
    status, assignee, reason = store.check_case_change(status, assignee, reason)
    target = ctx.dataset(dataset)
    ids = store.checked_ids(ctx.conn, target, transaction_ids)
    with ctx.unit_of_work() as conn:
        store.append_case_events(conn, target, ids, actor, status=status, assignee=assignee, reason=reason)
        after = {"transactions": ids, **({"status": status} if status else {}), **({"reason": reason} if reason else {}),
                 **({"assignee": assignee} if assignee is not KEEP else {})}
        record(conn, actor, "case", dataset_id=target.id, target=audit_target(ids), after=after)
        webhooks.enqueue(conn, "case.changed", target.id, target.name,
                         [{**{k: v for k, v in after.items() if k != "transactions"}, "by": actor,
                           **webhooks.capped_ids(ids)}], ctx.clock())
    return len(ids)


def take(ctx: Context, dataset: DatasetRef, transaction_ids: Iterable[Any]) -> int:
    """The context's analyst takes cases: assigned to them and in review."""
    return change(ctx, dataset, transaction_ids, status="in_review", assignee=ctx.actor)


@dataclass(frozen=True)
class Case:
    """One transaction as an analyst investigates it."""

    dataset: Dataset
    active: ActiveRun
    transaction_id: str
    detail: dict[str, Any]  # every stored column
    tx_row: int
    score: float | None
    rank: int | None  # 1 = highest score of the run
    scored: int  # transactions the run scored
    label: str | None
    state: dict[str, Any]  # status, assignee, reason, actor, updated_at
    label_history: pd.DataFrame
    case_history: pd.DataFrame

    @property
    def is_alert(self) -> bool:
        return self.score is not None and self.score >= self.active.threshold

    @property
    def customer_id(self) -> str | None:
        return self.detail.get("customer_id") or None

    @property
    def merchant_id(self) -> str | None:
        return self.detail.get("merchant_id") or None

    @property
    def when(self) -> datetime:
        return pd.Timestamp(self.detail["ts"]).to_pydatetime()


def open_case(ctx: Context, dataset: DatasetRef, transaction_id: str) -> Case:
    """A case by transaction id (NotFound if the dataset has no such transaction)."""
    target = ctx.dataset(dataset)
    active = require_active(ctx, target)
    detail = alerts.transaction_detail(ctx.conn, target, transaction_id)
    if detail is None:
        raise NotFound(f"transaction {transaction_id!r} is not in dataset {target.name!r}.", field="transaction_id")
    tx_row = int(detail["tx_row"])
    score = stored_score(ctx.conn, active.run.id, tx_row)
    rank, scored = score_rank(ctx.conn, active.run.id, score) if score is not None else (None, 0)
    return Case(target, active, str(transaction_id), detail, tx_row, score, rank, scored,
                store.current_labels(ctx.conn, target, [transaction_id]).get(str(transaction_id)),
                store.case_state(ctx.conn, target, transaction_id),
                store.label_history(ctx.conn, target, transaction_id),
                store.case_history(ctx.conn, target, transaction_id))


def explanation(ctx: Context, case: Case, explainer_factory: ExplainerFactory) -> dict[str, Any]:
    """Why the active run scored the case as it did: SHAP attributions, stored per run and
    feature version (recomputed when the features changed since), with their lineage."""
    return explain_case(ctx.conn, case.dataset, case.active.run, case.tx_row, explainer_factory)


@dataclass(frozen=True)
class Surroundings:
    customer_history: pd.DataFrame  # the customer's latest transactions with score and label
    devices: pd.DataFrame
    places: pd.DataFrame
    merchant_activity: pd.DataFrame  # the merchant's days around the transaction
    usual_location: tuple[float, float] | None  # mean coordinates of the customer's earlier transactions


def surroundings(ctx: Context, case: Case) -> Surroundings:
    conn, dataset, run = ctx.conn, case.dataset, case.active.run
    customer, merchant = case.customer_id, case.merchant_id
    seen = alerts.customer_devices_and_places(conn, dataset, customer) if customer else {"devices": pd.DataFrame(),
                                                                                         "places": pd.DataFrame()}
    return Surroundings(
        alerts.customer_history(conn, dataset, customer, run.id) if customer else pd.DataFrame(),
        seen["devices"], seen["places"],
        alerts.merchant_activity(conn, dataset, merchant, case.when, run.id, case.active.threshold) if merchant
        else pd.DataFrame(),
        alerts.usual_location(conn, dataset, customer, case.when) if customer else None,
    )


def analysts(ctx: Context, dataset: DatasetRef) -> list[str]:
    """Everyone who has worked on the dataset, and the context's analyst (the assignee picker)."""
    return sorted(set(store.analysts(ctx.conn, ctx.dataset(dataset))) | ({ctx.actor} if ctx.actor else set()))
