"""Rules: what analysts know, written as conditions over a transaction's columns and features,
stored as immutable versions with a lifecycle, evaluated in DuckDB beside the model.

- A rule has a name, and versions (condition, action `alert` or `allow`, severity, description);
  an edit appends a version, a restore appends a copy of an older one. Its lifecycle is a stream
  of events (draft -> shadow -> active -> retired, or deleted), each naming the version it deploys.
- Conditions are checked by `data.rule_grammar` against the dataset's schema every time they are
  compiled (features can be recomputed without one); a rule that no longer checks is skipped and
  the skip is reported, never run.
- Evaluation is one SQL pass: every active rule's condition becomes one column of one SELECT over
  the transaction table (joined to the feature table only when a rule reads a feature), so 50
  rules cost one scan. `live_lists` (the list entries in effect at `$now`) is defined once per query.

Storage and SQL only: the actions with their audit rows are in `application.rules`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from data.datasets import Dataset
from data.db import PERIOD_SQL, checked_ident, fetch_one, fetch_records, quote_ident
from data.errors import Conflict, InvalidInput, NotFound
from data.features import CATALOGUE, load_feature_set
from data.lists import LIVE_LISTS_SQL, RuleList, lists_of
from data.rule_grammar import BOOLEAN, NAME, NUMBER, TEXT, TIMESTAMP, Checked, Schema, check, diagnose

STATUSES = ("draft", "shadow", "active", "retired")
ACTIONS = ("alert", "allow")
SEVERITIES = range(1, 11)
DEFAULT_SEVERITY = 5
MAX_DESCRIPTION = 1_000
# Stored columns a rule may not read: bookkeeping, and the answers themselves.
HIDDEN = {"tx_row": "it is the row number the app keeps, not a property of the transaction.",
          "fraud_scenario": "it is part of the ground truth (how the fraud was made), which a rule cannot know."}


def check_rule_name(name: str) -> str:
    cleaned = (name or "").strip()
    if not NAME.match(cleaned):
        raise InvalidInput(f"rule name {name!r} is not allowed.", field="name",
                           hint="Use letters, digits and _ (up to 63), starting with a letter, e.g. night_new_device.")
    return cleaned


def check_action(action: str) -> str:
    if action not in ACTIONS:
        raise InvalidInput(f"a rule's action is 'alert' or 'allow', not {action!r}.", field="action")
    return action


def check_severity(severity: Any) -> int:
    try:
        value = int(severity)
    except (TypeError, ValueError):
        value = None
    if value is None or value not in SEVERITIES or float(severity) != value:
        raise InvalidInput(f"severity is a whole number from 1 to 10, not {severity!r}.", field="severity")
    return value


def check_description(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidInput(f"the description has {len(text):,} characters; at most {MAX_DESCRIPTION:,}.",
                           field="description")
    return text or None


# ---------------------------------------------------------------------------------------------
# What a condition may name


def _kind(sql_type: str) -> str | None:
    upper = sql_type.upper()
    if upper.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                         "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")):
        return NUMBER
    if upper.startswith("VARCHAR") or upper.startswith("ENUM"):
        return TEXT
    if upper.startswith(("TIMESTAMP", "DATE")):
        return TIMESTAMP
    if upper == "BOOLEAN":
        return BOOLEAN
    return None


def rule_schema(conn: duckdb.DuckDBPyConnection, dataset: Dataset, now: datetime) -> Schema:
    """The names a rule over this dataset may use: its stored columns (`t`) and computed features
    (`f`; a feature that is also a column, such as amount, reads the column), and its lists."""
    names: dict[str, tuple[str, str]] = {}
    forbidden = dict(HIDDEN)
    label = dataset.label_column
    if label:
        forbidden[label] = "it is the dataset's label column (the answer a rule is judged against)."
    for name, sql_type in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main'",
            [dataset.table_name]).fetchall():
        kind = _kind(sql_type)
        if name in forbidden or name.startswith("_") or kind is None or not NAME.match(name):
            continue
        names[name.lower()] = (kind, "t")
    feature_set = load_feature_set(conn, dataset)
    for feature in (feature_set.computed if feature_set else []):
        names.setdefault(feature.lower(), (NUMBER, "f"))
    for feature in CATALOGUE:  # a feature the catalogue has but this dataset lacks: say why, not "unknown"
        if feature.name not in names:
            why = (feature_set.skipped.get(feature.name) if feature_set else None) or "compute the features first"
            forbidden.setdefault(feature.name, f"the feature is not computed for this dataset ({why}).")
    return Schema(names, {rl.name: rl.id for rl in lists_of(conn, dataset, now)}, forbidden)


# ---------------------------------------------------------------------------------------------
# Storage


@dataclass(frozen=True)
class Rule:
    """A rule as it stands: its current version and status."""

    id: int
    dataset_id: int
    name: str
    version: int
    status: str
    condition: str
    action: str
    severity: int
    description: str | None
    changed_by: str
    changed_at: datetime
    created_by: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_RULE_COLUMNS = ("id, dataset_id, name, version, status, condition, action, severity, description, changed_by, "
                 "changed_at, created_by, created_at")


def rules_of(conn: duckdb.DuckDBPyConnection, dataset: Dataset, statuses: tuple[str, ...] = STATUSES) -> list[Rule]:
    """The dataset's rules (deleted ones left out) in these statuses, by name."""
    return [Rule(**r) for r in fetch_records(
        conn, f"SELECT {_RULE_COLUMNS} FROM current_rules WHERE dataset_id = ? "
        "AND status IN (SELECT unnest(CAST(? AS VARCHAR[]))) ORDER BY name", [dataset.id, list(statuses)])]


