"""What managers see: volumes, alerts, confirmed fraud and how the team keeps up, overall or by
day, week, city, merchant or payment method: per view, one scan of every transaction with its
score (`totals`, which only the rows, the scores and the threshold change) and one query that
counts only the transactions analysts can have touched (the alerts, those labelled or with a case).

Definitions (the KPI page states them too):
- alert: a transaction scored at or above the active run's threshold;
- confirmed fraud: the transaction's current analyst label is fraud (alert or not);
- reviewed alert: an alert whose current label is fraud or legitimate ('unsure' is not a decision);
  precision of reviewed alerts = fraud / reviewed;
- backlog: alerts with no current label whose case is not closed; an alert waits from the later
  of the transaction time and when the dataset was loaded (it cannot be seen before), until `as_of`;
- time to decision: from that moment to the first fraud/legitimate label that was not undone.
Customer identifiers leave the database masked (`mask_sql`): the KPI views never carry raw ones.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from data.datasets import Dataset
from data.db import PERIOD_SQL
from data.errors import InvalidInput

GROUPINGS = {"day": "Day", "week": "Week", "city": "City", "merchant": "Merchant", "payment_method": "Payment method"}
KPI_COLUMNS = ("transactions", "amount", "alerts", "alert_rate", "confirmed_fraud", "confirmed_fraud_amount",
               "reviewed_alerts", "reviewed_precision", "backlog", "backlog_mean_age_days", "backlog_oldest_days",
               "mean_hours_to_decision")
MASK_KEEP = 4  # trailing characters of an identifier left visible


def mask_sql(column: str) -> str:
    """SQL that masks an identifier to its last characters (`••••1234`); NULL stays NULL."""
    return f"CASE WHEN {column} IS NULL THEN NULL ELSE '••••' || right(CAST({column} AS VARCHAR), {MASK_KEEP}) END"


def available_groupings(dataset: Dataset) -> list[str]:
    """The breakdowns a dataset's columns allow."""
    have = {"city": dataset.has_column("city"), "payment_method": dataset.has_column("payment_method"),
            "merchant": dataset.has_column("merchant_id") or dataset.has_column("merchant_name")}
    return [g for g in GROUPINGS if have.get(g, True)]


def _group_key(dataset: Dataset, by: str | None) -> str:
    if by is None:
        return "'all'"
    if by not in GROUPINGS:
        raise InvalidInput(f"group by one of {', '.join(GROUPINGS)}, not {by!r}.", field="by")
    if by == "day":
        return "CAST(t.ts AS DATE)"
    if by == "week":
        return "CAST(date_trunc('week', t.ts) AS DATE)"
    if by == "merchant":
        return f"coalesce({dataset.sql_column('merchant_name')}, {dataset.sql_column('merchant_id')})"
    return dataset.sql_column(by)


