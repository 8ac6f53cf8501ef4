"""The demo dataset a fresh database starts with, so every page has something to show."""

from __future__ import annotations

import os

import duckdb

from data.datasets import Dataset
from data.db import ProgressFn, fetch_one, no_progress
from data.features import compute_features
from data.synthetic import SyntheticConfig, store_synthetic

DEMO_NAME = "demo"
DEMO_ROWS_ENV = "CENTINELA_DEMO_ROWS"
DEFAULT_DEMO_ROWS = 200_000


def demo_rows() -> int:
    """Rows in the demo dataset: $CENTINELA_DEMO_ROWS, else 200,000."""
    return int(os.environ.get(DEMO_ROWS_ENV) or DEFAULT_DEMO_ROWS)


def database_is_empty(conn: duckdb.DuckDBPyConnection) -> bool:
    """True when the database has never held a dataset (the trash counts as holding one)."""
    return fetch_one(conn, "SELECT count(*) FROM datasets")[0] == 0


def create_demo(conn: duckdb.DuckDBPyConnection, progress: ProgressFn = no_progress) -> Dataset:
    """Generate the demo dataset and its features."""
    rows = demo_rows()
    dataset = store_synthetic(conn, DEMO_NAME, SyntheticConfig(rows=rows), actor="demo",
                              progress=lambda f, m: progress(f * 0.8, m))
    compute_features(conn, dataset, progress=lambda f, m: progress(0.8 + f * 0.2, m))
    return dataset
