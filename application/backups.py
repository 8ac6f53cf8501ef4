"""Backups: a consistent copy of the database and the model files, taken while the app runs (the
Users & audit page's button runs it in the server, which holds the file; `centinela backup` runs
it when no server does), verified by reopening the copy; and `restore`, which refuses while a
process holds the database and replaces the file in one rename. Both are audited (`backup` in the
database copied, `backup_restore` in the restored one).

A backup is a folder: `centinela.duckdb`, `models/` and `manifest.json` (when, schema version,
each table's row count, each model file's SHA-256). It is written beside its final name and
renamed into place once verified, so a folder with that name is always a whole backup.
"""

from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from application.context import Context
from data import backup as store
from data.audit import record
from data.db import SCHEMA_VERSION, DatabaseInUseError, connect, database_path, schema_version
from data.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class BackupDone:
    folder: Path
    manifest: store.Manifest
    bytes: int
    seconds: float

    @property
    def rows(self) -> int:
        return sum(self.manifest.tables.values())


@dataclass(frozen=True)
class RestoreDone:
    database: Path
    manifest: store.Manifest
    kept: Path


def _check_target(folder: Path) -> Path:
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise Conflict(f"{folder} already exists and is not an empty folder.", field="folder",
                       hint="Name a new folder for each backup (for example with the date in it).")
    return folder


def default_folder(ctx: Context) -> Path:
    """A new folder for the app's button: `backups/centinela-YYYYmmdd-HHMMSS` beside the database."""
    return store.backups_folder(store.database_file(ctx.conn)) / f"centinela-{ctx.clock():%Y%m%d-%H%M%S}"


def backup(ctx: Context, folder: Path) -> BackupDone:
    """Copy the database (one snapshot, while writes go on) and the model files its runs name into
    a new folder; reopen the copy and compare every table's rows; audited."""
    started = time.perf_counter()
    folder = _check_target(folder)
    source = store.database_file(ctx.conn)
    partial = folder.with_name(f".{folder.name}.partial-{secrets.token_hex(4)}")
    partial.mkdir(parents=True)
    try:
        alias = store.attach_new(ctx.conn, partial / store.DATABASE_FILE)
        try:
            # One transaction: what it counts is what it copies. Only the copy is written.
            with ctx.unit_of_work() as conn:
                counts = store.table_counts(conn)
                models = store.model_files(conn)
                store.copy_into(conn, alias)
        finally:
            store.detach(ctx.conn, alias)
        store.copy_models(store.models_folder(source), partial / store.MODELS_FOLDER, models)
        copied = store.reopen_counts(partial / store.DATABASE_FILE)
        if copied != counts:
            raise Conflict("the copy's row counts differ from the database's; the backup was not kept.")
        manifest = store.Manifest(ctx.clock().isoformat(timespec="seconds"), schema_version(ctx.conn), str(source),
                                  counts, models)
        (partial / store.MANIFEST).write_text(manifest.to_json())
        if folder.exists():
            folder.rmdir()  # empty (checked above)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    with ctx.unit_of_work() as conn:
        record(conn, ctx.actor, "backup", target=str(folder),
               after={"tables": len(counts), "rows": sum(counts.values()), "models": len(models), "bytes": size})
    return BackupDone(folder, manifest, size, time.perf_counter() - started)


def list_backups(folder: Path) -> list[tuple[Path, store.Manifest]]:
    """The whole backups in a folder (those with a manifest), newest first."""
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir(), reverse=True):
        if child.is_dir() and not child.name.startswith(".") and (child / store.MANIFEST).is_file():
            try:
                found.append((child, store.Manifest.read(child)))
            except (OSError, ValueError, KeyError):
                continue  # not one of ours
    return found


def restore(folder: Path, db_path: Path | None = None, actor: str = "cli") -> RestoreDone:
    """Put a verified backup in place of the database and its model folder. Refused while any
    process (the app) holds the database; the replaced file is kept as `<name>.before-restore`."""
    folder = Path(folder).expanduser()
    manifest = store.verify(folder)
    if manifest.schema_version > SCHEMA_VERSION:
        raise InvalidInput(f"the backup's schema version {manifest.schema_version} is newer than this Centinela "
                           f"({SCHEMA_VERSION}); upgrade first.")
    target = Path(db_path or database_path())
    if target.exists():
        try:
            current = connect(target)  # the same lock the app holds: refused while it runs
        except DatabaseInUseError as exc:
            raise DatabaseInUseError(f"{exc} Restore replaces the file, so it needs the app stopped.") from exc
        current.execute("CHECKPOINT")
        current.close()
    kept = store.replace_database(folder / store.DATABASE_FILE, target)
    store.replace_models(folder / store.MODELS_FOLDER, store.models_folder(target))
    conn = connect(target)  # migrates an older backup's schema
    try:
        ctx = Context(conn, actor)
        with ctx.unit_of_work() as work:
            record(work, actor, "backup_restore", target=str(folder),
                   after={"backup_taken": manifest.created_at, "rows": sum(manifest.tables.values()),
                          "models": len(manifest.models), "previous_kept_as": str(kept),
                          "restored_at": datetime.now().isoformat(timespec="seconds")})
    finally:
        conn.close()
    return RestoreDone(target, manifest, kept)
