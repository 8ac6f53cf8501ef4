"""Database sources: an admin adds a PostgreSQL table or query as the source of a dataset; a sync
loads its new and changed rows incrementally, through the import's own checks, mapping and audit.

A sync, in order: read the rows at or past the stored watermark minus the overlap window (Arrow,
from ADBC's libpq driver; outside any transaction); write them to a temporary Parquet file; then
one unit of work imports that file with the source's mapping (`data.ingest.import_file`: the
same checks as a file, which name the row and column of a bad value and leave everything
unchanged), merges the checked rows into the dataset by transaction id (new appended, changed
updated in place, identical skipped), recomputes the dataset's features, stores the new
watermark and writes the audit row. The watermark and the rows commit together, so a sync killed
at any point leaves the old watermark and none of its rows, and the next sync does it again.

A dataset a source fills may also be scored live (application.live). The unit of work holds live
scoring in this process (`live.held`): a request arriving during the merge and the feature
recomputation waits for the sync's commit and then gets features over the synced rows, where
DuckDB would refuse one of the two writers (the feature table is replaced, the `datasets` row
updated). The registry row is written last, just before the commit. A conflict with any other
writer is retried a few times and then refused as a Conflict ("sync again"), never a raw error.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from application import live
from application.context import Context
from application.rules import require_role
from data import database_sources as store
from data import datasets as dataset_store
from data import features as feature_store
from data.audit import record
from data.conventions import ImportOptions
from data.errors import Conflict, InvalidInput, NotFound, UserError
from data.ingest import import_file


@dataclass(frozen=True)
class SyncReport:
    source: str
    dataset: str
    rows_read: int  # rows PostgreSQL returned (the overlap window's rows included)
    new: int  # appended
    updated: int  # stored before, with other values now: updated in place
    skipped: int  # stored before with the same values (the overlap window read again)
    watermark_before: str | None
    watermark_after: str | None
    since: str | None  # the bound of the read: the stored watermark minus the overlap
    created_dataset: bool
    features: str | None  # the feature set's version after the sync
    seconds: float
    read_seconds: float
    updated_ids: list[str] = field(default_factory=list)
    changed_columns: dict[str, int] = field(default_factory=dict)
    without_watermark: int = 0  # source rows whose watermark is NULL: never read
    # What the import's checks found and let through (`data.ingest.ImportResult`), said in the
    # source's terms: values of optional columns that did not parse and were stored as empty (by
    # source key: `store.source_problems`), the import's notes, and rows left out (always 0: a sync
    # refuses bad required values instead).
    problems: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "dataset": self.dataset, "rows_read": self.rows_read, "new": self.new,
                "updated": self.updated, "skipped": self.skipped, "watermark_before": self.watermark_before,
                "watermark_after": self.watermark_after, "since": self.since, "created_dataset": self.created_dataset,
                "features": self.features, "seconds": round(self.seconds, 3), "read_seconds": round(self.read_seconds, 3),
                "updated_ids": self.updated_ids, "changed_columns": self.changed_columns,
                "without_watermark": self.without_watermark, "problems": self.problems, "notes": self.notes,
                "skipped_rows": self.skipped_rows}


def _require_admin(ctx: Context, what: str) -> None:
    require_role(ctx, ("admin",), what)


def add_source(ctx: Context, name: str, url: str, *, watermark: str, table: str | None = None,
               query: str | None = None, dataset: str | None = None, overlap: str | None = None,
               maps: list[str] | None = None, timezone: str = "America/Lima", features: bool = True) -> store.SourceSettings:
    """Add a PostgreSQL source of a new dataset (created by its first sync). The source is read
    once with LIMIT 0, so its columns, the watermark's type and the mapping are checked now."""
    _require_admin(ctx, "add database sources")
    name = store.check_name(name)
    url = store.check_url(url)
    if bool(table) == bool(query):
        raise InvalidInput("give either --table or --query.", field="table")
    relation = store.check_table(table) if table else None
    query = store.check_query(query) if query else None
    watermark = (watermark or "").strip()
    if not watermark:
        raise InvalidInput("give the watermark column (--watermark COLUMN).", field="watermark")
    target = dataset_store.validate_name(dataset or name)
    options = ImportOptions(timezone=timezone).validated(ctx.conn)
    if store.get_source(ctx.conn, name):
        raise Conflict(f"a source named {name!r} already exists.", field="name",
                       hint="Remove it first (centinela source remove NAME), or choose another name.")
    _check_dataset_free(ctx, target)
    ctx.progress(0.2, f"Reading the columns of the source at {store.redact(url)}")
    empty = store.fetch(url, relation, query, watermark, limit_zero=True)
    kind = store.watermark_type(empty, watermark)
    mapping = store.plan_mapping(ctx.conn, empty, list(maps or []), watermark)
    with ctx.unit_of_work() as conn:
        if store.get_source(conn, name):
            raise Conflict(f"a source named {name!r} already exists.", field="name")
        settings = store.SourceSettings(
            store.next_id(conn), name, target, None, url, relation, query, watermark, kind,
            store.parse_overlap(overlap, kind), mapping.as_dict(), options.timezone, features, ctx.clock(), ctx.actor)
        store.insert(conn, settings)
        record(conn, ctx.actor, "source_add", target=name, after=settings.as_dict())
    return settings


