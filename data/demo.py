"""The demo dataset a fresh database starts with, so every page has something to show
(`application.runs.create_demo` creates it)."""

from __future__ import annotations

import os

import duckdb

from data.db import fetch_one

DEMO_NAME = "demo"
DEMO_ROWS_ENV = "CENTINELA_DEMO_ROWS"
DEFAULT_DEMO_ROWS = 200_000


def demo_rows() -> int:
    """Rows in the demo dataset: $CENTINELA_DEMO_ROWS, else 200,000."""
    return int(os.environ.get(DEMO_ROWS_ENV) or DEFAULT_DEMO_ROWS)


def database_is_empty(conn: duckdb.DuckDBPyConnection) -> bool:
    """True when the database has never held a dataset (the trash counts as holding one)."""
    return fetch_one(conn, "SELECT count(*) FROM datasets")[0] == 0
