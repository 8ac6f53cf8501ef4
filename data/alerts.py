"""What the investigation pages show, queried in DuckDB: the alert queue one page at a time,
aggregates by place, hour and day, and a case's surroundings (customer, merchant, devices).

An alert is a transaction whose score in a run is at or above the run's threshold; the
threshold is passed in (`application.runs.active` computes it once per run and contamination).
Every value from a widget is a query parameter; column names come from the dataset's own
stored columns (`Dataset.sql_column`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from data.datasets import Dataset
from data.db import fetch_one
from data.errors import InvalidInput
from data.rules import RULE_ALERTS, AlertSources, materialised_alerts, registered

LABEL_STATUSES = ("any", "unlabelled", "labelled", "fraud", "legitimate", "unsure")
ORDERS = {
    "score": "a.score DESC, t.tx_row",
    "newest": "t.ts DESC, t.tx_row",
    "amount": "t.amount DESC NULLS LAST, t.tx_row",
    # Active learning: the unlabelled alerts the model is least sure about (nearest its decision point).
    "uncertain": "abs(a.score - $pivot), t.tx_row",
}
ORDER_TITLES = {"score": "Highest score first", "newest": "Newest first", "amount": "Largest amount first",
                "uncertain": "Least certain first (unlabelled)"}
PAGE_SIZES = (25, 50, 100, 200)
# Columns the queue shows when the dataset has them (synthetic data and most bank exports do).
QUEUE_EXTRAS = ("customer_id", "merchant_id", "merchant_name", "city", "payment_method", "channel")
MAX_SEARCH = 100


@dataclass(frozen=True)
class QueueFilters:
    """The alert queue's filters; empty means 'no restriction'."""

    start: date | None = None
    end: date | None = None  # inclusive
    cities: tuple[str, ...] = ()
    merchants: tuple[str, ...] = ()
    payment_methods: tuple[str, ...] = ()
    amount_min: float | None = None
    amount_max: float | None = None
    label_status: str = "any"
    case_statuses: tuple[str, ...] = ()
    assignee: str | None = None  # "my cases"
    hours: tuple[int, ...] = ()
    weekdays: tuple[int, ...] = ()  # ISO: 1 = Monday
    search: str = ""  # part of a transaction, customer or merchant id
    source: str | None = None  # why it is an alert: "model", a rule's name, or "list:NAME"

    def with_(self, **changes: Any) -> QueueFilters:
        return replace(self, **changes)

    def describe(self) -> list[str]:
        """The active filters in words, for the page to show (and clear)."""
        parts = []
        if self.start or self.end:
            parts.append(f"dates {self.start or '…'} to {self.end or '…'}")
        for name, values in (("city", self.cities), ("merchant", self.merchants), ("payment", self.payment_methods),
                             ("case status", self.case_statuses)):
            if values:
                parts.append(f"{name}: {', '.join(map(str, values))}")
        if self.amount_min is not None or self.amount_max is not None:
            parts.append(f"amount {self.amount_min if self.amount_min is not None else '…'} to "
                         f"{self.amount_max if self.amount_max is not None else '…'}")
        if self.label_status != "any":
            parts.append(f"label: {self.label_status}")
        if self.assignee:
            parts.append(f"assigned to {self.assignee}")
        if self.hours:
            parts.append(f"hours {', '.join(f'{h:02d}' for h in self.hours)}")
        if self.weekdays:
            parts.append(f"weekdays {', '.join(WEEKDAYS[d - 1] for d in self.weekdays)}")
        if self.search:
            parts.append(f"search {self.search!r}")
        if self.source:
            parts.append(f"raised by {self.source}")
        return parts


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NO_FILTERS = QueueFilters()


