"""The catalogue's Spark SQL, generated from the DuckDB declarations (no Spark needed here; tests/spark
runs it on Spark and holds every value to DuckDB's)."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from application import datasets as app_datasets
from data.features import CATALOGUE, availability, catalogue_features
from data.spark_sql import LABELS_VIEW, TRANSACTIONS_VIEW, spark_feature_query
from data.synthetic import SyntheticConfig
from tests.conftest import as_user


def _windows(sql: str) -> dict[str, str]:
    """The query's named windows (its WINDOW clause) as Spark SQL: `name OVER (...)`."""
    tree = sqlglot.parse_one(sql, read="spark")
    return {w.this.name: w.sql(dialect="spark") for w in tree.args["windows"]}


@pytest.fixture
def dataset(conn, small_dataset):
    return small_dataset


def test_every_feature_translates_and_nothing_duckdb_only_is_left(dataset):
    sql = spark_feature_query(dataset, list(CATALOGUE), 7)
    tree = sqlglot.parse_one(sql, read="spark")  # Spark's own grammar reads it back
    selected = [e.alias_or_name for e in tree.expressions]
    assert selected == ["tx_row", "transaction_id", "ts", *(f.name for f in CATALOGUE)]
    upper = sql.upper()
    for duckdb_only in ("EXCLUDE", "TO_DAYS", "EPOCH(", "ISODOW", "UNIX_TIMESTAMP", "DAYOFWEEK", "$", ":WINDOW"):
        assert duckdb_only not in upper, duckdb_only
    tables = {t.name for t in tree.find_all(exp.Table)}
    assert tables - {"latest", "base"} == {TRANSACTIONS_VIEW, LABELS_VIEW}  # latest, base: the query's own CTEs


def test_seconds_keep_their_microseconds_and_weekdays_start_on_monday(dataset):
    chosen = catalogue_features(["secs_since_prev", "day_of_week"])
    sql = spark_feature_query(dataset, chosen, 7)
    assert "UNIX_MICROS(CAST(ts AS TIMESTAMP)) / 1e6" in sql  # not UNIX_TIMESTAMP's whole seconds
    assert "(WEEKDAY(ts) + 1)" in sql  # Spark's WEEKDAY: Monday 0, so ISO Monday 1 ... Sunday 7


@pytest.mark.parametrize("delay", [0, 7, 30])
def test_every_frame_looks_backwards_and_labels_stop_at_the_delay(dataset, delay):
    sql = spark_feature_query(dataset, list(CATALOGUE), delay)
    text = _windows(sql)
    for name, spec in text.items():
        assert "FOLLOWING" not in spec, name  # no frame reaches a later row
    for name in ("merch_labels", "merch_delay_1d", "merch_delay_7d", "merch_delay_30d", "merch_known"):
        assert text[name].endswith(f"AND INTERVAL '{delay}' DAY PRECEDING)"), text[name]
    assert f"INTERVAL '{delay + 28}' DAY PRECEDING AND" in text["merch_labels"]
    assert f"INTERVAL '{delay + 30}' DAY PRECEDING AND" in text["merch_delay_30d"]
    # The customer's "other transactions" windows end at the current row, which the features take out again.
    assert text["cust_1h"].endswith("INTERVAL '1' HOUR PRECEDING AND CURRENT ROW)")


def test_features_a_dataset_cannot_support_stay_out(conn):
    bare = app_datasets.generate(as_user(conn), "bare", SyntheticConfig(rows=500, seed=3, days=10), features=False).dataset
    from dataclasses import replace

    no_merchant = replace(bare, columns=tuple(c for c in bare.columns if c.role != "merchant_id"))
    chosen = [f for f in CATALOGUE if availability(conn, no_merchant)[f.name] is None]
    sql = spark_feature_query(no_merchant, chosen, 7)
    assert not any(f.name.startswith("merch") for f in chosen)
    assert "`merch_count_1d`" not in sql and "`cust_count_1h`" in sql
