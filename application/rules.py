"""Rules: check a condition, draft a rule, edit it (a new version), restore a version, move it
through its lifecycle (draft -> shadow -> active -> retired), delete it; backtest it; and what
the queue, the case view, the KPI overview and live scoring read of the rules in force.

Roles: analysts (and data scientists and admins) draft and edit drafts; data scientists and
admins deploy (shadow, activate, retire), edit deployed rules and delete; managers read. The
command line acts as the operator at the machine, as for users and keys. Every change is one
unit of work with its audit row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import duckdb
import pandas as pd

from application.context import Context
from application.datasets import DatasetRef
from application.runs import active as active_run
from data import lists as list_store
from data import rules as store
from data import users
from data.audit import record
from data.datasets import Dataset
from data.errors import Conflict, Forbidden, InvalidInput
from data.features import load_feature_set
from data.rule_grammar import Diagnostic, check, diagnose
from data.rules import AlertSources, Rule
from detectors.rule_suggestions import suggest_rules

EDITORS = ("analyst", "data_scientist", "admin")
DEPLOYERS = ("data_scientist", "admin")
DEPLOYED = ("shadow", "active")


def actor_role(ctx: Context) -> str | None:
    """The actor's role, or None where no role applies (the command line's operator, a database
    without users): then every action is open, as for the other command-line actions. An API key
    (`api:NAME`) reaches a role-checked action only through the command route, which takes only
    keys of the `operate` scope: the command line's operator, running through the app."""
    if ctx.actor.startswith(("cli:", "api:")) or not users.has_users(ctx.conn):
        return None
    user = users.get_user(ctx.conn, ctx.actor)
    return user.role if user else ""


def require_role(ctx: Context, roles: tuple[str, ...], what: str) -> None:
    role = actor_role(ctx)
    if role is not None and role not in roles:
        raise Forbidden(f"your role ({role or 'none'}) cannot {what}.",
                        hint=f"Roles that can: {', '.join(r.replace('_', ' ') for r in roles)}.")


def may_deploy(ctx: Context) -> bool:
    return actor_role(ctx) in (None, *DEPLOYERS)


# --- checking -----------------------------------------------------------------------------------


def check_condition(ctx: Context, dataset: DatasetRef, condition: str) -> list[Diagnostic]:
    """Every problem with a condition on this dataset (an empty list: it is accepted); changes nothing."""
    target = ctx.dataset(dataset)
    return diagnose(condition, store.rule_schema(ctx.conn, target, ctx.clock()))[1]


def rendered_condition(ctx: Context, dataset: DatasetRef, condition: str) -> str:
    """The DuckDB SQL a condition renders to (shown on the Rules page); InvalidInput if it does not check."""
    target = ctx.dataset(dataset)
    return check(condition, store.rule_schema(ctx.conn, target, ctx.clock())).sql


def _checked(ctx: Context, target: Dataset, condition: str) -> str:
    check(condition, store.rule_schema(ctx.conn, target, ctx.clock()))
    return condition.strip()


# --- writing ------------------------------------------------------------------------------------


def add(ctx: Context, dataset: DatasetRef, name: str, condition: str, *, action: str = "alert",
        severity: int = store.DEFAULT_SEVERITY, description: str | None = None) -> Rule:
    """Draft a new rule (version 1); its condition must check."""
    require_role(ctx, EDITORS, "draft rules")
    target = ctx.dataset(dataset)
    name, action = store.check_rule_name(name), store.check_action(action)
    severity, description = store.check_severity(severity), store.check_description(description)
    condition = _checked(ctx, target, condition)
    now = ctx.clock()
    with ctx.unit_of_work() as conn:
        rule_id = store.insert_rule(conn, target, name, ctx.actor, now)
        version = store.insert_version(conn, rule_id, condition, action, severity, description, ctx.actor, now)
        store.append_event(conn, rule_id, version, "draft", ctx.actor, now)
        record(conn, ctx.actor, "rule_add", dataset_id=target.id, target=f"rule {name}",
               after={"version": version, "condition": condition, "action": action, "severity": severity,
                      "description": description})
    return store.get_rule(ctx.conn, target, name)