def get_rule(conn: duckdb.DuckDBPyConnection, dataset: Dataset, name: str) -> Rule:
    found = fetch_records(conn, f"SELECT {_RULE_COLUMNS} FROM current_rules WHERE dataset_id = ? AND name = ? "
                          "AND status <> 'deleted'", [dataset.id, str(name).strip()])
    if not found:
        names = [r.name for r in rules_of(conn, dataset)]
        raise NotFound(f"dataset {dataset.name!r} has no rule named {name!r}.", field="name",
                       hint=f"Rules: {', '.join(names)}." if names else "There are no rules yet.")
    return Rule(**found[0])


def insert_rule(conn: duckdb.DuckDBPyConnection, dataset: Dataset, name: str, actor: str, now: datetime) -> int:
    if fetch_one(conn, "SELECT 1 FROM current_rules WHERE dataset_id = ? AND name = ? AND status <> 'deleted'",
                 [dataset.id, name]):
        raise Conflict(f"dataset {dataset.name!r} already has a rule named {name!r}.", field="name",
                       hint="Edit it (a new version), or choose another name.")
    rule_id = fetch_one(conn, "SELECT nextval('rule_ids')")[0]
    conn.execute("INSERT INTO rules VALUES (?, ?, ?, ?, ?)", [rule_id, dataset.id, name, now, actor])
    return int(rule_id)


