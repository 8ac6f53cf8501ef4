"""Datasets: import a file, generate synthetic data, compute features, delete, restore, purge,
export. Importing and generating compute the features in the same unit of work, so a dataset
never exists without them unless asked (`features=False`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from application.context import Context
from data import datasets as store
from data import features as feature_store
from data import import_folder
from data.audit import record
from data.datasets import Dataset
from data.db import quote_ident, sql_string
from data.errors import InvalidInput
from data.features import DEFAULT_LABEL_DELAY_DAYS, FeatureSet
from data.ingest import ImportOptions, ImportResult, import_file
from data.mapping import ColumnMapping
from data.synthetic import SyntheticConfig, store_synthetic

DatasetRef = str | int | Dataset


@dataclass(frozen=True)
class Created:
    """A dataset just imported or generated, with its features (None when not computed)."""

    dataset: Dataset
    features: FeatureSet | None
    report: ImportResult | None = None  # an import's report: rows read and stored, problems, notes


def import_server_file(ctx: Context, name: str, dataset_name: str, mapping: ColumnMapping | None = None,
                       **options) -> Created:
    """Import a file of the server's import folder (the Data page's *A path on this server*): the
    name is resolved, symlinks and `..` too, and refused outside the folder before anything is read."""
    return import_dataset(ctx, import_folder.resolve(name), dataset_name, mapping, **options)


def import_dataset(ctx: Context, path: str | os.PathLike[str], name: str, mapping: ColumnMapping | None = None, *,
                   display_name: str | None = None, encoding: str = "utf-8", options: ImportOptions | None = None,
                   skip_bad_rows: bool = False, features: bool = True,
                   label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS) -> Created:
    """Import a CSV, Parquet or Excel file as dataset `name` (times in `options.timezone`, default
    America/Lima; conventions detected unless set), then compute its features; all or nothing."""
    feature_store.check_label_delay(label_delay_days)
    store.check_new_name(ctx.conn, name)  # before reading the file
    options = (options or ImportOptions()).validated(ctx.conn)
    with ctx.unit_of_work() as conn:
        result = import_file(conn, path, name, mapping, display_name=display_name, encoding=encoding, options=options,
                             skip_bad_rows=skip_bad_rows, progress=lambda f, m: ctx.progress(f * 0.8, m))
        dataset = result.dataset
        computed = _features(ctx, dataset, label_delay_days, start=0.8) if features else None
        record(conn, ctx.actor, "import", dataset_id=dataset.id, target=dataset.name,
               after={"source": dataset.source, "rows": dataset.row_count, "rows_read": result.rows_read,
                      "skipped": result.skipped_rows, "from": dataset.min_ts, "until": dataset.max_ts,
                      "timezone": dataset.timezone, "refunds": result.counts.get("refunds", 0),
                      "converted_offsets": result.counts.get("converted_offsets", 0),
                      "features": computed.version if computed else None})
    return Created(dataset, computed, result)


def generate(ctx: Context, name: str, config: SyntheticConfig | None = None, *, features: bool = True) -> Created:
    """Generate a synthetic Peru dataset and compute its features; all or nothing."""
    config = (config or SyntheticConfig()).validated()
    store.check_new_name(ctx.conn, name)  # before generating
    with ctx.unit_of_work() as conn:
        dataset = store_synthetic(conn, name, config, progress=lambda f, m: ctx.progress(f * 0.8, m))
        computed = _features(ctx, dataset, DEFAULT_LABEL_DELAY_DAYS, start=0.8) if features else None
        record(conn, ctx.actor, "generate", dataset_id=dataset.id, target=dataset.name,
               after={"source": dataset.source, "rows": dataset.row_count, "seed": config.seed,
                      "fraud_rate": config.fraud_rate, "from": dataset.min_ts, "until": dataset.max_ts,
                      "features": computed.version if computed else None})
    return Created(dataset, computed)


def _features(ctx: Context, dataset: Dataset, delay: int, start: float) -> FeatureSet:
    return feature_store.compute_features(ctx.conn, dataset, label_delay_days=delay,
                                          progress=lambda f, m: ctx.progress(start + f * (1 - start), m))


def compute_features(ctx: Context, dataset: DatasetRef, label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS) -> FeatureSet:
    """(Re)compute a dataset's features from its rows and current labels."""
    delay = feature_store.check_label_delay(label_delay_days)
    with ctx.unit_of_work() as conn:
        target = ctx.dataset(dataset)
        before = feature_store.load_feature_set(conn, target)
        computed = _features(ctx, target, delay, start=0.0)
        record(conn, ctx.actor, "features", dataset_id=target.id, target=target.name,
               before={"version": before.version, "features": len(before.computed)} if before else None,
               after={"version": computed.version, "features": len(computed.computed),
                      "skipped": sorted(computed.skipped), "label_delay_days": delay})
    return computed


def ensure_features(ctx: Context, dataset: DatasetRef) -> FeatureSet:
    """The dataset's features, computing them first (an action of its own) if they never were."""
    return feature_store.load_feature_set(ctx.conn, ctx.dataset(dataset)) or compute_features(ctx, dataset)


def delete(ctx: Context, dataset: DatasetRef) -> Dataset:
    """Move a dataset to the trash; `restore` undoes it until the trash is emptied."""
    with ctx.unit_of_work() as conn:
        target = ctx.dataset(dataset)
        store.mark_deleted(conn, target)
        record(conn, ctx.actor, "delete", dataset_id=target.id, target=target.name, before={"rows": target.row_count})
    return target


def restore(ctx: Context, dataset_id: int) -> Dataset:
    """Take a dataset back out of the trash."""
    with ctx.unit_of_work() as conn:
        restored = store.restore(conn, int(dataset_id))
        record(conn, ctx.actor, "restore", dataset_id=restored.id, target=restored.name)
    return restored


def empty_trash(ctx: Context) -> int:
    """Drop every dataset in the trash for good, with its features, labels and runs."""
    with ctx.unit_of_work() as conn:
        trash = store.list_datasets(conn, deleted=True)
        for dataset in trash:
            store.purge(conn, dataset.id)
            record(conn, ctx.actor, "purge", dataset_id=dataset.id, target=dataset.name, before={"rows": dataset.row_count})
    return len(trash)


def export(ctx: Context, dataset: DatasetRef, out: str | os.PathLike[str]) -> int:
    """Write a dataset's rows, in order, to a .csv or .parquet file; returns the row count."""
    target, out = ctx.dataset(dataset), Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InvalidInput("the output must end in .csv or .parquet.", file=str(out))
    columns = ", ".join(quote_ident(c.name) for c in target.columns if c.name != "tx_row")
    fmt = "(HEADER, FORMAT csv)" if suffix == ".csv" else "(FORMAT parquet)"
    ctx.progress(0.1, f"Writing {target.row_count:,} rows to {out}")
    # COPY takes no parameter for its target, so the path goes in as an escaped literal.
    ctx.conn.execute(f"COPY (SELECT {columns} FROM {target.table} ORDER BY tx_row) TO {sql_string(str(out))} {fmt}")
    return target.row_count
