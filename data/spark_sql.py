"""The feature catalogue in Spark SQL, generated from the one declaration in data/features.py.

The DuckDB query `feature_query` builds is parsed and written out again for Spark by sqlglot (a
SQL transpiler): the same expressions, the same named windows, the same backwards-only frames
and label delay, and the same "skip what the dataset cannot support" choice (the caller passes
the features the workbench computed). Nothing is kept twice; what sqlglot would translate
differently from DuckDB's meaning is fixed here, once, for every feature that uses it:

- DuckDB's `epoch(ts)` is seconds *with* the microseconds; sqlglot writes Spark's
  `UNIX_TIMESTAMP`, whole seconds. Written as `UNIX_MICROS(ts) / 1e6` instead.
- DuckDB's `isodow` (Monday 1 ... Sunday 7); sqlglot's `(DAYOFWEEK(ts) % 7) + 1` gives Monday 3.
  Written as `WEEKDAY(ts) + 1` (Spark's WEEKDAY: Monday 0).
- The query's named parameters (the dataset id, the label delay's window bounds) become
  literals: Spark takes no parameter in a window frame. They are integers the workbench
  validated (`check_label_delay`), inserted as syntax-tree literals, never as text.
- The dataset table and the analysts' labels become the Spark views `transactions` and
  `analyst_labels`.

`tests/unit/test_spark_sql.py` checks the translation; tests/spark/ runs it on Spark in local
mode and holds every feature to DuckDB's value to 1e-9.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark

from data.datasets import Dataset
from data.features import Feature, feature_query, query_params

TRANSACTIONS_VIEW = "transactions"
LABELS_VIEW = "analyst_labels"  # columns dataset_id, transaction_id, label: the workbench's current labels
KEYS = ("tx_row", "transaction_id", "ts")  # what a Spark feature row carries besides the features


class _DuckDBMeaningSpark(Spark):
    """Spark SQL that keeps DuckDB's meaning of the functions the catalogue uses."""

    class Generator(Spark.Generator):
        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.TimeToUnix: lambda self, e: f"(UNIX_MICROS(CAST({self.sql(e, 'this')} AS TIMESTAMP)) / 1e6)",
            exp.DayOfWeekIso: lambda self, e: f"(WEEKDAY({self.sql(e, 'this')}) + 1)",
        }


def spark_feature_query(dataset: Dataset, chosen: list[Feature], label_delay_days: int) -> str:
    """Spark SQL computing `chosen` features over the view `transactions` (the dataset's columns,
    stored names, with `tx_row` giving the order of rows at the same instant) and `analyst_labels`:
    `SELECT tx_row, transaction_id, ts, <features>`."""
    tree = sqlglot.parse_one(feature_query(dataset, chosen, keys=KEYS), read="duckdb")
    values = query_params(dataset, label_delay_days)
    tables = {dataset.table_name: TRANSACTIONS_VIEW, "current_labels": LABELS_VIEW}

    def values_and_views(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in values:
            return _literal(values[node.name])
        if isinstance(node, exp.Table) and node.name in tables:
            return exp.to_table(tables[node.name], alias=node.alias or None)
        return node

    def interval_literals(node: exp.Expression) -> exp.Expression:
        # `INTERVAL ($n) DAY` (DuckDB takes a parameter there) as Spark's `INTERVAL 'n' DAY`.
        if isinstance(node, exp.Interval) and isinstance(node.this, exp.Paren) and node.this.this.is_number:
            return exp.Interval(this=exp.Literal.string(node.this.this.name), unit=node.args.get("unit"))
        return node

    tree = tree.transform(values_and_views).transform(interval_literals)
    leftover = [p.name for p in tree.find_all(exp.Placeholder)]
    if leftover:
        raise ValueError(f"the feature query has parameters with no value: {leftover}")
    return tree.sql(dialect=_DuckDBMeaningSpark, unsupported_level=sqlglot.ErrorLevel.RAISE)


def _literal(value: Any) -> exp.Literal:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"only integer parameters become literals, not {value!r}")
    return exp.Literal.number(value)
