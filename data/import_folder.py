"""The import folder: the only place the app reads server files from (`CENTINELA_IMPORT_DIR`,
default `imports/` beside the database).

The Data page lists the folder's importable files to pick from; a name is resolved (symlinks and
`..` followed) and refused unless the file it reaches lies inside the folder, so a link or a
relative path cannot read anything else the server process can read. The command line reads any
path: whoever runs it owns the shell already.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from data.db import database_path
from data.errors import InvalidInput, NotFound

IMPORT_DIR_ENV = "CENTINELA_IMPORT_DIR"
SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".xlsx")
MAX_LISTED = 1_000


@dataclass(frozen=True)
class ServerFile:
    name: str  # relative to the import folder, with '/' between folders
    size_bytes: int
    modified: datetime


def import_dir() -> Path:
    """The import folder: $CENTINELA_IMPORT_DIR, else `imports/` beside the database file."""
    configured = os.environ.get(IMPORT_DIR_ENV)
    return (Path(configured).expanduser() if configured else database_path().resolve().parent / "imports").resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def list_files(folder: Path | None = None) -> list[ServerFile]:
    """The importable files in the folder and its subfolders (not hidden ones), by name; a link
    that leads out of the folder is not listed."""
    folder = (folder or import_dir()).resolve()
    found: list[ServerFile] = []
    if not folder.is_dir():
        return found
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _inside((Path(root) / d).resolve(), folder))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            real = path.resolve()
            if not _inside(real, folder) or not real.is_file():
                continue
            stat = real.stat()
            found.append(ServerFile(path.relative_to(folder).as_posix(), stat.st_size, datetime.fromtimestamp(stat.st_mtime)))
            if len(found) >= MAX_LISTED:
                return found
    return found


def resolve(name: str, folder: Path | None = None) -> Path:
    """The file `name` names inside the import folder, with symlinks and `..` resolved; refused
    (InvalidInput) when that is outside the folder, NotFound when there is no such file."""
    folder = (folder or import_dir()).resolve()
    if not name or "\x00" in name:
        raise InvalidInput("choose a file from the import folder.", field="path")
    real = (folder / name).resolve()
    if not _inside(real, folder) or real == folder:
        raise InvalidInput(f"{name[:200]!r} is outside the import folder {folder}; only files in it can be imported "
                           "from the server.", field="path",
                           hint=f"Copy the file into {folder} (set {IMPORT_DIR_ENV} to use another folder), or upload it.")
    if not real.is_file():
        raise NotFound(f"there is no file {name[:200]!r} in the import folder {folder}.", field="path")
    if real.suffix.lower() not in SUFFIXES:
        raise InvalidInput(f"{name[:200]!r} is not a file the import reads ({', '.join(SUFFIXES)}).", field="path")
    return real


def list_spark_outputs(folder: Path | None = None) -> list[str]:
    """Folders of the import folder that hold a `centinela spark score` output (an `alerts/`
    folder), by name relative to it; not hidden ones, none reached through a link out of it, and
    without walking into the outputs' own day folders."""
    folder = (folder or import_dir()).resolve()
    found: list[str] = []
    if not folder.is_dir():
        return found
    for root, dirs, _ in os.walk(folder):
        here = Path(root)
        if "alerts" in dirs and _inside((here / "alerts").resolve(), folder):
            found.append(here.relative_to(folder).as_posix() or ".")
            dirs[:] = []  # an output's alerts/ and decisions/ hold only Spark's day folders
            if len(found) >= MAX_LISTED:
                break
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _inside((here / d).resolve(), folder))
    return sorted(found)


def resolve_spark_output(name: str, folder: Path | None = None) -> Path:
    """The `spark score` output folder `name` inside the import folder (symlinks and `..`
    resolved), refused outside it, NotFound when it holds no alerts."""
    folder = (folder or import_dir()).resolve()
    if not name or "\x00" in name:
        raise InvalidInput("choose a folder from the import folder.", field="path")
    real = (folder / name).resolve()
    if not _inside(real, folder) or not _inside((real / "alerts").resolve(), folder):
        raise InvalidInput(f"{name[:200]!r} is outside the import folder {folder}.", field="path",
                           hint=f"Write the Spark output into {folder} (set {IMPORT_DIR_ENV} to use another folder).")
    if not (real / "alerts").is_dir():
        raise NotFound(f"there is no `spark score` output (an alerts/ folder) at {name[:200]!r} in {folder}.",
                       field="path")
    return real
