"""Batch work on Spark with the workbench's features and models (the `centinela spark` commands).

The workbench stays the place where features are declared and models trained, explained and
promoted; Spark computes the same features and applies the same model over a data lake, and
writes what it decided as Parquet. Each action is audited here like any other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from application.context import Context
from application.datasets import DatasetRef
from application.runs import require_active
from data import import_folder, spark_alerts
from data.audit import record
from data.errors import InvalidInput
from data.features import FeatureSet, catalogue_features, feature_version, labels_snapshot, load_feature_set
from data.live import update_counts
from detectors import runs as run_store

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class SparkScored:
    rows: int
    alerts: int
    run_id: int
    threshold: float
    feature_set_version: str
    decisions: str  # where the decisions were written (Parquet, partitioned by day)
    alerts_path: str  # the alerted rows with their columns, features and scores
    seconds: float


def _chain(ctx: Context, run: run_store.Run) -> list:
    from scaleout.score import ChainLink

    chain = []
    while True:
        chain.insert(0, ChainLink(run.id, run_store.load_model(ctx.conn, run), run.spec.base_run_id is not None))
        if run.spec.base_run_id is None:
            return chain
        run = run_store.get_run(ctx.conn, run.spec.base_run_id)


def refuse_existing_output(spark: SparkSession, output: str | Path) -> None:
    """Spark's output folder must be new: an earlier run's decisions are never replaced unasked."""
    from scaleout.features import output_exists

    if output_exists(spark, str(output)):
        raise InvalidInput("already exists; nothing was written.", file=str(output),
                           hint="Choose a new --output folder, or remove the old one first.")


def _feature_set(ctx: Context, target) -> FeatureSet:
    feature_set = load_feature_set(ctx.conn, target)
    if feature_set is None:
        raise InvalidInput(f"dataset {target.name!r} has no features yet: they are declared and chosen in the "
                           "workbench first.", hint=f"centinela features {target.name!r}")
    return feature_set


def spark_version(ctx: Context, target, feature_set: FeatureSet) -> str:
    """The version of the features Spark computes now: the set's definitions and parameters with
    the labels as they are now (Spark reads the current labels, which may be newer than the
    ones the workbench's stored features read)."""
    snapshot = labels_snapshot(ctx.conn, target) if feature_set.labels_snapshot is not None else None
    return feature_version(catalogue_features(feature_set.computed), feature_set.params, snapshot)


def spark_features(ctx: Context, dataset: DatasetRef, inputs: Sequence[str], spark: SparkSession,
                   needed: Sequence[str] = ()) -> DataFrame:
    """The dataset's feature set computed on Spark over Parquet `inputs` (lazily: a DataFrame)."""
    from scaleout import features as spark_feats

    target = ctx.dataset(dataset)
    return spark_feats.features(spark, ctx.conn, target, _feature_set(ctx, target), list(inputs), needed)


def write_spark_features(ctx: Context, dataset: DatasetRef, inputs: Sequence[str], output: str | Path,
                         spark: SparkSession) -> str:
    """Write the dataset's features of every input row, computed on Spark, as Parquet to the new
    folder `output` (refused if it exists); returns where."""
    out = str(output).rstrip("/") or "/"  # a URI (hdfs://, s3a://) as text: pathlib would fold its '//'
    refuse_existing_output(spark, out)
    spark_features(ctx, dataset, inputs, spark).drop("tx_row").write.mode("errorifexists").parquet(out)
    return out


def spark_score(ctx: Context, dataset: DatasetRef, inputs: Sequence[str], output: str | Path, spark: SparkSession,
                run_id: int | None = None) -> SparkScored:
    """Score every row of the Parquet `inputs` on Spark with the dataset's active model (or run
    `run_id`) and its threshold; write the decisions (`output`/decisions) and the alerted rows
    with their features (`output`/alerts), both partitioned by day, and audit it."""
    from pyspark import StorageLevel

    from scaleout.score import DECISION_COLUMNS, scored_frame

    started = time.perf_counter()
    target = ctx.dataset(dataset)
    if run_id is None:
        active = require_active(ctx, target)
        run, threshold = active.run, active.threshold
    else:
        run = run_store.run_of(ctx.conn, target, run_id)
        threshold = run_store.run_threshold(ctx.conn, run)
    # A URI (hdfs://, s3a://) as text: pathlib would fold its '//'.
    out = str(output).rstrip("/") or "/"
    refuse_existing_output(spark, out)
    feature_set = _feature_set(ctx, target)
    version = spark_version(ctx, target, feature_set)
    chain = _chain(ctx, run)
    categorical = sorted({c for link in chain for c in link.model.spec.categorical})
    features = spark_features(ctx, target, inputs, spark, needed=categorical)
    ctx.progress(0.1, f"Scoring {', '.join(inputs)} on Spark with run #{run.id}")
    scored = scored_frame(spark, features, chain, threshold=threshold, model_label=f"#{run.id} {run.detector}",
                          feature_set_version=version, categorical=categorical)
    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        decisions, alerts = f"{out}/decisions", f"{out}/alerts"
        keys = ["transaction_id", "ts", *(c for c, _ in DECISION_COLUMNS), "day"]
        scored.select(*keys).write.mode("errorifexists").partitionBy("day").parquet(decisions)
        scored.where("alert").write.mode("errorifexists").partitionBy("day").parquet(alerts)
        counts = scored.selectExpr("count(*) AS n", "count_if(alert) AS alerts").first()
    finally:
        scored.unpersist()
    result = SparkScored(int(counts["n"]), int(counts["alerts"]), run.id, float(threshold), version,
                         decisions, alerts, time.perf_counter() - started)
    with ctx.unit_of_work() as conn:
        record(conn, ctx.actor, "spark_score", dataset_id=target.id, target=f"run #{run.id}",
               after={"inputs": list(inputs), "output": out, "rows": result.rows, "alerts": result.alerts,
                      "threshold": result.threshold, "feature_set_version": result.feature_set_version})
    ctx.progress(1.0, f"Scored {result.rows:,} rows on Spark: {result.alerts:,} alerts")
    return result


@dataclass(frozen=True)
class AlertsImported:
    alerts: int  # alerted rows in the output
    imported: int  # appended to the dataset
    already_stored: int  # transaction ids the dataset held already (left as they are)
    runs: list[int]
    seconds: float
    feature_set_versions: list[str]  # what Spark stamped on the rows
    current_version: str | None  # the dataset's feature set now (differs when its definitions or labels changed)


def import_spark_alerts(ctx: Context, dataset: DatasetRef, path: str | Path,
                        confine: Path | None = None) -> AlertsImported:
    """Bring the alerts of a `spark score` output into the dataset: their rows, features and
    scores, so the queue, the case view and retraining treat them as any other row. Ids the
    dataset holds are skipped (importing the same output twice adds nothing); all or nothing."""
    started = time.perf_counter()
    target = ctx.dataset(dataset)
    feature_set = _feature_set(ctx, target)
    source = spark_alerts.alert_files(path, confine)
    active = require_active(ctx, target)
    # Alerts of the run that ranks the queue (and of the detector run a learned version reads):
    # another run's alerts would be stored but never shown.
    ranked = {active.run.id} | ({active.run.spec.base_run_id} if active.run.spec.base_run_id is not None else set())
    ctx.progress(0.1, f"Reading the alerts in {source.display}")
    with ctx.unit_of_work() as conn:
        read = spark_alerts.stage(conn, target, feature_set, source, ranked, active.run.id)
        if read["new"]:
            bounds = spark_alerts.append_staged(conn, target, feature_set)
            update_counts(conn, target, read["new"], bounds)
        conn.execute(f"DROP TABLE IF EXISTS {spark_alerts.STAGED}")
        record(conn, ctx.actor, "spark_import", dataset_id=target.id, target=source.display,
               after={"alerts": read["alerts"], "imported": read["new"], "already_stored": read["already_stored"],
                      "runs": read["runs"], "feature_set_versions": read["feature_set_versions"]})
    ctx.progress(1.0, f"Imported {read['new']:,} alerts ({read['already_stored']:,} already stored)")
    return AlertsImported(read["alerts"], read["new"], read["already_stored"], read["runs"], time.perf_counter() - started,
                          read["feature_set_versions"], spark_version(ctx, target, feature_set))


def import_spark_alerts_from_server(ctx: Context, dataset: DatasetRef, name: str) -> AlertsImported:
    """`import_spark_alerts` of a `spark score` output in the server's import folder (the Data
    page): the folder is resolved, links and `..` too, and refused outside the import folder."""
    return import_spark_alerts(ctx, dataset, import_folder.resolve_spark_output(name), confine=import_folder.import_dir())


@dataclass(frozen=True)
class Sampled:
    created: Any  # application.datasets.Created: the new dataset, its features and import report
    lake_rows: int
    sample_rows: int
    rate: float
    kept_whole: int
    unit: str


def spark_sample(ctx: Context, inputs: Sequence[str], name: str, rows: int, spark: SparkSession, *,
                 stratify: bool = False, seed: int = 0) -> Sampled:
    """Draw a time-respecting sample of about `rows` rows from the Parquet `inputs` on Spark
    (scaleout/sample.py) and import it as the new dataset `name`, through the same import
    checks, mapping guess, features and audit as a file."""
    import tempfile

    import pyarrow.parquet as pq

    from application.datasets import import_dataset
    from data.datasets import check_new_name
    from data.mapping import guess_mapping
    from scaleout.sample import draw, input_columns

    check_new_name(ctx.conn, name)  # before minutes of Spark work
    mapping = guess_mapping(input_columns(spark, inputs))
    ctx.progress(0.05, f"Drawing about {rows:,} rows from {', '.join(inputs)} on Spark")
    drawn = draw(spark, inputs, mapping, rows, stratify=stratify, seed=seed)
    with tempfile.TemporaryDirectory(prefix="centinela-sample-") as folder:
        local = Path(folder) / f"{name}-sample.parquet"
        pq.write_table(drawn.frame.toArrow(), local)  # through the driver: the sample is what fits one machine
        ctx.progress(0.5, f"Importing the sample's {drawn.sample_rows:,} rows as {name!r}")
        created = import_dataset(ctx, local, name, display_name=f"spark sample of {', '.join(inputs)}")
    return Sampled(created, drawn.lake_rows, drawn.sample_rows, drawn.rate, drawn.kept_whole, drawn.unit)
