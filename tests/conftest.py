"""Shared fixtures: a fresh DuckDB file per test, small generated datasets, a content digest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from application import datasets as app_datasets
from application.context import Context
from data.db import connect, quote_ident
from data.synthetic import SyntheticConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new database file, also set as $CENTINELA_DB for code that reads it."""
    path = tmp_path / "centinela.duckdb"
    monkeypatch.setenv("CENTINELA_DB", str(path))
    return path


@pytest.fixture
def conn(db_path: Path):
    connection = connect(db_path)
    yield connection
    connection.close()


def as_user(conn: duckdb.DuckDBPyConnection, actor: str = "test") -> Context:
    """The application layer's context for `actor` on `conn`: what a test acts through."""
    return Context(conn, actor)


@pytest.fixture
def small_dataset(conn):
    """5,000 generated transactions with a higher fraud rate so every scenario appears."""
    return app_datasets.generate(as_user(conn), "small", SyntheticConfig(rows=5_000, seed=7, fraud_rate=0.02, days=30), features=False).dataset


def digest(conn: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """The database's content: every table's columns, row count and an order-free hash of its rows."""
    tables = [r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1"
    ).fetchall()]
    out = {}
    for table in tables:
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
        count, hashed = conn.execute(f"SELECT count(*), sum(hash(t)) FROM {quote_ident(table)} t").fetchall()[0]
        out[table] = (tuple(columns), count, hashed)
    return out


def run_cli(*args: str, db: Path, check: bool = False, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run the installed `centinela` command (as a user would) against database `db`."""
    env = {**os.environ, "CENTINELA_DB": str(db), "PYTHONPATH": str(ROOT)}  # this checkout's code
    exe = Path(sys.executable).parent / "centinela"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]
    result = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
                            input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"centinela {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


from tests.apptest import server_like_navigation  # noqa: E402,F401  (fixture for the page tests)
