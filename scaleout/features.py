"""The dataset's features on Spark: its Parquet files read with the dataset's column mapping and
the catalogue's Spark SQL (data/spark_sql.py) run over them."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import duckdb

from data.datasets import Dataset
from data.errors import InvalidInput
from data.features import FeatureSet, catalogue_features
from data.spark_sql import LABELS_VIEW, TRANSACTIONS_VIEW, spark_feature_query

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The stored type of each role's column, as Spark types (data.mapping.ROLES holds the DuckDB ones).
SPARK_TYPES = {"VARCHAR": "STRING", "TIMESTAMP": "TIMESTAMP", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}


def session(master: str | None = None, app: str = "centinela", conf: dict[str, str] | None = None) -> SparkSession:
    """A Spark session whose time zone is UTC: the workbench's timestamps are wall-clock times
    without a zone, and Spark must read them as DuckDB does (no shift, `hour()` the same).

    With no `master`: the one spark-submit was given when it started this driver, else every
    core of this machine (`local[*]`)."""
    from pyspark.sql import SparkSession

    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # that variable: started by spark-submit
        master = "local[*]"
    builder = SparkSession.builder.appName(app).config("spark.sql.session.timeZone", "UTC")
    if master is not None:
        builder = builder.master(master)
    # Python workers run this interpreter (its packages: the models' libraries) unless the
    # cluster's own is named, as spark-submit does with PYSPARK_PYTHON and an archived environment.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {"spark.ui.showConsoleProgress": "false", **(conf or {})}.items():
        builder = builder.config(key, value)
    if master is not None and master.startswith("local"):  # the driver on loopback, not the host's first address
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1")
    spark = builder.getOrCreate()
    configured = spark.sparkContext.getConf().contains("spark.sql.shuffle.partitions")  # by --conf or `conf`
    if spark.sparkContext.master.startswith("local") and not configured:
        spark.conf.set("spark.sql.shuffle.partitions", "4")  # one machine: a few shuffle partitions, not a cluster's 200
    return spark


def read_transactions(spark: SparkSession, dataset: Dataset, paths: Sequence[str]) -> DataFrame:
    """The dataset's columns from Parquet `paths` (files, folders or globs), by the file's column
    name (the mapping's source) or the stored name, cast to the stored types. `tx_row` orders
    rows of one customer at the same instant as the workbench does (file order): a file path and
    the row's position in it."""
    from pyspark.sql import functions as F

    from data.mapping import ROLE_BY_NAME

    frame = spark.read.parquet(*paths)
    present = set(frame.columns)
    stored_types = {role.column: role.sql_type for role in ROLE_BY_NAME.values()}
    columns = [F.struct(F.col("_metadata.file_path").alias("file"), F.col("_metadata.row_index").alias("row"))
               .alias("tx_row")]
    for column in dataset.columns:
        if column.name == "tx_row":
            continue
        found = next((name for name in (column.source, column.name) if name and name in present), None)
        if found is None:
            if column.role in ("timestamp", "amount") or (column.role == "transaction_id" and column.source):
                raise InvalidInput(f"the input has no column {column.source or column.name!r} "
                                   f"(the dataset's {column.role}).", file=", ".join(paths), column=column.name)
            found_expr = F.lit(None)
        else:
            found_expr = F.col(f"`{found}`")
        sql_type = stored_types.get(column.name) or ("DOUBLE" if column.role == "numeric" else "VARCHAR")
        columns.append(found_expr.cast(SPARK_TYPES[sql_type]).alias(column.name))
    return frame.select(*columns)


def labels_frame(spark: SparkSession, conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> DataFrame:
    """The workbench's current analyst labels of the dataset (small: people write them)."""
    rows = conn.execute("SELECT dataset_id, transaction_id, label FROM current_labels WHERE dataset_id = ?",
                        [dataset.id]).fetchall()
    return spark.createDataFrame(rows, "dataset_id INT, transaction_id STRING, label STRING")


def features(spark: SparkSession, conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet,
             paths: Sequence[str]) -> DataFrame:
    """The feature set's features over the Parquet input, on Spark: `tx_row, transaction_id, ts` and
    one column per feature. The same features the workbench computed (a feature it skipped stays
    skipped) with the same label delay."""
    read_transactions(spark, dataset, paths).createOrReplaceTempView(TRANSACTIONS_VIEW)
    labels_frame(spark, conn, dataset).createOrReplaceTempView(LABELS_VIEW)
    delay = int(feature_set.params.get("label_delay_days", 7))
    return spark.sql(spark_feature_query(dataset, catalogue_features(feature_set.computed), delay))