def edit(ctx: Context, dataset: DatasetRef, name: str, *, condition: str | None = None, action: str | None = None,
         severity: int | None = None, description: str | None = None) -> Rule:
    """A new version of a rule with what changed; it keeps its status (a deployed rule then runs the
    new version, so only those who deploy may edit one)."""
    target = ctx.dataset(dataset)
    rule = store.get_rule(ctx.conn, target, name)
    require_role(ctx, DEPLOYERS if rule.status in DEPLOYED else EDITORS,
                 f"edit a rule in {rule.status}" if rule.status in DEPLOYED else "edit rules")
    new = {"condition": _checked(ctx, target, condition) if condition is not None else rule.condition,
           "action": store.check_action(action) if action is not None else rule.action,
           "severity": store.check_severity(severity) if severity is not None else rule.severity,
           "description": store.check_description(description) if description is not None else rule.description}
    old = {k: getattr(rule, k) for k in new}
    if new == old:
        raise Conflict(f"rule {rule.name!r} already reads so (version {rule.version}): nothing to change.")
    return _new_version(ctx, target, rule, new, "rule_edit", before=old)


def restore(ctx: Context, dataset: DatasetRef, name: str, version: int) -> Rule:
    """A new version that is a copy of an older one (versions are never rewritten)."""
    target = ctx.dataset(dataset)
    rule = store.get_rule(ctx.conn, target, name)
    require_role(ctx, DEPLOYERS if rule.status in DEPLOYED else EDITORS, "restore a deployed rule's version")
    old = store.get_version(ctx.conn, rule, version)
    if int(version) == rule.version:
        raise Conflict(f"version {version} is the rule's current version.", field="version")
    new = {k: old[k] for k in ("condition", "action", "severity", "description")}
    _checked(ctx, target, new["condition"])  # the dataset may have changed since
    return _new_version(ctx, target, rule, new, "rule_restore", before={"version": rule.version},
                        restored_from=int(version))


def _new_version(ctx: Context, target: Dataset, rule: Rule, new: dict[str, Any], audit_action: str, *,
                 before: dict[str, Any], restored_from: int | None = None) -> Rule:
    now = ctx.clock()
    with ctx.unit_of_work() as conn:
        version = store.insert_version(conn, rule.id, new["condition"], new["action"], new["severity"],
                                       new["description"], ctx.actor, now, restored_from)
        store.append_event(conn, rule.id, version, rule.status, ctx.actor, now)
        record(conn, ctx.actor, audit_action, dataset_id=target.id, target=f"rule {rule.name}", before=before,
               after={"version": version, **new, **({"restored_from": restored_from} if restored_from else {})})
    return store.get_rule(ctx.conn, target, rule.name)


def set_status(ctx: Context, dataset: DatasetRef, name: str, status: str) -> Rule:
    """Move a rule to draft, shadow (evaluated and recorded, raises nothing), active or retired."""
    if status not in store.STATUSES:
        raise InvalidInput(f"status is one of {', '.join(store.STATUSES)}, not {status!r}.", field="status")
    require_role(ctx, DEPLOYERS, f"put rules in {status}")
    target = ctx.dataset(dataset)
    rule = store.get_rule(ctx.conn, target, name)
    if rule.status == status:
        raise Conflict(f"rule {rule.name!r} is already {status}.", field="status")
    if status in DEPLOYED:
        _checked(ctx, target, rule.condition)  # never deploy what does not check on today's features
    return _event(ctx, target, rule, status)


def delete(ctx: Context, dataset: DatasetRef, name: str) -> None:
    """Delete a rule (its versions and events stay, for the audit trail)."""
    require_role(ctx, DEPLOYERS, "delete rules")
    target = ctx.dataset(dataset)
    _event(ctx, target, store.get_rule(ctx.conn, target, name), "deleted")


def _event(ctx: Context, target: Dataset, rule: Rule, status: str) -> Rule | None:
    now = ctx.clock()
    with ctx.unit_of_work() as conn:
        store.append_event(conn, rule.id, rule.version, status, ctx.actor, now)
        record(conn, ctx.actor, "rule_status", dataset_id=target.id, target=f"rule {rule.name}",
               before={"status": rule.status, "version": rule.version}, after={"status": status, "version": rule.version})
    return None if status == "deleted" else store.get_rule(ctx.conn, target, rule.name)


# --- reading ------------------------------------------------------------------------------------


def list_rules(ctx: Context, dataset: DatasetRef, statuses: tuple[str, ...] = store.STATUSES) -> list[Rule]:
    return store.rules_of(ctx.conn, ctx.dataset(dataset), statuses)


def get(ctx: Context, dataset: DatasetRef, name: str) -> Rule:
    return store.get_rule(ctx.conn, ctx.dataset(dataset), name)


@dataclass(frozen=True)
class RuleDetail:
    rule: Rule
    versions: pd.DataFrame  # newest first
    events: pd.DataFrame  # lifecycle, newest first
    recorded_hits: pd.DataFrame  # hits recorded while scoring live, per version and status


def show(ctx: Context, dataset: DatasetRef, name: str) -> RuleDetail:
    target = ctx.dataset(dataset)
    rule = store.get_rule(ctx.conn, target, name)
    return RuleDetail(rule, store.versions_of(ctx.conn, rule), store.events_of(ctx.conn, rule),
                      store.recorded_hits(ctx.conn, rule))


