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

# The stored type of each role's column, as Spark types (data.mapping.ROLES holds the DuckDB ones),
# and the input types each can be read from without a value turning into something else.
SPARK_TYPES = {"VARCHAR": "STRING", "TIMESTAMP": "TIMESTAMP", "DOUBLE": "DOUBLE", "BOOLEAN": "BOOLEAN"}
_NUMBERS = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal")
READABLE = {"VARCHAR": ("string", "tinyint", "smallint", "int", "bigint"), "DOUBLE": _NUMBERS,
            "TIMESTAMP": ("timestamp", "timestamp_ntz", "date"), "BOOLEAN": ("boolean", "tinyint", "smallint", "int", "bigint")}
WANTED = {"VARCHAR": "text or whole numbers", "DOUBLE": "numbers", "TIMESTAMP": "timestamps or dates",
          "BOOLEAN": "true/false or 1/0"}


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
        if "spark.driver.memory" not in (conf or {}):  # local mode: the executors live in the driver's heap (1 GB by default)
            builder = builder.config("spark.driver.memory", os.environ.get("CENTINELA_SPARK_DRIVER_MEMORY", _local_heap()))
    spark = builder.getOrCreate()
    configured = spark.sparkContext.getConf().contains("spark.sql.shuffle.partitions")  # by --conf or `conf`
    if spark.sparkContext.master.startswith("local") and not configured:
        # One machine: 32 shuffle partitions, not a cluster's 200; adaptive execution merges the small
        # ones (200,000 rows end in a few), and 10M rows stay in memory (4 partitions ran out of heap).
        spark.conf.set("spark.sql.shuffle.partitions", "32")
    return spark


def _local_heap() -> str:
    """The driver's heap in local mode: 45% of this machine's memory (measured: 10M rows on 2 cores ran in
    a 10 GB heap, 8.7 GB at their peak, and ran out of 4 GB), at least 2 GB."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(2, int(total * 0.45 / 2**30))}g"


def read_transactions(spark: SparkSession, dataset: Dataset, paths: Sequence[str],
                      needed: Sequence[str] = ()) -> DataFrame:
    """The dataset's columns from Parquet `paths` (files, folders or globs), by the file's column
    name (the mapping's source) or the stored name, in the stored types, as the workbench's import
    stores them: times as wall-clock time in the dataset's zone (a zoned timestamp converted to
    it, a zoneless one read as it is). `tx_row` orders rows of one customer at the same instant as
    the workbench does (file order): a file path and the row's position in it.

    Every column the dataset maps from its files must be there (`needed`: extra columns a model
    reads), except the ground truth: new transactions come without it. Values Spark would have
    to reinterpret (text amounts, epoch numbers, label words) are refused: convert them first,
    or import the files into the workbench, whose import reads those conventions."""
    from pyspark.sql import functions as F

    from data.mapping import ROLE_BY_NAME

    where = ", ".join(paths)
    try:
        frame = spark.read.parquet(*paths)
    except Exception as exc:  # pyspark's AnalysisException: no such path, not Parquet
        raise InvalidInput(f"cannot be read as Parquet ({str(exc).splitlines()[0][:300]}).", file=where) from None
    input_types = {f.name: f.dataType.simpleString().split("(")[0] for f in frame.schema.fields}
    stored_types = {role.column: role.sql_type for role in ROLE_BY_NAME.values()}
    derived = [c.name for c in dataset.columns if c.name in ("lat", "lon") and c.source is None]
    columns = [F.struct(F.col("_metadata.file_path").alias("file"), F.col("_metadata.row_index").alias("row"))
               .alias("tx_row")]
    for column in dataset.columns:
        if column.name == "tx_row":
            continue
        found = next((name for name in (column.source, column.name) if name and name in input_types), None)
        optional = column.role in ("label", "fraud_scenario") or (
            column.role in ("categorical", "numeric") and column.name not in needed)
        if found is None and column.name in derived:
            raise InvalidInput(f"the dataset's {column.name} comes from place names, and Spark reads coordinates "
                               "only as columns.", file=where, column=column.name,
                               hint="Add lat/lon columns to the lake, or compute features without coordinates.")
        if found is None and not optional:
            raise InvalidInput(f"no such column: the dataset maps {column.source or column.name!r} as its "
                               f"{column.role}.", file=where, column=column.source or column.name)
        sql_type = stored_types.get(column.name) or ("DOUBLE" if column.role == "numeric" else "VARCHAR")
        if found is None:
            columns.append(F.lit(None).cast(SPARK_TYPES[sql_type]).alias(column.name))
            continue
        kind = input_types[found]
        if kind not in READABLE[sql_type]:
            raise InvalidInput(f"holds {kind} values; the dataset's {column.role} needs {WANTED[sql_type]}.",
                               file=where, column=found)
        value = F.col("`" + found.replace("`", "``") + "`")
        if kind == "timestamp":  # an instant (zoned in the file): the dataset's wall-clock time
            value = F.from_utc_timestamp(value, dataset.timezone)
        columns.append(value.cast(SPARK_TYPES[sql_type]).alias(column.name))
    return frame.select(*columns)


def output_exists(spark: SparkSession, path: str) -> bool:
    """Whether `path` exists, on whatever file system Spark writes it to (local, HDFS, object store)."""
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(str(path))
    return bool(target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(target))


def labels_frame(spark: SparkSession, conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> DataFrame:
    """The workbench's current analyst labels of the dataset (small: people write them)."""
    rows = conn.execute("SELECT dataset_id, transaction_id, label FROM current_labels WHERE dataset_id = ?",
                        [dataset.id]).fetchall()
    return spark.createDataFrame(rows, "dataset_id INT, transaction_id STRING, label STRING")


def features(spark: SparkSession, conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet,
             paths: Sequence[str], needed: Sequence[str] = ()) -> DataFrame:
    """The feature set's features over the Parquet input, on Spark: `tx_row, transaction_id, ts` and
    one column per feature. The same features the workbench computed (a feature it skipped stays
    skipped) with the same label delay."""
    read_transactions(spark, dataset, paths, needed).createOrReplaceTempView(TRANSACTIONS_VIEW)
    labels_frame(spark, conn, dataset).createOrReplaceTempView(LABELS_VIEW)
    delay = int(feature_set.params.get("label_delay_days", 7))
    return spark.sql(spark_feature_query(dataset, catalogue_features(feature_set.computed), delay))
