"""A training sample of a data lake, drawn on Spark, for the workbench.

Time-respecting: the sample is drawn by customer (card), each chosen customer with every one of
its transactions in time order, so a customer's history features on the sample are what they
are on the whole lake; a model trained on the sample scores the lake with the features it
learned from. With labels stratified, every customer with a labelled fraud is kept and the
others are drawn at the rate that brings the sample to about the rows asked for; each row
records its `sample_weight` (1 for the kept, 1 / rate for the drawn), so counts and rates on the
sample can be weighted back to the lake's. The draw is a hash of the customer id and the seed:
the same seed draws the same sample on any cluster. Without a customer id, rows are drawn one
by one the same way.

Merchant features are computed on the sample in the workbench, and a merchant's counts there
are the sample's (fewer than on the lake): `centinela spark score` computes them over the lake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data.errors import InvalidInput
from data.ingest import TRUE_WORDS
from data.mapping import ColumnMapping

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

WEIGHT = "sample_weight"
_DRAWS = 1_000_000  # the hash's resolution: rates are honoured to one in a million


@dataclass(frozen=True)
class Drawn:
    frame: DataFrame  # the sample's rows (the input's columns and `sample_weight`), in time order
    lake_rows: int
    sample_rows: int
    rate: float  # the share drawn of the customers (or rows) not kept whole
    kept_whole: int  # customers kept for their labelled fraud (stratified), else 0
    unit: str  # "customer" or "row"


def draw(spark: SparkSession, paths: Sequence[str], mapping: ColumnMapping, rows: int, *, stratify: bool,
         seed: int = 0) -> Drawn:
    """Draw about `rows` rows from the Parquet `paths`, by customer, as the module says."""
    from pyspark.sql import functions as F

    if rows < 1:
        raise InvalidInput("the sample needs at least one row.", field="rows")
    lake = spark.read.parquet(*paths)
    timestamp = mapping.roles.get("timestamp")
    if timestamp is None:
        raise InvalidInput("no timestamp column found in the input.", file=", ".join(paths), column="timestamp",
                           hint="Name it as the import would recognise it (ts, timestamp, tx_datetime, ...).")
    customer, label = mapping.roles.get("customer_id"), mapping.roles.get("label")
    if stratify and label is None:
        raise InvalidInput("--stratify-labels needs a label column, and the input has none.", file=", ".join(paths),
                           column="label")
    if WEIGHT in lake.columns:
        raise InvalidInput(f"the input already has a column {WEIGHT!r}, which the sample adds.", file=", ".join(paths),
                           column=WEIGHT)
    lake = lake.select("*", F.col("_metadata.file_path").alias("_file"), F.col("_metadata.row_index").alias("_row"))
    unit = "customer" if customer else "row"
    row_key = F.concat_ws(":", "_file", "_row")  # a row without a customer is its own unit
    key = F.coalesce(F.col("`" + customer.replace("`", "``") + "`").cast("string"), row_key) if customer else row_key
    fraud = F.lower(F.trim(F.col("`" + label.replace("`", "``") + "`").cast("string"))).isin(TRUE_WORDS) \
        if label else F.lit(False)
    units = lake.groupBy(key.alias("_unit")).agg(F.count(F.lit(1)).alias("_n"), F.max(fraud.cast("int")).alias("_fraud"))
    totals = units.agg(F.sum("_n").alias("rows"), F.sum(F.when(F.col("_fraud") == 1, F.col("_n"))).alias("fraud_rows"),
                       F.sum(F.when(F.col("_fraud") == 1, 1)).alias("fraud_units")).first()
    lake_rows = int(totals["rows"] or 0)
    fraud_rows = int(totals["fraud_rows"] or 0) if stratify else 0
    kept_whole = int(totals["fraud_units"] or 0) if stratify else 0
    others = lake_rows - fraud_rows
    rate = 1.0 if others == 0 else min(1.0, max(0, rows - fraud_rows) / others)
    drawn = F.pmod(F.xxhash64(F.col("_unit"), F.lit(int(seed))), F.lit(_DRAWS)) < F.lit(int(round(rate * _DRAWS)))
    whole = (F.col("_fraud") == 1) if stratify else F.lit(False)
    chosen = units.where(whole | drawn).select(
        "_unit", F.when(whole, F.lit(1.0)).otherwise(F.lit(1.0 / rate if rate > 0 else 0.0)).alias(WEIGHT))
    sample = lake.join(chosen, key == F.col("_unit"))
    ordered = sample.repartition(1).sortWithinPartitions(F.col("`" + timestamp.replace("`", "``") + "`"), "_file", "_row")
    columns = [c for c in lake.columns if c not in ("_file", "_row")]
    frame = ordered.select(*[F.col("`" + c.replace("`", "``") + "`") for c in columns], WEIGHT)
    return Drawn(frame, lake_rows, frame.count(), rate, kept_whole, unit)


# Spark's types as the DuckDB types the import's mapping guess reads (data.mapping.guess_mapping).
_DUCKDB_TYPES = {"string": "VARCHAR", "double": "DOUBLE", "float": "DOUBLE", "int": "INTEGER", "bigint": "BIGINT",
                 "smallint": "SMALLINT", "tinyint": "TINYINT", "boolean": "BOOLEAN", "timestamp": "TIMESTAMP",
                 "timestamp_ntz": "TIMESTAMP", "date": "DATE"}


def input_columns(spark: SparkSession, paths: Sequence[str]) -> list[tuple[str, str]]:
    """The input's columns as (name, DuckDB type), for the import's mapping guess."""
    try:
        schema = spark.read.parquet(*paths).schema
    except Exception as exc:  # pyspark's AnalysisException: no such path, not Parquet
        raise InvalidInput(f"cannot be read as Parquet ({str(exc).splitlines()[0][:300]}).", file=", ".join(paths)) from None
    return [(f.name, _DUCKDB_TYPES.get(f.dataType.simpleString().split("(")[0], "VARCHAR")) for f in schema.fields]
