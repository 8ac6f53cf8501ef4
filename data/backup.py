"""Consistent copies of the database and its model files, and putting one back.

The database is copied with DuckDB's `COPY FROM DATABASE` into a new file attached beside it,
inside one transaction: the copy is the snapshot that transaction sees (every write committed
before it began, none after), taken while the app keeps writing. Each table's row count is read
in the same transaction; the copy is then reopened and its counts compared. Model files are
written before the run that names them commits and never change, so the files the snapshot's
runs name are copied and checked against their recorded SHA-256.

Storage and file work only: the backup and restore actions, with their audit rows, are in
`application.backups`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from data.db import fetch_one, quote_ident, sql_string
from data.errors import Conflict, InvalidInput

DATABASE_FILE, MODELS_FOLDER, MANIFEST = "centinela.duckdb", "models", "manifest.json"
BACKUP_DIR_ENV = "CENTINELA_BACKUP_DIR"
MODELS_ENV = "CENTINELA_MODELS"  # as detectors.runs reads it


@dataclass(frozen=True)
class Manifest:
    created_at: str
    schema_version: int
    source: str
    tables: dict[str, int]
    models: dict[str, str]  # file name -> SHA-256

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)

    @staticmethod
    def read(folder: Path) -> Manifest:
        data = json.loads((folder / MANIFEST).read_text())
        return Manifest(str(data["created_at"]), int(data["schema_version"]), str(data["source"]),
                        {str(k): int(v) for k, v in data["tables"].items()},
                        {str(k): str(v) for k, v in data["models"].items()})


def models_folder(db_path: Path) -> Path:
    """Where a database's model files live: $CENTINELA_MODELS, else `models/` beside the file."""
    return Path(os.environ[MODELS_ENV]).resolve() if os.environ.get(MODELS_ENV) else db_path.resolve().parent / MODELS_FOLDER


def backups_folder(db_path: Path) -> Path:
    """Where the app's Back up button writes: $CENTINELA_BACKUP_DIR, else `backups/` beside the database."""
    return Path(os.environ[BACKUP_DIR_ENV]) if os.environ.get(BACKUP_DIR_ENV) else db_path.resolve().parent / "backups"


def database_file(conn: duckdb.DuckDBPyConnection) -> Path:
    path = fetch_one(conn, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")[0]
    if not path:
        raise RuntimeError("the database is in memory: nothing to back up")
    return Path(path)


def table_counts(conn: duckdb.DuckDBPyConnection, catalog: str | None = None) -> dict[str, int]:
    """Every base table's row count (of the current database, or of an attached one)."""
    catalog = catalog or fetch_one(conn, "SELECT current_database()")[0]
    names = [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ? AND table_schema = 'main' "
        "AND table_type = 'BASE TABLE' ORDER BY 1", [catalog]).fetchall()]
    return {name: fetch_one(conn, f"SELECT count(*) FROM {quote_ident(catalog)}.main.{quote_ident(name)}")[0]
            for name in names}


def model_files(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The model files the database's runs name, with their recorded SHA-256."""
    return dict(conn.execute("SELECT artifact, artifact_sha256 FROM runs ORDER BY id").fetchall())


def attach_new(conn: duckdb.DuckDBPyConnection, path: Path) -> str:
    """Attach a new, empty database file under a fresh alias (for `copy_into`)."""
    if path.exists():
        raise FileExistsError(path)
    alias = f"backup_{secrets.token_hex(6)}"
    conn.execute(f"ATTACH {sql_string(str(path))} AS {quote_ident(alias)}")
    return alias


def copy_into(conn: duckdb.DuckDBPyConnection, alias: str) -> None:
    """Inside the caller's transaction: copy the current database (schema, data, sequences, views)."""
    current = fetch_one(conn, "SELECT current_database()")[0]
    conn.execute(f"COPY FROM DATABASE {quote_ident(current)} TO {quote_ident(alias)}")


def detach(conn: duckdb.DuckDBPyConnection, alias: str) -> None:
    conn.execute(f"DETACH {quote_ident(alias)}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_models(source: Path, target: Path, wanted: dict[str, str]) -> dict[str, str]:
    """Copy the named model files and check each copy's SHA-256; a missing or changed one is an error."""
    target.mkdir(parents=True, exist_ok=True)
    for name, expected in wanted.items():
        if Path(name).name != name:
            raise RuntimeError(f"model file name {name!r} is not a plain file name")
        shutil.copy2(source / name, target / name)
        if sha256(target / name) != expected:
            raise Conflict(f"model file {name} does not match the SHA-256 its run recorded")
    return dict(wanted)


def reopen_counts(path: Path) -> dict[str, int]:
    """Open a database file read-only (its own instance) and count its tables' rows."""
    copy = duckdb.connect(str(path), read_only=True)
    try:
        return table_counts(copy)
    finally:
        copy.close()


def verify(folder: Path) -> Manifest:
    """A backup folder's manifest, after checking the database copy's row counts and every model
    file's SHA-256 against it; InvalidInput naming the first difference."""
    if not (folder / MANIFEST).is_file() or not (folder / DATABASE_FILE).is_file():
        raise InvalidInput(f"{folder} is not a Centinela backup (no {MANIFEST} and {DATABASE_FILE})")
    manifest = Manifest.read(folder)
    counts = reopen_counts(folder / DATABASE_FILE)
    if counts != manifest.tables:
        wrong = sorted(t for t in set(counts) | set(manifest.tables) if counts.get(t) != manifest.tables.get(t))
        raise InvalidInput(f"{folder}: the database copy's rows differ from the manifest in {', '.join(wrong)}")
    for name, expected in manifest.models.items():
        path = folder / MODELS_FOLDER / name
        if not path.is_file() or sha256(path) != expected:
            raise InvalidInput(f"{folder}: model file {name} is missing or changed since the backup")
    return manifest


def replace_database(backup: Path, db_path: Path) -> Path:
    """Put a backup's database in place of `db_path` atomically (a rename over it); the file it
    replaces is kept as `<name>.before-restore`. The caller has made sure no process holds it."""
    db_path = db_path.resolve()
    partial = db_path.with_name(db_path.name + ".restore-partial")
    shutil.copy2(backup, partial)
    kept = db_path.with_name(db_path.name + ".before-restore")
    if db_path.exists():
        kept.unlink(missing_ok=True)
        try:
            os.link(db_path, kept)
        except OSError:
            shutil.copy2(db_path, kept)
    os.replace(partial, db_path)
    Path(str(db_path) + ".wal").unlink(missing_ok=True)  # a log of the file it replaced would not apply
    return kept


def replace_models(backup: Path, folder: Path) -> None:
    """Swap the model folder for a backup's: copied beside it, then renamed into place (the folder
    it replaces is kept as `<name>.before-restore`)."""
    folder = folder.resolve()
    partial = folder.with_name(folder.name + ".restore-partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(backup, partial) if backup.is_dir() else partial.mkdir(parents=True)
    kept = folder.with_name(folder.name + ".before-restore")
    shutil.rmtree(kept, ignore_errors=True)
    if folder.exists():
        folder.rename(kept)
    partial.rename(folder)