def insert_version(conn: duckdb.DuckDBPyConnection, rule_id: int, condition: str, action: str, severity: int,
                   description: str | None, actor: str, now: datetime, restored_from: int | None = None) -> int:
    version = fetch_one(conn, "SELECT coalesce(max(version), 0) + 1 FROM rule_versions WHERE rule_id = ?", [rule_id])[0]
    conn.execute("INSERT INTO rule_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 [rule_id, version, condition, action, severity, description, restored_from, now, actor])
    return int(version)


def append_event(conn: duckdb.DuckDBPyConnection, rule_id: int, version: int, status: str, actor: str,
                 now: datetime) -> None:
    conn.execute("INSERT INTO rule_events VALUES (nextval('rule_event_ids'), ?, ?, ?, ?, ?)",
                 [rule_id, version, status, actor, now])


def versions_of(conn: duckdb.DuckDBPyConnection, rule: Rule) -> pd.DataFrame:
    return conn.execute("SELECT version, condition, action, severity, description, restored_from, created_by, created_at "
                        "FROM rule_versions WHERE rule_id = ? ORDER BY version DESC", [rule.id]).df()


def get_version(conn: duckdb.DuckDBPyConnection, rule: Rule, version: int) -> dict[str, Any]:
    found = fetch_records(conn, "SELECT version, condition, action, severity, description FROM rule_versions "
                          "WHERE rule_id = ? AND version = ?", [rule.id, int(version)])
    if not found:
        raise NotFound(f"rule {rule.name!r} has no version {version}.", field="version",
                       hint=f"Its versions are 1 to {rule.version if rule.version else 1} (and later edits).")
    return found[0]


def events_of(conn: duckdb.DuckDBPyConnection, rule: Rule) -> pd.DataFrame:
    """The rule's lifecycle: every status change with the version it deployed, newest first."""
    return conn.execute("SELECT status, version, actor, created_at FROM rule_events WHERE rule_id = ? ORDER BY id DESC",
                        [rule.id]).df()


def record_hits(conn: duckdb.DuckDBPyConnection, dataset: Dataset, hits: list[tuple[int, int, str, int, str]],
                now: datetime) -> None:
    """Store hits seen while scoring live: (rule id, version, status, tx_row, transaction id)."""
    if hits:
        conn.executemany("INSERT INTO rule_hits VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [[dataset.id, r, v, s, int(row), tx, now] for r, v, s, row, tx in hits])


def recorded_hits(conn: duckdb.DuckDBPyConnection, rule: Rule) -> pd.DataFrame:
    """Hits recorded while scoring live, per version and status."""
    return conn.execute("SELECT version, status, count(*) AS hits, min(recorded_at) AS first, max(recorded_at) AS last "
                        "FROM rule_hits WHERE rule_id = ? GROUP BY ALL ORDER BY version DESC, status", [rule.id]).df()


# ---------------------------------------------------------------------------------------------
# Compiling and evaluating


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    checked: Checked
    reads_features: bool

    @property
    def sql(self) -> str:
        return f"coalesce(({self.checked.sql}), false)"


@dataclass(frozen=True)
class AlertSources:
    """What besides the model raises or suppresses alerts on a dataset right now."""

    alert_rules: tuple[CompiledRule, ...] = ()
    allow_rules: tuple[CompiledRule, ...] = ()
    block_lists: tuple[RuleList, ...] = ()
    allow_lists: tuple[RuleList, ...] = ()
    now: datetime = field(default_factory=datetime.now)
    feature_table: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # rule name -> why it is not evaluated

    @property
    def empty(self) -> bool:
        return not (self.alert_rules or self.allow_rules or self.block_lists or self.allow_lists)

    @property
    def rule_names(self) -> list[str]:
        return [c.rule.name for c in (*self.alert_rules, *self.allow_rules)]


def compile_rule(rule: Rule, schema: Schema) -> CompiledRule:
    checked = check(rule.condition, schema)
    return CompiledRule(rule, checked, checked.reads(schema, "f"))


def compile_rules(conn: duckdb.DuckDBPyConnection, dataset: Dataset, rules: list[Rule],
                  now: datetime) -> tuple[list[CompiledRule], dict[str, str]]:
    """Rules checked against the dataset as it is now; those that no longer check, with why."""
    schema = rule_schema(conn, dataset, now)
    compiled, skipped = [], {}
    for rule in rules:
        checked, problems = _diagnosed(rule.condition, schema)
        if checked is None:
            skipped[rule.name] = problems[0].describe(rule.condition)
        else:
            compiled.append(CompiledRule(rule, checked, checked.reads(schema, "f")))
    return compiled, skipped


_DIAGNOSED: OrderedDict[tuple, tuple[Checked | None, list]] = OrderedDict()
DIAGNOSED_SIZE = 2_048


def _diagnosed(text: str, schema: Schema) -> tuple[Checked | None, list]:
    """`diagnose`, remembered per condition and schema: every queue view compiles the active rules,
    and parsing 50 conditions again each time costs more than the rest of the view."""
    key = (text, tuple(sorted(schema.names.items())), tuple(sorted(schema.lists.items())),
           tuple(sorted(schema.forbidden.items())))
    with _MATERIALISED_LOCK:
        found = _DIAGNOSED.get(key)
    if found is None:
        found = diagnose(text, schema)
        with _MATERIALISED_LOCK:
            _DIAGNOSED[key] = found
            while len(_DIAGNOSED) > DIAGNOSED_SIZE:
                _DIAGNOSED.popitem(last=False)
    return found


def alert_sources(conn: duckdb.DuckDBPyConnection, dataset: Dataset, now: datetime) -> AlertSources:
    """The active rules (compiled) and the lists with entries in effect."""
    active = rules_of(conn, dataset, ("active",))
    compiled, skipped = compile_rules(conn, dataset, active, now)
    lists = [rl for rl in lists_of(conn, dataset, now) if rl.entries > 0]
    feature_set = load_feature_set(conn, dataset)
    return AlertSources(tuple(c for c in compiled if c.rule.action == "alert"),
                        tuple(c for c in compiled if c.rule.action == "allow"),
                        tuple(rl for rl in lists if rl.kind == "block"), tuple(rl for rl in lists if rl.kind == "allow"),
                        now, feature_set.table_name if feature_set else None, skipped)


def _from(dataset: Dataset, rules: list[CompiledRule] | tuple[CompiledRule, ...], feature_table: str | None) -> str:
    """The transaction table `t`, joined to the feature table `f` only when a rule reads a feature."""
    join = ""
    if any(c.reads_features for c in rules):
        if feature_table is None:
            raise InvalidInput(f"dataset {dataset.name!r} has no features yet, and a rule reads them.",
                               hint=f"Compute them: centinela features {dataset.name!r}")
        join = f" LEFT JOIN {checked_ident(feature_table)} f ON f.tx_row = t.tx_row"
    return f"{dataset.table} t{join}"


def _names_array(items: list[tuple[str, str]], params: dict[str, Any], prefix: str) -> str:
    """`[CASE WHEN cond THEN $name END, ...]` without the NULLs: the names of what matched."""
    if not items:
        return "CAST([] AS VARCHAR[])"
    cases = []
    for i, (condition, name) in enumerate(items):
        params[f"{prefix}{i}"] = name
        cases.append(f"CASE WHEN {condition} THEN ${prefix}{i} END")
    return f"list_filter([{', '.join(cases)}], lambda x: x IS NOT NULL)"


def _in_list(rule_list: RuleList) -> str:
    return f"coalesce({rule_list.column_sql} IN (SELECT value FROM live_lists WHERE list_id = {int(rule_list.id)}), false)"


def sources_subquery(dataset: Dataset, sources: AlertSources, run_id: int, threshold: float) -> tuple[str, dict[str, Any]]:
    """`SELECT tx_row, score, by_model, rules, lists` for every alert: the model's (score at or above
    the threshold), the active alert rules' and the block lists', minus what an allow rule or an allow
    list suppresses. One pass over the table; `rules`/`lists` name what raised each alert."""
    params: dict[str, Any] = {"run": int(run_id), "threshold": float(threshold), "now": sources.now}
    rules = _names_array([(c.sql, c.rule.name) for c in sources.alert_rules], params, "rule_")
    lists = _names_array([(_in_list(rl), rl.name) for rl in sources.block_lists], params, "list_")
    raise_any = " OR ".join(["coalesce(s.score >= $threshold, false)", *(c.sql for c in sources.alert_rules),
                             *(_in_list(rl) for rl in sources.block_lists)])
    suppress = " OR ".join([*(c.sql for c in sources.allow_rules), *(_in_list(rl) for rl in sources.allow_lists)])
    sql = f"""
        WITH live_lists AS ({LIVE_LISTS_SQL})
        SELECT t.tx_row, s.score, coalesce(s.score >= $threshold, false) AS by_model, {rules} AS rules, {lists} AS lists
        FROM {_from(dataset, (*sources.alert_rules, *sources.allow_rules), sources.feature_table)}
        LEFT JOIN scores s ON s.run_id = $run AND s.tx_row = t.tx_row
        WHERE ({raise_any}){f" AND NOT ({suppress})" if suppress else ""}"""
    return sql, params


def evaluate_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, rules: list[CompiledRule],
                  lists: list[RuleList], tx_rows: list[int], now: datetime, feature_table: str | None) -> pd.DataFrame:
    """For these transactions: which rules' conditions hold (a list of rule names) and which lists
    they are on (a list of list names); one query. Rows with neither are included (empty lists)."""
    params: dict[str, Any] = {"rows": [int(r) for r in tx_rows], "now": now}
    names = _names_array([(c.sql, c.rule.name) for c in rules], params, "rule_")
    on_lists = _names_array([(_in_list(rl), rl.name) for rl in lists], params, "list_")
    return conn.execute(
        f"""WITH live_lists AS ({LIVE_LISTS_SQL})
            SELECT t.tx_row, t.transaction_id, {names} AS rules, {on_lists} AS lists
            FROM {_from(dataset, rules, feature_table)}
            WHERE t.tx_row IN (SELECT unnest(CAST($rows AS BIGINT[]))) ORDER BY t.tx_row""", params).df()


# ---------------------------------------------------------------------------------------------
# Backtests and KPIs


def _truth(dataset: Dataset) -> str:
    return f"CAST(t.{quote_ident(dataset.label_column)} AS BOOLEAN)" if dataset.label_column else "CAST(NULL AS BOOLEAN)"


def _period(start: date | datetime | None, end: date | datetime | None) -> tuple[datetime | None, datetime | None]:
    """Days [start, end] inclusive as [start 00:00, the day after end 00:00)."""
    def at(day: date | datetime | None, shift: int) -> datetime | None:
        if day is None:
            return None
        if isinstance(day, datetime):
            return day + timedelta(days=shift) if shift and day.time() == datetime.min.time() else day
        return datetime.combine(day, datetime.min.time()) + timedelta(days=shift)
    return at(start, 0), at(end, 1)


BACKTEST_COLUMNS = ("day", "transactions", "hits", "already_alerted", "added", "hit_fraud", "hit_known", "fraud",
                    "hit_confirmed", "hit_reviewed", "confirmed")


def backtest_days(conn: duckdb.DuckDBPyConnection, dataset: Dataset, compiled: CompiledRule, feature_table: str | None,
                  run_id: int | None, threshold: float | None, start: date | datetime | None, end: date | datetime | None,
                  now: datetime) -> pd.DataFrame:
    """Per day of the period, in one query: transactions, the rule's hits, how many of them the
    model already alerts on and how many it adds, and the hits against the dataset's label column
    (fraud, known) and the analysts' current labels (fraud, reviewed = fraud or legitimate)."""
    since, until = _period(start, end)
    return conn.execute(
        f"""WITH live_lists AS ({LIVE_LISTS_SQL}),
            rows AS (
                SELECT CAST(t.ts AS DATE) AS day, {compiled.sql} AS hit,
                       coalesce(s.score >= CAST($threshold AS DOUBLE), false) AS by_model, {_truth(dataset)} AS truth,
                       l.label
                FROM {_from(dataset, [compiled], feature_table)}
                LEFT JOIN scores s ON s.run_id = CAST($run AS INTEGER) AND s.tx_row = t.tx_row
                LEFT JOIN (SELECT transaction_id, label FROM current_labels WHERE dataset_id = $dataset) l
                       ON l.transaction_id = t.transaction_id
                WHERE {PERIOD_SQL})
            SELECT day, count(*) AS transactions, count(*) FILTER (hit) AS hits,
                   count(*) FILTER (hit AND by_model) AS already_alerted, count(*) FILTER (hit AND NOT by_model) AS added,
                   count(*) FILTER (hit AND truth) AS hit_fraud, count(*) FILTER (hit AND truth IS NOT NULL) AS hit_known,
                   count(*) FILTER (truth) AS fraud, count(*) FILTER (hit AND label = 'fraud') AS hit_confirmed,
                   count(*) FILTER (hit AND label IN ('fraud', 'legitimate')) AS hit_reviewed,
                   count(*) FILTER (label = 'fraud') AS confirmed
            FROM rows GROUP BY day ORDER BY day""",
        {"now": now, "threshold": threshold, "run": run_id, "dataset": dataset.id, "start": since, "end": until},
    ).df()


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def backtest_summary(days: pd.DataFrame) -> dict[str, Any]:
    """The period's figures from the per-day counts: precision and recall against the label column
    and against analysts' labels, already alerted, added, and added alerts per day."""
    total = {c: int(days[c].sum()) for c in BACKTEST_COLUMNS[1:]} if len(days) else dict.fromkeys(BACKTEST_COLUMNS[1:], 0)
    n_days = len(days)
    return {
        **total, "days": n_days,
        "from": None if days.empty else str(days["day"].min())[:10], "until": None if days.empty else str(days["day"].max())[:10],
        "precision": _ratio(total["hit_fraud"], total["hit_known"]), "recall": _ratio(total["hit_fraud"], total["fraud"]),
        "analyst_precision": _ratio(total["hit_confirmed"], total["hit_reviewed"]),
        "analyst_recall": _ratio(total["hit_confirmed"], total["confirmed"]),
        "hits_per_day": _ratio(total["hits"], n_days), "added_per_day": _ratio(total["added"], n_days),
    }


def rule_kpis(conn: duckdb.DuckDBPyConnection, dataset: Dataset, compiled: list[CompiledRule], feature_table: str | None,
              start: date | None, end: date | None, now: datetime) -> pd.DataFrame:
    """Per rule, over the period, in one query: its alerts (hits), those analysts reviewed, those
    they confirmed as fraud, and precision from labels (confirmed / reviewed); with the label column
    where the dataset has one. Each row carries the names of the rules that hold for it, and only
    rows where one holds are unnested and counted, so 50 rules cost one scan, not 250 aggregates."""
    columns = ["rule", "action", "status", "alerts", "reviewed", "confirmed_fraud", "precision", "label_precision"]
    if not compiled:
        return pd.DataFrame(columns=columns)
    since, until = _period(start, end)
    params: dict[str, Any] = {"now": now, "dataset": dataset.id, "start": since, "end": until}
    names = _names_array([(c.sql, c.rule.name) for c in compiled], params, "rule_")
    counted = conn.execute(
        f"""WITH live_lists AS ({LIVE_LISTS_SQL}),
            hits AS (SELECT {names} AS rules, {_truth(dataset)} AS truth, l.label
                     FROM {_from(dataset, compiled, feature_table)}
                     LEFT JOIN (SELECT transaction_id, label FROM current_labels WHERE dataset_id = $dataset) l
                            ON l.transaction_id = t.transaction_id
                     WHERE {PERIOD_SQL} AND ({' OR '.join(c.sql for c in compiled)}))
            SELECT rule, count(*) AS alerts, count(*) FILTER (label IN ('fraud', 'legitimate')) AS reviewed,
                   count(*) FILTER (label = 'fraud') AS confirmed_fraud, count(*) FILTER (truth) AS truth_fraud,
                   count(*) FILTER (truth IS NOT NULL) AS truth_known
            FROM (SELECT unnest(rules) AS rule, truth, label FROM hits) GROUP BY rule""", params).df()
    found = {r.rule: r for r in counted.itertuples(index=False)}
    out = []
    for c in compiled:
        r = found.get(c.rule.name)
        alerts, reviewed, fraud, truth_fraud, truth_known = (
            (int(r.alerts), int(r.reviewed), int(r.confirmed_fraud), int(r.truth_fraud), int(r.truth_known))
            if r is not None else (0, 0, 0, 0, 0))
        out.append({"rule": c.rule.name, "action": c.rule.action, "status": c.rule.status, "alerts": alerts,
                    "reviewed": reviewed, "confirmed_fraud": fraud, "precision": _ratio(fraud, reviewed),
                    "label_precision": _ratio(truth_fraud, truth_known)})
    return pd.DataFrame(out, columns=columns)


# ---------------------------------------------------------------------------------------------
# Suggesting rules


def training_frame(conn: duckdb.DuckDBPyConnection, dataset: Dataset, schema: Schema, feature_table: str | None,
                   start: date | datetime | None, end: date | datetime | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled transactions of a period, as rule suggestions learn from them: every numeric
    name a rule may read (features and numeric columns, as DOUBLE), and `is_fraud` — the analyst's
    label where there is one (fraud or legitimate), else the dataset's label column. Rows with
    neither are left out. Returns (the names' values, the labels)."""
    numeric = [n for n, (kind, alias) in schema.names.items() if kind == NUMBER and (alias == "t" or feature_table)]
    if not numeric:
        return pd.DataFrame(), pd.DataFrame({"is_fraud": []})
    join = f" LEFT JOIN {checked_ident(feature_table)} f ON f.tx_row = t.tx_row" if feature_table else ""
    values = ", ".join(f"CAST({schema.names[n][1]}.{quote_ident(n)} AS DOUBLE) AS {quote_ident(n)}" for n in numeric)
    since, until = _period(start, end)
    frame = conn.execute(
        f"""SELECT {values},
                   coalesce(CASE l.label WHEN 'fraud' THEN true WHEN 'legitimate' THEN false END, {_truth(dataset)})
                       AS is_fraud
            FROM {dataset.table} t{join}
            LEFT JOIN (SELECT transaction_id, label FROM current_labels WHERE dataset_id = $dataset) l
                   ON l.transaction_id = t.transaction_id
            WHERE {PERIOD_SQL} AND is_fraud IS NOT NULL ORDER BY t.tx_row""",
        {"dataset": dataset.id, "start": since, "end": until}).df()
    return frame.drop(columns=["is_fraud"]), frame[["is_fraud"]]


# ---------------------------------------------------------------------------------------------
# The queue's alert set, materialised per state


RULE_ALERTS = "_centinela_rule_alerts"  # the name the materialised set is registered under for a query
_MATERIALISED: OrderedDict[tuple, pa.Table] = OrderedDict()
_MATERIALISED_LOCK = threading.Lock()
MATERIALISED_STATES = 8


def alerts_state(conn: duckdb.DuckDBPyConnection, dataset: Dataset, sources: AlertSources, run_id: int,
                 threshold: float) -> tuple:
    """Everything the queue's alert set depends on, read fresh: the database file, the rows (a live transaction changes
    the registry's count), the features, the run and threshold, the active rules' versions, the list
    entries (the newest event, and how many are in effect now: an expiry changes it)."""
    database, rows, features, newest_entry, live = fetch_one(
        conn, f"""SELECT (SELECT path FROM duckdb_databases() WHERE database_name = current_database()),
                         (SELECT row_count FROM datasets WHERE id = $dataset),
                         (SELECT coalesce(version, '') || CAST(computed_at AS VARCHAR) FROM feature_sets
                          WHERE dataset_id = $dataset),
                         (SELECT max(e.id) FROM list_entry_events e JOIN lists l ON l.id = e.list_id
                          WHERE l.dataset_id = $dataset),
                         (SELECT count(*) FROM ({LIVE_LISTS_SQL}) x JOIN lists l ON l.id = x.list_id
                          WHERE l.dataset_id = $dataset)""",
        {"dataset": dataset.id, "now": sources.now})
    rules = tuple((c.rule.id, c.rule.version, c.checked.sql) for c in (*sources.alert_rules, *sources.allow_rules))
    return database, dataset.id, rows, features, newest_entry, live, int(run_id), float(threshold), rules


def materialised_alerts(conn: duckdb.DuckDBPyConnection, dataset: Dataset, sources: AlertSources, run_id: int,
                        threshold: float) -> pa.Table:
    """The queue's alert set (tx_row, score, by_model, rules, lists), computed in one pass over the
    table and kept per state (`alerts_state`), so paging, filtering and counting read a few
    thousand rows instead of evaluating every rule over every transaction again. A change to the
    rules, the lists, the rows, the features or the run is a new state, computed afresh."""
    key = alerts_state(conn, dataset, sources, run_id, threshold)
    with _MATERIALISED_LOCK:
        found = _MATERIALISED.get(key)
        if found is not None:
            _MATERIALISED.move_to_end(key)
            return found
    sql, params = sources_subquery(dataset, sources, run_id, threshold)
    frame = conn.sql(sql, params=params).to_arrow_table()  # Arrow: registered again for each query without a copy
    with _MATERIALISED_LOCK:
        _MATERIALISED[key] = frame
        while len(_MATERIALISED) > MATERIALISED_STATES:
            _MATERIALISED.popitem(last=False)
    return frame


@contextmanager
def registered(conn: duckdb.DuckDBPyConnection, frame: pa.Table | None) -> Iterator[None]:
    """The materialised alert set visible to this cursor's queries as `_centinela_rule_alerts`."""
    if frame is None:
        yield
        return
    conn.register(RULE_ALERTS, frame)
    try:
        yield
    finally:
        conn.unregister(RULE_ALERTS)


def any_rules_or_lists(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> bool:
    """Whether the dataset has ever had a rule or a list (else live scoring skips their evaluation:
    reading the rules' and lists' current state costs ~8 ms a request)."""
    return bool(fetch_one(conn, "SELECT EXISTS (SELECT 1 FROM rules WHERE dataset_id = $d) "
                                "OR EXISTS (SELECT 1 FROM lists WHERE dataset_id = $d)", {"d": dataset.id})[0])
