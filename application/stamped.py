"""Reads kept between requests while nothing has changed: an API key, a dataset's id, the live
scoring state. Each request reads the stamp first (the audit trail's row count, 0.4 ms at
millions of rows); every action writes one audit row in its transaction and none is ever
deleted, so the count moves whenever anything was changed, by any thread or by the command line
through the server, and everything kept under the older count is dropped.

A value read after the stamp is at least as new as it, so keeping it under that stamp is safe: a
change committed in between moves the count, and the next request reads again. Live scoring,
whose own commit adds exactly one audit row, moves the stamp on with it (`advance`), so its
requests do not drop what they keep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

import duckdb

from data.audit import audit_rows

T = TypeVar("T")
MAX_VALUES = 10_000  # kept values; beyond, all are dropped (a flood of distinct keys must not grow memory)


@dataclass(frozen=True)
class Stamp:
    database: str | None  # the database file the reads are of; None: nothing is kept
    rows: int


_lock = threading.Lock()
_stamps: dict[str, int] = {}
_values: dict[tuple[str, Hashable], object] = {}
_advances: dict[str, int] = {}  # how often each database's stamp was moved on by `advance`


def _drop_database(database: str) -> None:
    for key in [k for k in _values if k[0] == database]:
        del _values[key]


def stamp(conn: duckdb.DuckDBPyConnection, database: str | None) -> Stamp:
    """The current stamp of `database` (read on `conn`); what was kept under another is dropped.
    With no database named (a connection of its own, a test) nothing is kept."""
    if database is None:
        return Stamp(None, audit_rows(conn))
    with _lock:
        advances = _advances.get(database, 0)
    now = Stamp(database, audit_rows(conn))
    with _lock:
        # An advance while the count was read: the count may hold another's row that the advance
        # took for its own, and would then match a stamp that is not what it says. Drop it all.
        if _stamps.get(database) != now.rows or _advances.get(database, 0) != advances:
            _drop_database(database)
            _stamps[database] = now.rows
    return now


def kept(at: Stamp, key: Hashable, read: Callable[[], T]) -> T:
    """The value kept for `key` under stamp `at`, read (and kept, if `at` is still current and
    the value is not None) when there is none."""
    if at.database is None:
        return read()
    with _lock:
        if _stamps.get(at.database) == at.rows and (at.database, key) in _values:
            return _values[(at.database, key)]  # type: ignore[return-value]
    value = read()
    with _lock:
        if _stamps.get(at.database) == at.rows and value is not None:
            if len(_values) >= MAX_VALUES:
                _values.clear()
            _values[(at.database, key)] = value
    return value


def drop(at: Stamp, key: Hashable) -> None:
    with _lock:
        _values.pop((at.database, key), None)


def advance(at: Stamp, rows: int = 1) -> Stamp:
    """This process just committed `rows` audit rows of its own after reading stamp `at`: keep
    what is kept, under the stamp the next request reads if nobody else wrote meanwhile. Returns
    the stamp its caller now holds."""
    moved = Stamp(at.database, at.rows + rows)
    if at.database is not None:
        with _lock:
            if _stamps.get(at.database) == at.rows:
                _stamps[at.database] = moved.rows
                _advances[at.database] = _advances.get(at.database, 0) + 1
    return moved


def clear() -> None:
    """Drop everything (a restore, a test)."""
    with _lock:
        _values.clear()
        _stamps.clear()
        _advances.clear()