@dataclass(frozen=True)
class Backtest:
    condition: str
    summary: dict[str, Any]  # hits, precision, recall, analyst_precision, already_alerted, added, added_per_day, ...
    days: pd.DataFrame  # per day: transactions, hits, already_alerted, added, ...
    run_id: int | None  # the model the overlap is measured against
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "run": self.run_id, "seconds": round(self.seconds, 3), **self.summary,
                "per_day": [{k: (str(v)[:10] if k == "day" else int(v)) for k, v in row.items()}
                            for row in self.days.to_dict("records")]}


def backtest(ctx: Context, dataset: DatasetRef, *, name: str | None = None, condition: str | None = None,
             start: date | datetime | None = None, end: date | datetime | None = None,
             action: str = "alert") -> Backtest:
    """What a rule (by name) or a condition would have done over a period (days inclusive; the whole
    dataset by default): hits per day, precision and recall against the label column and the analysts'
    labels, and its overlap with the active model's alerts. One query; changes nothing."""
    target = ctx.dataset(dataset)
    if name is not None:
        rule = store.get_rule(ctx.conn, target, name)
    elif condition is not None:
        now = ctx.clock()
        rule = Rule(0, target.id, "proposed", 0, "draft", condition, store.check_action(action), store.DEFAULT_SEVERITY,
                    None, ctx.actor, now, ctx.actor, now)
    else:
        raise InvalidInput("backtest a rule by name, or a condition.", field="condition")
    started = time.perf_counter()
    compiled = store.compile_rule(rule, store.rule_schema(ctx.conn, target, ctx.clock()))
    active = active_run(ctx, target)
    feature_set = load_feature_set(ctx.conn, target)
    days = store.backtest_days(ctx.conn, target, compiled, feature_set.table_name if feature_set else None,
                               active.run.id if active else None, active.threshold if active else None, start, end,
                               ctx.clock())
    return Backtest(rule.condition, store.backtest_summary(days), days, active.run.id if active else None,
                    time.perf_counter() - started)


def sources(ctx: Context, dataset: DatasetRef) -> AlertSources:
    """The active rules and the lists in force: what the queue adds to and takes from the model's alerts."""
    return store.alert_sources(ctx.conn, ctx.dataset(dataset), ctx.clock())


def kpis(ctx: Context, dataset: DatasetRef, start: date | None = None, end: date | None = None,
         statuses: tuple[str, ...] = ("active",)) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each rule's alerts over the period and its precision from labels; and the rules skipped, with why."""
    target = ctx.dataset(dataset)
    compiled, skipped = store.compile_rules(ctx.conn, target, store.rules_of(ctx.conn, target, statuses), ctx.clock())
    feature_set = load_feature_set(ctx.conn, target)
    return store.rule_kpis(ctx.conn, target, compiled, feature_set.table_name if feature_set else None, start, end,
                           ctx.clock()), skipped


@dataclass(frozen=True)
class CaseRules:
    fired: pd.DataFrame  # rule, status, action, severity, version, condition: the active and shadow rules that hold
    entries: pd.DataFrame  # the list entries the transaction matches


def case_rules(ctx: Context, dataset: DatasetRef, tx_row: int) -> CaseRules:
    """The active and shadow rules whose conditions hold for one transaction, and the list entries it matches."""
    target = ctx.dataset(dataset)
    now = ctx.clock()
    rules = store.rules_of(ctx.conn, target, DEPLOYED)
    compiled, _ = store.compile_rules(ctx.conn, target, rules, now)
    feature_set = load_feature_set(ctx.conn, target)
    hit: set[str] = set()
    if compiled:
        found = store.evaluate_rows(ctx.conn, target, compiled, [], [int(tx_row)], now,
                                    feature_set.table_name if feature_set else None)
        hit = set(found["rules"].iloc[0]) if len(found) else set()
    fired = pd.DataFrame([{"rule": c.rule.name, "status": c.rule.status, "action": c.rule.action,
                           "severity": c.rule.severity, "version": c.rule.version, "condition": c.rule.condition}
                          for c in compiled if c.rule.name in hit],
                         columns=["rule", "status", "action", "severity", "version", "condition"])
    return CaseRules(fired, list_store.matching_entries(ctx.conn, target, int(tx_row), now))


@dataclass(frozen=True)
class LiveVerdicts:
    """What rules and lists say about transactions just scored: per tx_row, the active alert rules and
    block lists that raise an alert, whether an allow rule or list suppresses it, and hits to record."""

    raised: dict[int, list[str]]
    suppressed: dict[int, list[str]]
    hits: list[tuple[int, int, str, int, str]]  # (rule id, version, status, tx_row, transaction id)


