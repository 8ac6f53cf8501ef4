"""Engineered features, computed in DuckDB SQL with window functions.

Every feature looks only backwards in time: customer history windows exclude the current
transaction, expanding statistics stop at the previous one, and the merchant fraud rate uses
only labels of transactions at least `label_delay_days` old, as a fraud team would have them.
Features a dataset cannot support (no customer id, no coordinates, no labels) are skipped
with the reason recorded, never silently filled.

Refunds and reversals are stored as negative amounts. They are transactions (they count in the
customer's counts and velocity), but not purchases: `is_refund` marks them, and every statistic
of purchase amounts (means, ratios, z-scores) reads `purchase`, the amount of purchases only, so
a refund of 500 is neither a large purchase nor a drag on the customer's usual spend.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from data.datasets import Dataset, labels_version
from data.db import ProgressFn, checked_ident, fetch_one, no_progress, quote_ident
from data.errors import InvalidInput
from data.geography import EARTH_RADIUS_KM


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    unit: str
    sql: str  # expression over the `base` CTE; may use the named windows below
    needs: tuple[str, ...] = ()  # roles the dataset must have: customer_id, merchant_id, device_id, coords, labels


def _haversine(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    return (
        f"2 * {EARTH_RADIUS_KM} * asin(sqrt(pow(sin(radians({lat2} - {lat1}) / 2), 2) + "
        f"cos(radians({lat1})) * cos(radians({lat2})) * pow(sin(radians({lon2} - {lon1}) / 2), 2)))"
    )


def _per_customer(expr: str) -> str:
    # Rows without a customer would otherwise share one giant NULL partition.
    return f"CASE WHEN customer_id IS NOT NULL THEN {expr} END"


def _per_merchant(expr: str) -> str:
    return f"CASE WHEN merchant_id IS NOT NULL THEN {expr} END"


# The customer's "other transactions in the last hour/day/..." windows include the current row and
# take it out again here, rather than with a frame's EXCLUDE CURRENT ROW: Spark SQL has no frame
# exclusion, and one declaration has to read the same on both engines (data/spark_sql.py).
def _others_count(window: str) -> str:
    return f"(count(*) OVER {window} - 1)"


def _others_mean(column: str, window: str) -> str:
    return (f"(sum({column}) OVER {window} - coalesce({column}, 0)) / "
            f"nullif(count({column}) OVER {window} - CAST({column} IS NOT NULL AS INTEGER), 0)")


# The merchant (terminal) windows of the fraud-detection handbook's baseline: counts and fraud risk
# over the last 1, 7 and 30 days *before the label delay*, so no label a team would not have yet is used.
MERCHANT_WINDOWS_DAYS = (1, 7, 30)


def _merchant_window(days: int) -> tuple[Feature, Feature]:
    span = f"the {days} day{'s' if days > 1 else ''} ending the label delay before this one"
    return (
        Feature(f"merch_count_{days}d", f"Merchant's transactions in {span}", "count",
                _per_merchant(f"count(*) OVER merch_delay_{days}d"), ("merchant_id",)),
        Feature(f"merch_fraud_risk_{days}d", f"Share of the merchant's transactions in {span} confirmed as fraud",
                "share", _per_merchant(f"coalesce(sum(known_fraud) OVER merch_delay_{days}d, 0) / "
                                       f"nullif(count(*) OVER merch_delay_{days}d, 0)"), ("merchant_id", "labels")),
    )


CATALOGUE: tuple[Feature, ...] = (
    Feature("amount", "Transaction amount", "PEN", "amount"),
    Feature("log_amount", "Natural log of 1 + the amount's size, tames the long tail (negative for refunds)", "log PEN",
            "sign(amount) * ln(1 + abs(amount))"),
    Feature("is_refund", "Refund or reversal (a negative amount); kept out of the purchase-amount statistics", "0/1",
            "CAST(amount < 0 AS INTEGER)"),
    Feature("hour", "Hour of the day the transaction happened", "hour 0-23", "hour(ts)"),
    Feature("day_of_week", "Day of the week (1 = Monday, 7 = Sunday)", "day", "isodow(ts)"),
    Feature("is_weekend", "Saturday or Sunday", "0/1", "CAST(isodow(ts) >= 6 AS INTEGER)"),
    Feature("is_night", "Between 00:00 and 05:59", "0/1", "CAST(hour(ts) < 6 AS INTEGER)"),
    Feature("secs_since_prev", "Seconds since the customer's previous transaction", "s",
            _per_customer("epoch(ts) - epoch(lag(ts) OVER cust)"), ("customer_id",)),
    Feature("cust_count_1h", "Customer's other transactions in the hour up to this one", "count",
            _per_customer(_others_count("cust_1h")), ("customer_id",)),
    Feature("cust_count_24h", "Customer's other transactions in the 24 h up to this one", "count",
            _per_customer(_others_count("cust_24h")), ("customer_id",)),
    Feature("cust_count_7d", "Customer's other transactions in the 7 days up to this one", "count",
            _per_customer(_others_count("cust_7d")), ("customer_id",)),
    Feature("cust_mean_amount_1h", "Customer's mean purchase amount over the previous hour (refunds left out)", "PEN",
            _per_customer(_others_mean("purchase", "cust_1h")), ("customer_id",)),
    Feature("cust_mean_amount_24h", "Customer's mean purchase amount over the previous 24 h (refunds left out)", "PEN",
            _per_customer(_others_mean("purchase", "cust_24h")), ("customer_id",)),
    Feature("cust_mean_amount_7d", "Customer's mean purchase amount over the previous 7 days (refunds left out)", "PEN",
            _per_customer(_others_mean("purchase", "cust_7d")), ("customer_id",)),
    Feature("cust_history_count", "Customer's transactions before this one", "count",
            _per_customer("count(*) OVER cust_before"), ("customer_id",)),
    Feature("amount_ratio_customer", "Purchase amount divided by the customer's mean of earlier purchases (empty for a refund)",
            "ratio", _per_customer("purchase / nullif(avg(purchase) OVER cust_before, 0)"), ("customer_id",)),
    Feature("amount_zscore_customer", "Standard deviations above the customer's earlier purchases (3+ earlier; empty for a refund)",
            "z", _per_customer("CASE WHEN count(purchase) OVER cust_before >= 3 THEN (purchase - avg(purchase) OVER "
                               "cust_before) / nullif(stddev_samp(purchase) OVER cust_before, 0) END"),
            ("customer_id",)),
    Feature("amount_ratio_merchant", "Purchase amount divided by the merchant's mean of earlier purchases (empty for a refund)",
            "ratio", "CASE WHEN merchant_id IS NOT NULL THEN purchase / nullif(avg(purchase) OVER merch_before, 0) END",
            ("merchant_id",)),
    Feature("distance_from_usual_km", "Distance from the mean location of the customer's earlier transactions", "km",
            _per_customer(_haversine("avg(lat) OVER cust_before", "avg(lon) OVER cust_before", "lat", "lon")),
            ("customer_id", "coords")),
    Feature("speed_from_prev_kmh", "Distance from the previous transaction divided by the time since it", "km/h",
            _per_customer(f"({_haversine('lag(lat) OVER cust', 'lag(lon) OVER cust', 'lat', 'lon')}) / "
                          "(greatest(epoch(ts) - epoch(lag(ts) OVER cust), 60) / 3600.0)"),
            ("customer_id", "coords")),
    Feature("is_new_device", "First time this customer uses this device (after earlier transactions)", "0/1",
            "CASE WHEN customer_id IS NOT NULL AND device_id IS NOT NULL THEN "
            "CAST(row_number() OVER cust_device = 1 AND row_number() OVER cust > 1 AS INTEGER) END",
            ("customer_id", "device_id")),
    Feature("merchant_fraud_rate", "Merchant's fraud rate among its labelled transactions from delay+28 to delay days "
            "earlier (labels younger than the delay are not known yet)", "share",
            "CASE WHEN merchant_id IS NOT NULL THEN avg(known_fraud) OVER merch_labels END",
            ("merchant_id", "labels")),
    Feature("cust_count_30d", "Customer's other transactions in the 30 days up to this one", "count",
            _per_customer(_others_count("cust_30d")), ("customer_id",)),
    Feature("cust_mean_amount_30d", "Customer's mean purchase amount over the previous 30 days (refunds left out)", "PEN",
            _per_customer(_others_mean("purchase", "cust_30d")), ("customer_id",)),
    Feature("is_new_merchant", "First time this customer pays this merchant (after earlier transactions)", "0/1",
            "CASE WHEN customer_id IS NOT NULL AND merchant_id IS NOT NULL THEN "
            "CAST(row_number() OVER cust_merchant = 1 AND row_number() OVER cust > 1 AS INTEGER) END",
            ("customer_id", "merchant_id")),
    *(feature for days in MERCHANT_WINDOWS_DAYS for feature in _merchant_window(days)),
    Feature("merch_days_since_fraud", "Days since the merchant's latest confirmed fraud among its transactions at least "
            "the label delay old (none: empty)", "days",
            _per_merchant("(epoch(ts) - epoch(max(CASE WHEN known_fraud = 1 THEN ts END) OVER merch_known)) / 86400.0"),
            ("merchant_id", "labels")),
)
MERCHANT_RATE_WINDOW_DAYS = 28
DEFAULT_LABEL_DELAY_DAYS = 7

WINDOWS = """
WINDOW
  cust AS (PARTITION BY customer_id ORDER BY ts, tx_row),
  cust_before AS (PARTITION BY customer_id ORDER BY ts, tx_row ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
  cust_1h AS (PARTITION BY customer_id ORDER BY ts RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW),
  cust_24h AS (PARTITION BY customer_id ORDER BY ts RANGE BETWEEN INTERVAL 24 HOUR PRECEDING AND CURRENT ROW),
  cust_7d AS (PARTITION BY customer_id ORDER BY ts RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW),
  cust_device AS (PARTITION BY customer_id, device_id ORDER BY ts, tx_row),
  merch_before AS (PARTITION BY merchant_id ORDER BY ts, tx_row ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
  merch_labels AS (PARTITION BY merchant_id ORDER BY ts RANGE BETWEEN
      INTERVAL ($window_start) DAY PRECEDING AND INTERVAL ($window_end) DAY PRECEDING),
  cust_30d AS (PARTITION BY customer_id ORDER BY ts RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND CURRENT ROW),
  cust_merchant AS (PARTITION BY customer_id, merchant_id ORDER BY ts, tx_row),
""" + "".join(f"""  merch_delay_{d}d AS (PARTITION BY merchant_id ORDER BY ts RANGE BETWEEN
      INTERVAL ($window_end_plus_{d}) DAY PRECEDING AND INTERVAL ($window_end) DAY PRECEDING),
""" for d in MERCHANT_WINDOWS_DAYS) + """  merch_known AS (PARTITION BY merchant_id ORDER BY ts RANGE BETWEEN
      UNBOUNDED PRECEDING AND INTERVAL ($window_end) DAY PRECEDING)
"""


@dataclass
class FeatureSet:
    """What was computed for a dataset, what was skipped and why."""

    dataset_id: int
    table_name: str
    computed: list[str]
    skipped: dict[str, str]
    params: dict[str, Any]
    seconds: float
    computed_at: datetime | None = None
    version: str | None = None  # see `feature_version`; None for sets computed before versions existed
    labels_snapshot: str | None = None  # the labels a label-based feature read, or None if none does
    notes: list[str] = field(default_factory=list)

    @property
    def table(self) -> str:
        return checked_ident(self.table_name)


def availability(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> dict[str, str | None]:
    """Per feature: None if the dataset can support it, else the reason it cannot."""
    has_labels = dataset.has_role("label") or fetch_one(
        conn, "SELECT 1 FROM labels WHERE dataset_id = ? LIMIT 1", [dataset.id]
    ) is not None
    has_coords = dataset.has_role("lat") and dataset.has_role("lon") and fetch_one(
        conn, f"SELECT 1 FROM {dataset.table} WHERE lat IS NOT NULL AND lon IS NOT NULL LIMIT 1"
    ) is not None
    reasons = {
        "customer_id": "no customer/card id column is mapped",
        "merchant_id": "no merchant/terminal id column is mapped",
        "device_id": "no device id column is mapped",
        "coords": "no coordinates: map lat/lon, or a city/location column naming Peruvian places",
        "labels": "no fraud labels yet: map a label column or label some cases",
    }
    present = {
        "customer_id": dataset.has_role("customer_id"),
        "merchant_id": dataset.has_role("merchant_id"),
        "device_id": dataset.has_role("device_id"),
        "coords": bool(has_coords),
        "labels": bool(has_labels),
    }
    return {f.name: next((reasons[n] for n in f.needs if not present[n]), None) for f in CATALOGUE}


def labels_snapshot(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> str:
    """What the dataset's labels are right now, as a short string that changes whenever an
    analyst label is added or an action undone (labels are append-only)."""
    count, latest, undone = labels_version(conn, dataset.id)
    return f"{count}:{latest}:{undone}:{'truth' if dataset.has_role('label') else 'none'}"


def feature_version(features: list[Feature], params: dict[str, Any], snapshot: str | None) -> str:
    """The version of a feature set: a hash of the definitions it computed (names and SQL, the
    windows), its parameters and the label snapshot a label-based feature read."""
    text = json.dumps({"features": [(f.name, f.sql) for f in features], "windows": WINDOWS, "params": params,
                       "labels": snapshot}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compute_features(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    *,
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
    progress: ProgressFn = no_progress,
) -> FeatureSet:
    """(Re)compute the feature table `feat_<dataset id>`, replacing any earlier one.

    Runs inside the caller's transaction (the application layer's unit of work), so the old
    table stays until the new one is committed.
    """
    delay = check_label_delay(label_delay_days)
    started = time.perf_counter()
    progress(0.05, "Checking which features this dataset supports")
    reasons = availability(conn, dataset)
    chosen = [f for f in CATALOGUE if reasons[f.name] is None]
    skipped = {name: reason for name, reason in reasons.items() if reason is not None}

    sql = feature_query(dataset, chosen)
    table_name = f"feat_{dataset.id}"
    reads_labels = any("labels" in f.needs for f in chosen)
    params = {"label_delay_days": delay}
    snapshot = labels_snapshot(conn, dataset) if reads_labels else None

    progress(0.15, f"Computing {len(chosen)} features over {dataset.row_count:,} rows")
    conn.execute(f"DROP TABLE IF EXISTS {checked_ident(table_name)}")
    conn.execute(f"CREATE TABLE {checked_ident(table_name)} AS {sql}", query_params(dataset, delay))
    seconds = time.perf_counter() - started
    conn.execute("DELETE FROM feature_sets WHERE dataset_id = ?", [dataset.id])
    conn.execute(
        "INSERT INTO feature_sets (dataset_id, table_name, computed_at, params, computed, skipped, seconds, version, "
        "labels_snapshot) VALUES (?, ?, current_timestamp::TIMESTAMP, ?, ?, ?, ?, ?, ?)",
        [dataset.id, table_name, json.dumps(params), json.dumps([f.name for f in chosen]), json.dumps(skipped), seconds,
         feature_version(chosen, params, snapshot), snapshot],
    )
    progress(1.0, f"Computed {len(chosen)} features in {seconds:.1f} s")
    return load_feature_set(conn, dataset)  # type: ignore[return-value]


def feature_query(dataset: Dataset, chosen: list[Feature], restrict: str | None = None,
                  keys: tuple[str, ...] = ("tx_row",)) -> str:
    """The catalogue's SQL for `chosen` features over the dataset's rows: `SELECT <keys>, <features>`
    (keys: columns of `base`; Spark's copy of this query also keeps `transaction_id` and `ts`).

    `restrict` is a condition over the dataset table `t` that keeps whole partitions (every row
    of the customers and merchants involved), so live scoring can compute the features of new
    rows over their history only and get exactly what the whole-table computation gives them:
    every window partitions by customer or merchant and looks only backwards.
    """

    base = base_query(dataset, any("labels" in f.needs for f in chosen), restrict)
    select = ", ".join(f"CAST({f.sql} AS DOUBLE) AS {quote_ident(f.name)}" for f in chosen)
    return f"{base} SELECT {', '.join(keys)}, {select} FROM base {WINDOWS}"


def base_query(dataset: Dataset, reads_labels: bool, restrict: str | None = None) -> str:
    """`WITH ..., base AS (...)`: every row the features read, with the columns their SQL uses
    (`purchase`, `known_fraud`: the latest analyst label where there is one, else the ground
    truth). The online features (data/online_features.py) load their history through it too."""

    def col(role: str, column: str, sql_type: str) -> str:
        return f"t.{column}" if dataset.has_role(role) else f"CAST(NULL AS {sql_type})"

    label_expr = "CAST(NULL AS DOUBLE)"
    if reads_labels:
        # The current label: the latest analyst label where there is one, else the ground truth.
        truth = "CAST(t.is_fraud AS DOUBLE)" if dataset.has_role("label") else "CAST(NULL AS DOUBLE)"
        label_expr = f"coalesce(CASE l.label WHEN 'fraud' THEN 1.0 WHEN 'legitimate' THEN 0.0 END, {truth})"
    return f"""
    WITH latest AS (
        SELECT transaction_id, label FROM current_labels WHERE dataset_id = $dataset
    ), base AS (
        SELECT t.tx_row, t.transaction_id, t.ts, t.amount, CASE WHEN t.amount >= 0 THEN t.amount END AS purchase,
               {col('customer_id', 'customer_id', 'VARCHAR')} AS customer_id,
               {col('merchant_id', 'merchant_id', 'VARCHAR')} AS merchant_id,
               {col('device_id', 'device_id', 'VARCHAR')} AS device_id,
               {col('lat', 'lat', 'DOUBLE')} AS lat, {col('lon', 'lon', 'DOUBLE')} AS lon,
               {label_expr} AS known_fraud
        FROM {dataset.table} t LEFT JOIN latest l USING (transaction_id)
        {f"WHERE {restrict}" if restrict else ""}
    )"""


def query_params(dataset: Dataset, delay: int) -> dict[str, Any]:
    """The named parameters of `feature_query`."""
    return {"dataset": dataset.id, "window_start": delay + MERCHANT_RATE_WINDOW_DAYS, "window_end": delay,
            **{f"window_end_plus_{d}": delay + d for d in MERCHANT_WINDOWS_DAYS}}


def catalogue_features(names: list[str]) -> list[Feature]:
    """The catalogue's features of these names, in catalogue order."""
    wanted = set(names)
    return [f for f in CATALOGUE if f.name in wanted]


def check_label_delay(days: Any) -> int:
    try:
        delay = int(days)
    except (TypeError, ValueError):
        raise InvalidInput(f"the label delay must be a whole number of days, not {days!r}.",
                           field="label_delay_days") from None
    if not 0 <= delay <= 365 or delay != float(days):
        raise InvalidInput(f"label delay must be between 0 and 365 days, got {days}.", field="label_delay_days")
    return delay


def behind_labels(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet) -> bool:
    """True when a label-based feature was computed from labels that have changed since."""
    return feature_set.labels_snapshot is not None and feature_set.labels_snapshot != labels_snapshot(conn, dataset)


def load_feature_set(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> FeatureSet | None:
    """The stored feature set of a dataset, or None if features were never computed."""
    row = fetch_one(
        conn,
        "SELECT table_name, computed, skipped, params, seconds, computed_at, version, labels_snapshot "
        "FROM feature_sets WHERE dataset_id = ?",
        [dataset.id],
    )
    if row is None:
        return None
    return FeatureSet(dataset.id, row[0], json.loads(row[1]), json.loads(row[2]), json.loads(row[3]), row[4], row[5],
                      row[6], row[7])


def feature_catalogue(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> pd.DataFrame:
    """Every feature with its description and unit, and for this dataset: computed, or why not."""
    stored = load_feature_set(conn, dataset)
    reasons = availability(conn, dataset)
    rows = []
    for f in CATALOGUE:
        if stored and f.name in stored.computed:
            status, reason = "computed", ""
        elif reasons[f.name]:
            status, reason = "skipped", reasons[f.name]
        elif stored and f.name in stored.skipped:
            status, reason = "stale", f"was skipped ({stored.skipped[f.name]}); recompute to add it"
        else:
            status, reason = "not computed", "compute features to add it"
        rows.append({"feature": f.name, "description": f.description, "unit": f.unit, "status": status, "reason": reason})
    return pd.DataFrame(rows)


def feature_frame(conn: duckdb.DuckDBPyConnection, feature_set: FeatureSet, limit: int | None = None) -> pd.DataFrame:
    """Feature rows in transaction order (for detectors and tests)."""
    sql = f"SELECT * FROM {feature_set.table} ORDER BY tx_row"
    if limit is not None:
        return conn.execute(sql + " LIMIT ?", [int(limit)]).df()
    return conn.execute(sql).df()