def _check_dataset_free(ctx: Context, target: str) -> None:
    taken = next((s for s in store.list_sources(ctx.conn) if s.dataset == target), None)
    if taken:
        raise Conflict(f"source {taken.name!r} already fills dataset {target!r}.", field="dataset",
                       hint="Give this source its own dataset (--dataset NAME).")
    dataset_store.check_new_name(ctx.conn, target)


def remove_source(ctx: Context, name: str) -> store.SourceSettings:
    """Forget a source (its dataset and rows stay)."""
    _require_admin(ctx, "remove database sources")
    with ctx.unit_of_work() as conn:
        found = _get(conn, name)
        store.delete(conn, found.id)
        record(conn, ctx.actor, "source_remove", dataset_id=found.dataset_id, target=found.name, before=found.as_dict())
    return found


def list_sources(ctx: Context) -> list[store.SourceSettings]:
    return store.list_sources(ctx.conn)


def _get(conn, name: str) -> store.SourceSettings:
    found = store.get_source(conn, (name or "").strip())
    if found is None:
        names = [s.name for s in store.list_sources(conn)]
        raise NotFound(f"no database source named {name!r}.",
                       hint=f"Sources: {', '.join(names)}." if names else "Add one with centinela source add.")
    return found


def sync(ctx: Context, name: str) -> SyncReport:
    """Load the source's new and changed rows into its dataset; all or nothing (see the module)."""
    _require_admin(ctx, "sync database sources")
    started = time.perf_counter()
    settings = _get(ctx.conn, name)
    target = None
    if settings.dataset_id is not None:
        try:
            target = ctx.dataset(settings.dataset_id)
        except NotFound:
            raise NotFound(f"the dataset of source {settings.name!r} ({settings.dataset!r}) is in the trash.",
                           hint="Restore it on the Data page, or remove the source.") from None
    else:
        _check_dataset_free_for(ctx, settings)
    since = store.since_value(settings)
    ctx.progress(0.05, f"Reading rows of {settings.name} from PostgreSQL"
                 + (f" with {settings.watermark} >= {since}" if since is not None else " (all of them: the first sync)"))
    table = store.fetch(settings.url, settings.relation, settings.query, settings.watermark, since)
    read_seconds = time.perf_counter() - started
    without = _without_watermark(settings) if settings.last_watermark is None else 0
    watermark = store.max_watermark(table, settings)
    ctx.progress(0.3, f"Read {table.num_rows:,} rows in {read_seconds:.1f} s; checking them as an import")
    with tempfile.TemporaryDirectory(prefix="centinela-sync-") as folder:
        path = Path(folder) / f"{settings.name}.parquet"
        if table.num_rows:
            store.write_parquet(table, path)
        for attempt in range(SYNC_ATTEMPTS):
            try:
                with _conflicts_refused(settings, last=attempt == SYNC_ATTEMPTS - 1), live.held(), \
                        ctx.unit_of_work() as conn:
                    now = _get(conn, settings.name)
                    if (now.last_watermark, now.syncs) != (settings.last_watermark, settings.syncs):
                        raise Conflict(f"source {settings.name!r} was synced by someone else meanwhile.",
                                       hint="Sync again: it starts from the new watermark.")
                    try:
                        report = _store(ctx, conn, settings, target, table, path, since, watermark, without,
                                        started, read_seconds)
                    except UserError as exc:
                        raise store.rephrase(exc, settings, table) from None
                break
            except _Retry:
                ctx.progress(0.3, f"Another writer changed dataset {settings.dataset} meanwhile; checking the rows "
                             f"again (attempt {attempt + 2} of {SYNC_ATTEMPTS})")
                time.sleep(0.2 * 2**attempt)
    ctx.progress(1.0, f"Synced {settings.name}: {report.rows_read:,} read, {report.new:,} new, {report.updated:,} "
                 f"updated, {report.skipped:,} unchanged; watermark {report.watermark_after}")
    return report


SYNC_ATTEMPTS = 3


class _Retry(Exception):
    """The unit of work lost to a concurrent writer; it is run again."""


def _is_conflict(exc: duckdb.TransactionException) -> bool:
    text = str(exc).lower()
    return "conflict" in text or "another transaction" in text