def live_verdicts(ctx: Context, dataset: Dataset, tx_rows: list[int]) -> LiveVerdicts:
    """Evaluate active and shadow rules and the lists on freshly stored transactions (inside the
    scoring unit of work: the rows and their features are written but not committed)."""
    if not store.any_rules_or_lists(ctx.conn, dataset):  # the usual case: one cheap check per request
        return LiveVerdicts({}, {}, [])
    now = ctx.clock()
    rules = store.rules_of(ctx.conn, dataset, DEPLOYED)
    lists = [rl for rl in list_store.lists_of(ctx.conn, dataset, now) if rl.entries > 0]
    if not rules and not lists:
        return LiveVerdicts({}, {}, [])
    compiled, _ = store.compile_rules(ctx.conn, dataset, rules, now)
    feature_set = load_feature_set(ctx.conn, dataset)
    found = store.evaluate_rows(ctx.conn, dataset, compiled, lists, tx_rows, now,
                                feature_set.table_name if feature_set else None)
    by_name = {c.rule.name: c.rule for c in compiled}
    kinds = {rl.name: rl.kind for rl in lists}
    raised, suppressed, hits = {}, {}, []
    for row in found.itertuples(index=False):
        names, on = list(row.rules), list(row.lists)
        for name in names:
            rule = by_name[name]
            hits.append((rule.id, rule.version, rule.status, int(row.tx_row), str(row.transaction_id)))
        raised[int(row.tx_row)] = [n for n in names if by_name[n].status == "active" and by_name[n].action == "alert"] + \
            [f"list:{n}" for n in on if kinds[n] == "block"]
        suppressed[int(row.tx_row)] = [n for n in names if by_name[n].status == "active" and by_name[n].action == "allow"] + \
            [f"list:{n}" for n in on if kinds[n] == "allow"]
    return LiveVerdicts(raised, suppressed, hits)


def record_live_hits(ctx: Context, conn: duckdb.DuckDBPyConnection, dataset: Dataset, verdicts: LiveVerdicts) -> None:
    """Store the hits of live scoring (called inside the scoring unit of work)."""
    store.record_hits(conn, dataset, verdicts.hits, ctx.clock())


@dataclass(frozen=True)
class Suggestion:
    condition: str
    fraud: int  # training-period fraud it matches
    legitimate: int
    precision: float  # on the training period
    backtest: Backtest  # on the later period


def suggest(ctx: Context, dataset: DatasetRef, *, train_start: date | None = None, train_end: date | None = None,
            test_start: date | None = None, test_end: date | None = None, max_rules: int = 5,
            random_state: int = 0) -> list[Suggestion]:
    """Draft conditions drawn from the labelled fraud of a training period (the paths of shallow
    decision trees whose leaves are mostly fraud: `detectors.rule_suggestions`), each backtested on
    a later period; changes nothing until one is adopted (`add`)."""
    target = ctx.dataset(dataset)
    if train_end and test_start and test_start <= train_end:
        raise InvalidInput("the backtest period must start after the training period ends.", field="test_start",
                           hint="A rule judged on the rows it was drawn from always looks better than it is.")
    schema = store.rule_schema(ctx.conn, target, ctx.clock())
    feature_set = load_feature_set(ctx.conn, target)
    frame, truth = store.training_frame(ctx.conn, target, schema, feature_set.table_name if feature_set else None,
                                        train_start, train_end)
    if frame.empty:
        raise InvalidInput("no labelled transactions in the training period.", field="train_start",
                           hint="Choose a period with labels (the label column or analysts' labels).")
    ctx.progress(0.2, f"Growing trees on {len(frame):,} labelled transactions")
    found = suggest_rules(frame, truth["is_fraud"].to_numpy(dtype=bool), max_rules=max_rules, random_state=random_state)
    out = []
    for i, rule in enumerate(found):
        ctx.progress(0.6 + 0.4 * i / max(1, len(found)), f"Backtesting suggestion {i + 1} of {len(found)}")
        out.append(Suggestion(rule.condition, rule.fraud, rule.legitimate, rule.precision,
                              backtest(ctx, target, condition=rule.condition, start=test_start, end=test_end)))
    return out


def free_name(ctx: Context, dataset: DatasetRef, stem: str = "suggested") -> str:
    """`stem_N` with the first N no rule of the dataset has (for adopting a suggestion in one click)."""
    taken = {r.name for r in store.rules_of(ctx.conn, ctx.dataset(dataset))}
    return next(f"{stem}_{n}" for n in range(1, len(taken) + 2) if f"{stem}_{n}" not in taken)