def _where(dataset: Dataset, filters: QueueFilters) -> tuple[str, dict[str, Any]]:
    """SQL conditions (over t = transactions, l = current label, c = current case) and their
    named parameters."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if filters.start:
        conditions.append("t.ts >= $start")
        params["start"] = datetime.combine(filters.start, datetime.min.time())
    if filters.end:
        conditions.append("t.ts < $end")
        params["end"] = datetime.combine(filters.end, datetime.min.time()) + timedelta(days=1)
    for column, values in (("city", filters.cities), ("payment_method", filters.payment_methods)):
        if values:
            conditions.append(f"{dataset.sql_column(column)} IN (SELECT unnest(CAST(${column} AS VARCHAR[])))")
            params[column] = list(values)
    if filters.merchants:
        # A merchant filter matches the id, or the name where the dataset has one.
        conditions.append(f"({dataset.sql_column('merchant_id')} IN (SELECT unnest(CAST($merchants AS VARCHAR[]))) OR "
                          f"{dataset.sql_column('merchant_name')} IN (SELECT unnest(CAST($merchants AS VARCHAR[]))))")
        params["merchants"] = list(filters.merchants)
    if filters.amount_min is not None:
        conditions.append("t.amount >= $amount_min")
        params["amount_min"] = float(filters.amount_min)
    if filters.amount_max is not None:
        conditions.append("t.amount <= $amount_max")
        params["amount_max"] = float(filters.amount_max)
    if filters.label_status == "unlabelled":
        conditions.append("l.label IS NULL")
    elif filters.label_status == "labelled":
        conditions.append("l.label IS NOT NULL")
    elif filters.label_status in ("fraud", "legitimate", "unsure"):
        conditions.append("l.label = $label")
        params["label"] = filters.label_status
    if filters.case_statuses:
        conditions.append("coalesce(c.status, 'open') IN (SELECT unnest(CAST($statuses AS VARCHAR[])))")
        params["statuses"] = list(filters.case_statuses)
    if filters.assignee:
        conditions.append("c.assignee = $assignee")
        params["assignee"] = filters.assignee
    if filters.hours:
        conditions.append("hour(t.ts) IN (SELECT unnest(CAST($hours AS INTEGER[])))")
        params["hours"] = [int(h) for h in filters.hours]
    if filters.weekdays:
        conditions.append("isodow(t.ts) IN (SELECT unnest(CAST($weekdays AS INTEGER[])))")
        params["weekdays"] = [int(d) for d in filters.weekdays]
    search = filters.search.strip()[:MAX_SEARCH].lower()
    if search:
        # contains() takes the text literally: no LIKE wildcards to escape.
        ids = [dataset.sql_column(c) for c in ("transaction_id", "customer_id", "merchant_id")]
        conditions.append("(" + " OR ".join(f"contains(lower({c}), $search)" for c in ids) + ")")
        params["search"] = search
    return (" AND ".join(conditions) or "TRUE"), params


def _alerts_sql(dataset: Dataset, filters: QueueFilters, run_id: int, threshold: float,
                sources: AlertSources | None = None) -> tuple[str, dict[str, Any]]:
    """The queue's FROM and WHERE: the model's alerts alone (a range scan of the run's scores), or,
    when rules or lists are in force, the union and suppression of `data.rules.sources_subquery`."""
    where, params = _where(dataset, filters)
    if sources is None or sources.empty:
        alerts = ("SELECT tx_row, score, true AS by_model, CAST([] AS VARCHAR[]) AS rules, CAST([] AS VARCHAR[]) AS lists "
                  "FROM scores WHERE run_id = $run AND score >= $threshold")
    else:  # registered by the caller (`data.rules.registered`): computed once per state of the rules and lists
        alerts = f"SELECT * FROM {RULE_ALERTS}"
    if filters.source == "model":
        where += " AND a.by_model"
    elif filters.source and filters.source.startswith("list:"):
        where += " AND list_contains(a.lists, $source)"
        params["source"] = filters.source.removeprefix("list:")
    elif filters.source:
        where += " AND list_contains(a.rules, $source)"
        params["source"] = filters.source
    sql = f"""
        FROM ({alerts}) a
        JOIN {dataset.table} t USING (tx_row)
        LEFT JOIN (SELECT transaction_id, label, analyst AS labelled_by FROM current_labels WHERE dataset_id = $dataset) l
               ON l.transaction_id = t.transaction_id
        LEFT JOIN (SELECT transaction_id, status, assignee FROM current_cases WHERE dataset_id = $dataset) c
               ON c.transaction_id = t.transaction_id
        WHERE {where}"""
    model = {"run": int(run_id), "threshold": float(threshold)} if sources is None or sources.empty else {}
    return sql, {**params, **model, "dataset": dataset.id}


def count_alerts(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float,
                 filters: QueueFilters = QueueFilters(), sources: AlertSources | None = None) -> int:
    """How many alerts match the filters."""
    sql, params = _alerts_sql(dataset, filters, run_id, threshold, sources)
    with registered(conn, _materialised(conn, dataset, sources, run_id, threshold)):
        return int(fetch_one(conn, f"SELECT count(*) {sql}", params)[0])


def _materialised(conn: duckdb.DuckDBPyConnection, dataset: Dataset, sources: AlertSources | None, run_id: int,
                  threshold: float) -> pa.Table | None:
    return None if sources is None or sources.empty else materialised_alerts(conn, dataset, sources, run_id, threshold)


def alert_page(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    run_id: int,
    threshold: float,
    filters: QueueFilters = QueueFilters(),
    *,
    page: int = 0,
    page_size: int = 50,
    order: str = "score",
    pivot: float | None = None,
    sources: AlertSources | None = None,
) -> pd.DataFrame:
    """One page of alerts matching `filters`, highest score first by default (page 0 is the first).

    Order "uncertain" sorts by distance to `pivot` (the threshold if None); which alerts that
    order is for (unlabelled ones) is the queue's rule, `application.queue`.
    """
    if order not in ORDERS:
        raise InvalidInput(f"order must be one of {', '.join(ORDERS)}, not {order!r}.", field="order")
    page_size = max(1, min(int(page_size), 10_000))
    sql, params = _alerts_sql(dataset, filters, run_id, threshold, sources)
    if order == "uncertain":
        params["pivot"] = float(threshold if pivot is None else pivot)
    extras = "".join(f", {dataset.sql_column(c)} AS {c}" for c in QUEUE_EXTRAS if dataset.has_column(c))
    with registered(conn, _materialised(conn, dataset, sources, run_id, threshold)):
        return conn.execute(
            f"""SELECT t.transaction_id, t.ts, t.amount{extras}, a.score, l.label, l.labelled_by,
                       coalesce(c.status, 'open') AS status, c.assignee, a.by_model, a.rules, a.lists, t.tx_row
                {sql} ORDER BY {ORDERS[order]} LIMIT $limit OFFSET $offset""",
            {**params, "limit": page_size, "offset": max(0, int(page)) * page_size},
        ).df()


def filter_choices(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float,
                   column: str, limit: int = 200) -> list[str]:
    """Values of a column among alerts, most frequent first (for the queue's filter pickers)."""
    if not dataset.has_column(column):
        return []
    rows = conn.execute(
        f"SELECT {dataset.sql_column(column)} AS v, count(*) FROM scores s JOIN {dataset.table} t USING (tx_row) "
        "WHERE s.run_id = ? AND s.score >= ? AND v IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?",
        [int(run_id), float(threshold), limit],
    ).fetchall()
    return [str(r[0]) for r in rows]


def transaction_detail(conn: duckdb.DuckDBPyConnection, dataset: Dataset, transaction_id: str) -> dict[str, Any] | None:
    """Every stored column of one transaction (internal bookkeeping columns left out)."""
    frame = conn.execute(f"SELECT * FROM {dataset.table} WHERE transaction_id = ? LIMIT 1", [str(transaction_id)]).df()
    if frame.empty:
        return None
    row = frame.iloc[0].to_dict()
    return {k: v for k, v in row.items() if not k.startswith("_issues_")}


# ---------------------------------------------------------------------------------------------
# Aggregates for the patterns page


def _alert_expr() -> str:
    return "CAST(s.score >= ? AS INTEGER)"


def hour_weekday(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float) -> pd.DataFrame:
    """Transactions, alerts and alert rate per ISO weekday (1-7) and hour (0-23)."""
    return conn.execute(
        f"""SELECT isodow(t.ts) AS weekday, hour(t.ts) AS hour, count(*) AS transactions,
                   sum({_alert_expr()}) AS alerts, alerts / count(*) AS alert_rate
            FROM scores s JOIN {dataset.table} t USING (tx_row) WHERE s.run_id = ?
            GROUP BY ALL ORDER BY 1, 2""",
        [float(threshold), int(run_id)],
    ).df()


def daily_trend(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float) -> pd.DataFrame:
    """Per day: transactions, alerts, analyst-confirmed fraud, and ground-truth fraud if known."""
    truth = "sum(CAST(t.is_fraud AS INTEGER))" if dataset.has_role("label") else "CAST(NULL AS BIGINT)"
    return conn.execute(
        f"""SELECT CAST(t.ts AS DATE) AS day, count(*) AS transactions, sum({_alert_expr()}) AS alerts,
                   count(*) FILTER (l.label = 'fraud') AS confirmed_fraud, {truth} AS known_fraud
            FROM scores s JOIN {dataset.table} t USING (tx_row)
            LEFT JOIN (SELECT transaction_id, label FROM current_labels WHERE dataset_id = ?) l
                   ON l.transaction_id = t.transaction_id
            WHERE s.run_id = ? GROUP BY 1 ORDER BY 1""",
        [float(threshold), dataset.id, int(run_id)],
    ).df()


def places(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float) -> pd.DataFrame:
    """Per city: where it is (mean coordinates), transactions, alerts, alert rate, amount."""
    if not (dataset.has_column("lat") and dataset.has_column("lon")):
        return pd.DataFrame(columns=["city", "lat", "lon", "transactions", "alerts", "alert_rate", "amount"])
    city = dataset.sql_column("city")
    return conn.execute(
        f"""SELECT coalesce({city}, round(t.lat, 1) || ', ' || round(t.lon, 1)) AS city,
                   avg(t.lat) AS lat, avg(t.lon) AS lon, count(*) AS transactions,
                   sum({_alert_expr()}) AS alerts, alerts / count(*) AS alert_rate, sum(t.amount) AS amount
            FROM scores s JOIN {dataset.table} t USING (tx_row)
            WHERE s.run_id = ? AND t.lat IS NOT NULL AND t.lon IS NOT NULL
            GROUP BY 1 ORDER BY transactions DESC""",
        [float(threshold), int(run_id)],
    ).df()


# ---------------------------------------------------------------------------------------------
# A case's surroundings


def customer_history(conn: duckdb.DuckDBPyConnection, dataset: Dataset, customer_id: str, run_id: int | None,
                     limit: int = 500) -> pd.DataFrame:
    """The customer's latest transactions (with score and current label), oldest first."""
    extras = "".join(f", {dataset.sql_column(c)} AS {c}" for c in ("merchant_id", "merchant_name", "city", "device_id")
                     if dataset.has_column(c))
    return conn.execute(
        f"""SELECT * FROM (
                SELECT t.transaction_id, t.ts, t.amount{extras}, s.score, l.label
                FROM {dataset.table} t
                LEFT JOIN scores s ON s.run_id = ? AND s.tx_row = t.tx_row
                LEFT JOIN (SELECT transaction_id, label FROM current_labels WHERE dataset_id = ?) l
                       ON l.transaction_id = t.transaction_id
                WHERE {dataset.sql_column('customer_id')} = ? ORDER BY t.ts DESC LIMIT ?)
            ORDER BY ts""",
        [run_id, dataset.id, str(customer_id), limit],
    ).df()


def merchant_activity(conn: duckdb.DuckDBPyConnection, dataset: Dataset, merchant_id: str, around: datetime,
                      run_id: int | None, threshold: float | None, days: int = 7) -> pd.DataFrame:
    """The merchant's transactions per day in the `days` before and after `around`, with alerts."""
    return conn.execute(
        f"""SELECT CAST(t.ts AS DATE) AS day, count(*) AS transactions, sum(t.amount) AS amount,
                   count(*) FILTER (s.score >= ?) AS alerts
            FROM {dataset.table} t LEFT JOIN scores s ON s.run_id = ? AND s.tx_row = t.tx_row
            WHERE {dataset.sql_column('merchant_id')} = ? AND t.ts >= ? AND t.ts < ?
            GROUP BY 1 ORDER BY 1""",
        [threshold, run_id, str(merchant_id), around - timedelta(days=days), around + timedelta(days=days + 1)],
    ).df()


def customer_devices_and_places(conn: duckdb.DuckDBPyConnection, dataset: Dataset, customer_id: str) -> dict[str, pd.DataFrame]:
    """How often the customer used each device and each place, with first and last use."""
    out = {}
    for key, column in (("devices", "device_id"), ("places", "city")):
        if not dataset.has_column(column):
            out[key] = pd.DataFrame()
            continue
        out[key] = conn.execute(
            f"""SELECT {dataset.sql_column(column)} AS {column}, count(*) AS transactions,
                       min(t.ts) AS first_seen, max(t.ts) AS last_seen
                FROM {dataset.table} t WHERE {dataset.sql_column('customer_id')} = ?
                GROUP BY 1 ORDER BY transactions DESC LIMIT 50""",
            [str(customer_id)],
        ).df()
    return out


def usual_location(conn: duckdb.DuckDBPyConnection, dataset: Dataset, customer_id: str, before: datetime) -> tuple[float, float] | None:
    """Mean coordinates of the customer's transactions before `before` (as the distance feature uses)."""
    if not (dataset.has_column("lat") and dataset.has_column("customer_id")):
        return None
    row = fetch_one(conn, f"SELECT avg(t.lat), avg(t.lon) FROM {dataset.table} t WHERE t.customer_id = ? AND t.ts < ? "
                    "AND t.lat IS NOT NULL", [str(customer_id), before])
    return None if row is None or row[0] is None else (float(row[0]), float(row[1]))