def _period(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """[start, end] in days as [start 00:00, day after end 00:00)."""
    return (datetime.combine(start, datetime.min.time()) if start else None,
            datetime.combine(end + timedelta(days=1), datetime.min.time()) if end else None)


TotalsReader = Callable[..., pd.DataFrame]  # `totals`' signature: a cached copy of it, say


def kpis(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    run_id: int,
    threshold: float,
    by: str | None = None,
    start: date | None = None,
    end: date | None = None,
    as_of: datetime | None = None,
    limit: int | None = None,
    totals_reader: TotalsReader | None = None,
) -> pd.DataFrame:
    """The KPIs of transactions from `start` to `end` (days, inclusive): one row overall, or one
    per group (`GROUPINGS`), ordered by time or by transactions (largest first, `limit` of them).
    `totals_reader`: what reads `totals` (the page passes a cached one)."""
    frame = _kpi_frame(conn, dataset, run_id, threshold, by, start, end, as_of, limit, with_total=False,
                       totals_reader=totals_reader)
    return frame.drop(columns="is_total")


def kpis_with_total(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float, by: str,
                    start: date | None = None, end: date | None = None, as_of: datetime | None = None,
                    totals_reader: TotalsReader | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`kpis(by=...)` and `kpi_summary(...)` from the same scans (GROUPING SETS): the KPI page's
    trend and its figures at once, the same numbers as the two queries."""
    frame = _kpi_frame(conn, dataset, run_id, threshold, by, start, end, as_of, None, with_total=True,
                       totals_reader=totals_reader)
    total = frame["is_total"]
    return frame[~total].drop(columns="is_total").reset_index(drop=True), _summary(frame[total])


def _grouping(by: str | None, with_total: bool) -> tuple[str, str, str]:
    """GROUP BY, the is_total column and ORDER BY of a KPI query. With the total: one more
    grouping set, (), whose row has grouping(key) = 1 and comes last."""
    order = "key" if by in ("day", "week") else "transactions DESC, key"
    if with_total:
        return "GROUPING SETS ((key), ())", "grouping(key) = 1 AS is_total", f"grouping(key), {order}"
    return "key", "false AS is_total", order


def last_row(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> int:
    """The dataset's highest row number: the KPI queries count the rows up to it, so that a batch
    scored live between them is in neither (rows and their scores are committed together)."""
    return int(conn.execute(f"SELECT coalesce(max(tx_row), -1) FROM {dataset.table}").fetchone()[0])


def totals(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float, by: str | None,
           start: date | None, end: date | None, with_total: bool, limit: int | None, upto: int) -> pd.DataFrame:
    """Per group (and, `with_total`, overall): transactions, amount and alerts of the rows up to
    row number `upto`, in the KPI order (`limit` groups at most). The scan of every transaction
    with its score that every KPI view pays (0.5 s at 10M rows); it changes only with the rows,
    the run's scores and the threshold, never with labels, cases or the clock, so it can be kept."""
    group, total, order = _grouping(by, with_total)
    since, until = _period(start, end)
    return conn.execute(
        f"""
        WITH base AS (
            SELECT {_group_key(dataset, by)} AS key, t.amount, coalesce(s.score >= $threshold, false) AS alert
            FROM {dataset.table} t
            LEFT JOIN scores s ON s.run_id = $run AND s.tx_row = t.tx_row
            WHERE {PERIOD_SQL} AND t.tx_row <= $upto)
        SELECT key, count(*) AS transactions, coalesce(sum(amount), 0) AS amount, count(*) FILTER (alert) AS alerts,
               {total}
        FROM base GROUP BY {group} HAVING count(*) > 0 ORDER BY {order} {'LIMIT $limit' if limit else ''}""",
        {"threshold": float(threshold), "run": int(run_id), "start": since, "end": until, "upto": int(upto),
         **({"limit": int(limit)} if limit else {})},
    ).df()


REVIEW_COUNTS = ("confirmed_fraud", "reviewed_alerts", "reviewed_fraud", "backlog")


def _reviews(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float, by: str | None,
             start: date | None, end: date | None, as_of: datetime | None, with_total: bool,
             upto: int) -> pd.DataFrame:
    """Per group: what analysts did, counted over the only transactions it can concern (the alerts
    and those with a label, a case or a decision; rows up to `upto`): no aggregate over every row."""
    group, total, _ = _grouping(by, with_total)
    since, until = _period(start, end)
    backlog = "alert AND label IS NULL AND status IS DISTINCT FROM 'closed'"
    return conn.execute(
        f"""
        WITH decided AS (
            SELECT transaction_id, min(created_at) AS decided_at FROM labels
            WHERE dataset_id = $dataset AND label IN ('fraud', 'legitimate')
              AND (batch_id IS NULL OR batch_id NOT IN (SELECT batch_id FROM label_undos))
            GROUP BY 1),
        -- A transaction's label, case status and first decision, joined among themselves first
        -- (few rows): every transaction then probes one table by its text id, not three.
        annotated AS (
            SELECT transaction_id, l.label, c.status, d.decided_at
            FROM (SELECT transaction_id, label FROM current_labels WHERE dataset_id = $dataset) l
            FULL JOIN (SELECT transaction_id, status FROM current_cases WHERE dataset_id = $dataset) c
                 USING (transaction_id)
            FULL JOIN decided d USING (transaction_id)),
        counted AS (
            SELECT tx_row, coalesce(m.alert, false) AS alert, n.label, n.status, n.decided_at
            FROM (SELECT tx_row, true AS alert FROM scores WHERE run_id = $run AND score >= $threshold) m
            FULL JOIN (SELECT t.tx_row, a.label, a.status, a.decided_at FROM {dataset.table} t
                       JOIN annotated a ON a.transaction_id = t.transaction_id) n USING (tx_row)),
        base AS (
            SELECT {_group_key(dataset, by)} AS key, t.amount, c.alert, c.label, c.status,
                   greatest(t.ts, CAST($loaded_at AS TIMESTAMP)) AS waiting_since, c.decided_at
            FROM {dataset.table} t JOIN counted c ON c.tx_row = t.tx_row
            WHERE {PERIOD_SQL} AND t.tx_row <= $upto)
        SELECT key, count(*) FILTER (label = 'fraud') AS confirmed_fraud,
               coalesce(sum(amount) FILTER (label = 'fraud'), 0) AS confirmed_fraud_amount,
               count(*) FILTER (alert AND label IN ('fraud', 'legitimate')) AS reviewed_alerts,
               count(*) FILTER (alert AND label = 'fraud') AS reviewed_fraud,
               count(*) FILTER ({backlog}) AS backlog,
               avg(epoch(CAST($as_of AS TIMESTAMP) - waiting_since)) FILTER ({backlog}) / 86400 AS backlog_mean_age_days,
               max(epoch(CAST($as_of AS TIMESTAMP) - waiting_since)) FILTER ({backlog}) / 86400 AS backlog_oldest_days,
               avg(epoch(decided_at - waiting_since)) FILTER (alert AND decided_at IS NOT NULL) / 3600
                   AS mean_hours_to_decision,
               {total}
        FROM base GROUP BY {group}""",
        {"dataset": dataset.id, "threshold": float(threshold), "loaded_at": dataset.created_at, "run": int(run_id),
         "start": since, "end": until, "as_of": as_of or datetime.now(), "upto": int(upto)},
    ).df()


def _kpi_frame(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float, by: str | None,
               start: date | None, end: date | None, as_of: datetime | None, limit: int | None,
               with_total: bool, totals_reader: TotalsReader | None = None) -> pd.DataFrame:
    """`totals` and `_reviews` side by side: key, KPI_COLUMNS, is_total."""
    read = totals_reader or totals
    upto = last_row(conn, dataset)
    counts = read(conn, dataset, run_id, threshold, by, start, end, with_total, limit, upto)
    reviews = _reviews(conn, dataset, run_id, threshold, by, start, end, as_of, with_total, upto)
    # pandas matches NULL keys with NULL keys (a city that is not known), as GROUP BY groups them.
    frame = counts.merge(reviews, on=["key", "is_total"], how="left", sort=False)
    for column in REVIEW_COUNTS:
        frame[column] = frame[column].fillna(0).astype("int64")
    frame["confirmed_fraud_amount"] = frame["confirmed_fraud_amount"].fillna(0.0)
    frame["alert_rate"] = frame["alerts"] / frame["transactions"]
    frame["reviewed_precision"] = (frame["reviewed_fraud"] / frame["reviewed_alerts"]).where(frame["reviewed_alerts"] > 0)
    return frame[["key", *KPI_COLUMNS, "is_total"]]


def kpi_summary(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: int, threshold: float,
                start: date | None = None, end: date | None = None, as_of: datetime | None = None) -> dict[str, Any]:
    """The overall KPIs as a dict (zeros and None when the period has no transactions)."""
    return _summary(kpis(conn, dataset, run_id, threshold, None, start, end, as_of))


def _summary(frame: pd.DataFrame) -> dict[str, Any]:
    if frame.empty:
        return {c: (0 if c in ("transactions", "amount", "alerts", "confirmed_fraud", "confirmed_fraud_amount",
                               "reviewed_alerts", "backlog") else None) for c in KPI_COLUMNS}
    row = frame.iloc[0]
    return {c: (None if pd.isna(row[c]) else row[c].item() if hasattr(row[c], "item") else row[c]) for c in KPI_COLUMNS}


def confirmed_fraud_cases(conn: duckdb.DuckDBPyConnection, dataset: Dataset, start: date | None = None,
                          end: date | None = None, limit: int = 200) -> pd.DataFrame:
    """The latest confirmed fraud cases in the period, with masked customer identifiers."""
    since, until = _period(start, end)
    customer = mask_sql(dataset.sql_column("customer_id"))
    merchant = f"coalesce({dataset.sql_column('merchant_name')}, {dataset.sql_column('merchant_id')})"
    return conn.execute(
        f"""SELECT t.transaction_id, t.ts, t.amount, {customer} AS customer, {merchant} AS merchant,
                   {dataset.sql_column('city')} AS city, l.analyst AS confirmed_by, l.labelled_at AS confirmed_at
            FROM {dataset.table} t
            JOIN (SELECT transaction_id, analyst, labelled_at FROM current_labels
                  WHERE dataset_id = $dataset AND label = 'fraud') l ON l.transaction_id = t.transaction_id
            WHERE {PERIOD_SQL}
            ORDER BY l.labelled_at DESC, t.tx_row LIMIT $limit""",
        {"dataset": dataset.id, "start": since, "end": until, "limit": int(limit)},
    ).df()