@contextmanager
def _conflicts_refused(settings: store.SourceSettings, last: bool) -> Iterator[None]:
    """DuckDB's refusal of a write another transaction made first ("Conflict on update!", or a
    table another transaction changed): retried (`_Retry`), then, on the last attempt, a Conflict
    saying to sync again. The unit of work has rolled back either way."""
    try:
        yield
    except duckdb.TransactionException as exc:
        if not _is_conflict(exc):
            raise
        if not last:
            raise _Retry() from exc
        raise Conflict(f"dataset {settings.dataset!r} was changed by another writer while source {settings.name!r} "
                       f"was syncing ({SYNC_ATTEMPTS} attempts); nothing was stored.",
                       hint="Sync again: it starts from the same watermark.") from None


def _check_dataset_free_for(ctx: Context, settings: store.SourceSettings) -> None:
    try:
        dataset_store.check_new_name(ctx.conn, settings.dataset)
    except Conflict:
        raise Conflict(f"a dataset named {settings.dataset!r} exists already; source {settings.name!r} creates its "
                       "own dataset on its first sync.", field="dataset",
                       hint="Remove the source and add it again with another --dataset.") from None


def _without_watermark(settings: store.SourceSettings) -> int:
    """How many source rows have no watermark (a first sync says so: they are never read)."""
    import adbc_driver_manager

    try:
        with store._connect(settings.url) as connection, connection.cursor() as cursor:
            cursor.execute(store.without_watermark_sql(settings.relation, settings.query, settings.watermark))
            count = cursor.fetchone()[0]
            connection.rollback()
    except adbc_driver_manager.Error as exc:
        raise store._driver_error(exc, settings.url, "query") from None
    return int(count)


def _options(settings: store.SourceSettings) -> ImportOptions:
    # A database writes numbers with '.' (numeric arrives as float64 anyway) and typed timestamps.
    return ImportOptions(timezone=settings.timezone, decimal=".")


def _store(ctx: Context, conn, settings: store.SourceSettings, target, table, path: Path, since, watermark: str | None,
           without: int, started: float, read_seconds: float) -> SyncReport:
    created, merged, version, imported = False, store.Merged(), None, None
    label = f"source {settings.name}"
    if table.num_rows and target is None:  # the first sync: the dataset is created as a file import creates it
        imported = import_file(conn, path, settings.dataset, settings.column_mapping, display_name=label,
                               options=_options(settings), progress=lambda f, m: ctx.progress(0.3 + f * 0.4, m))
        target, created = imported.dataset, True
        merged.new = imported.rows_stored
    elif table.num_rows:
        staging_name = f"sync-{settings.id}-{time.time_ns()}"[:64]
        imported = import_file(conn, path, staging_name, settings.column_mapping, display_name=label,
                               options=_options(settings), progress=lambda f, m: ctx.progress(0.3 + f * 0.4, m))
        staged = imported.dataset
        ctx.progress(0.7, f"Merging {staged.row_count:,} checked rows into {target.name} by transaction id")
        merged = store.merge(conn, staged, target)
        store.drop_staging(conn, staged)
    if created:
        target = ctx.dataset(target.id)
    elif target is not None and (merged.new or merged.updated):
        # The merged table's count and period; the registry row is written last (below).
        rows, low, high = store.table_counts(conn, target)
        target = replace(target, row_count=rows, min_ts=low, max_ts=high)
    if target is not None and (merged.new or merged.updated):
        previous = feature_store.load_feature_set(conn, target)
        if previous is not None or (created and settings.features):
            delay = int((previous.params if previous else {}).get("label_delay_days",
                                                                  feature_store.DEFAULT_LABEL_DELAY_DAYS))
            ctx.progress(0.8, f"Computing features over {target.row_count:,} rows")
            version = feature_store.compute_features(conn, target, label_delay_days=delay).version
    elif target is not None:
        fs = feature_store.load_feature_set(conn, target)
        version = fs.version if fs else None
    report = SyncReport(settings.name, settings.dataset, table.num_rows, merged.new, merged.updated, merged.skipped,
                        settings.last_watermark, watermark, None if since is None else str(since), created, version,
                        time.perf_counter() - started, read_seconds, merged.updated_ids, merged.changed_columns, without,
                        store.source_problems(imported.problems, settings, table) if imported else [],
                        list(imported.notes) if imported else [], imported.skipped_rows if imported else 0)
    store.record_sync(conn, settings, target.id if target is not None else None, watermark, ctx.clock(),
                      report.as_dict())
    record(conn, ctx.actor, "source_sync", dataset_id=target.id if target is not None else None, target=settings.name,
           before={"watermark": settings.last_watermark, "rows": None if created or target is None else
                   target.row_count - merged.new},
           after={**report.as_dict(), "url": store.redact(settings.url), "rows": target.row_count if target else 0})
    if target is not None and not created and (merged.new or merged.updated):
        store.update_registry(conn, target)  # last: the row live scoring updates with every request
    return report


def source_settings(ctx: Context, name: str) -> store.SourceSettings:
    return _get(ctx.conn, name)

