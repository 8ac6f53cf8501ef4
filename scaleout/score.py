"""Scoring on Spark with a model trained in the workbench.

The model (a detector run, or a learned version with the detector run whose score it reads) is
loaded and hash-checked by the workbench, broadcast to the executors as its saved bytes, and
applied to Arrow batches with `mapInArrow`: pyarrow's own conversion to pandas, not PySpark's
(PySpark 4.3 warns that it does not yet fully support pandas 3, which the project pins), and
the same `decision_function` the workbench calls, so the same scores.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import joblib

from data.spark_sql import TRANSACTIONS_VIEW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Stamped on every scored row, beside the score. A learned version's rows also carry the score of
# the detector run it reads (`base_score`, `base_run_id`): the workbench needs both to explain and
# retrain on them once they are imported.
DECISION_COLUMNS = (("score", "double"), ("alert", "boolean"), ("threshold", "double"), ("run_id", "integer"),
                    ("model", "string"), ("feature_set_version", "string"), ("base_score", "double"),
                    ("base_run_id", "integer"))


@dataclass(frozen=True)
class ChainLink:
    """One model of the chain a run's score needs (a learned version reads its base run's score)."""

    run_id: int
    model: Any  # a fitted RankingModel
    reads_base_score: bool


def _dumps(models: list[ChainLink]) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(models, buffer)
    return buffer.getvalue()


def scored_frame(spark: SparkSession, features: DataFrame, chain: list[ChainLink], *, threshold: float,
                 model_label: str, feature_set_version: str, categorical: Sequence[str]) -> DataFrame:
    """Every row of `features` (joined with the transactions view for the columns the models and
    the alerts need) with the chain's score, the alert decision and the stamps."""
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    transactions = spark.table(TRANSACTIONS_VIEW)
    extra = [c for c in transactions.columns if c not in features.columns]
    joined = features.join(transactions.select("tx_row", *extra), on="tx_row").drop("tx_row")
    assert set(categorical) <= set(joined.columns), "the models' categorical columns come from the input"
    shipped = spark.sparkContext.broadcast(_dumps(chain))
    schema = StructType(list(joined.schema.fields))  # a copy: StructType.add changes the frame's own
    for name, kind in DECISION_COLUMNS:
        schema.add(name, kind)

    def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        links: list[ChainLink] = joblib.load(io.BytesIO(shipped.value))
        for batch in batches:
            frame = batch.to_pandas()
            scores: list = []
            for link in links:
                if link.reads_base_score:
                    frame["anomaly_score"] = scores[-1]
                scores.append(link.model.decision_function(frame))
            n, score = batch.num_rows, scores[-1]
            base = (pa.array(scores[0], pa.float64()), pa.array([links[0].run_id] * n, pa.int32())) if len(links) > 1 \
                else (pa.nulls(n, pa.float64()), pa.nulls(n, pa.int32()))
            columns = [*batch.columns, pa.array(score, pa.float64()), pa.array(score >= threshold),
                       pa.array([threshold] * n, pa.float64()), pa.array([links[-1].run_id] * n, pa.int32()),
                       pa.array([model_label] * n, pa.string()), pa.array([feature_set_version] * n, pa.string()), *base]
            yield pa.RecordBatch.from_arrays(columns, names=[*batch.schema.names, *(c for c, _ in DECISION_COLUMNS)])

    # Written back as the input's wall-clock time (no zone), as the workbench stores it.
    return joined.mapInArrow(apply, schema).withColumn("ts", F.col("ts").cast("timestamp_ntz")) \
        .withColumn("day", F.to_date("ts"))
