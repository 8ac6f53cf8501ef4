"""Who is acting, on which database: what every action takes first, and its unit of work."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import duckdb

from data.datasets import Dataset, get_dataset
from data.db import ProgressFn, no_progress

T = TypeVar("T")
CONFLICT_RETRIES = 6


@dataclass
class Context:
    """The database connection (this thread's cursor), the actor the audit trail records, the
    clock, and where long work reports progress."""

    conn: duckdb.DuckDBPyConnection
    actor: str
    progress: ProgressFn = no_progress
    clock: Callable[[], datetime] = datetime.now
    # The database file, where reads may be kept between requests (application.stamped); None
    # for a connection of its own.
    database: str | None = None
    commits: int = field(default=0, init=False)  # units of work committed: one per action

    def with_progress(self, progress: ProgressFn) -> Context:
        """The same context reporting long work to `progress` (a page's status box, CLI lines)."""
        return Context(self.conn, self.actor, progress, self.clock, self.database)

    @contextmanager
    def unit_of_work(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction: commit when the block ends, roll back everything if it raises."""
        self.conn.execute("BEGIN TRANSACTION")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        self.commits += 1

    def dataset(self, ref: str | int | Dataset) -> Dataset:
        """A live dataset by name or id (NotFound naming the available ones)."""
        return get_dataset(self.conn, ref.id if isinstance(ref, Dataset) else ref)


def retry_on_conflict(action: Callable[..., T]) -> Callable[..., T]:
    """Run an action again, after a short pause, when DuckDB refuses its transaction because a
    concurrent one wrote the same rows (analysts labelling at once). The action re-validates
    from scratch each time, so a retry sees the other's write."""

    @functools.wraps(action)
    def run(*args, **kwargs) -> T:
        for attempt in range(CONFLICT_RETRIES):
            try:
                return action(*args, **kwargs)
            except duckdb.TransactionException as exc:
                if "conflict" not in str(exc).lower() or attempt == CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.02 * 2**attempt)
        raise AssertionError("unreachable")

    return run
