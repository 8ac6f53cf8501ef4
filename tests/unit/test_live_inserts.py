"""Live inserts store the same values whichever way they go: a few rows as one VALUES statement,
more as an Arrow table DuckDB scans (data.live.insert_columns); NaN, NaT, None and pd.NA are NULL."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pytest

from data.live import FEW_ROWS, insert_columns

TYPES = {"tx_row": "BIGINT", "amount": "DOUBLE", "customer": "VARCHAR", "ts": "TIMESTAMP", "alert": "BOOLEAN",
         "model": "JSON", "run_id": "INTEGER"}


def _columns(n: int, seed: int) -> dict[str, tuple[str, object]]:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(size=n).round(2)
    amount[::3] = np.nan
    customer = pd.Series([f"C{i}" for i in range(n)], dtype=object)
    customer[1::4] = None
    customer[2::5] = pd.NA
    ts = pd.Series(pd.to_datetime("2026-11-30 12:00:00") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"))
    ts[::7] = pd.NaT
    return {"tx_row": ("BIGINT", np.arange(n, dtype=np.int64) + 10 * seed),
            "amount": ("DOUBLE", amount),
            "customer": ("VARCHAR", customer),
            "ts": ("TIMESTAMP", ts),
            "alert": ("BOOLEAN", [bool(i % 2) for i in range(n)]),
            "model": ("JSON", ['{"run": 1}'] * n),
            "run_id": ("INTEGER", [7] * n)}


def _expected(columns: dict[str, tuple[str, object]]) -> list[tuple]:
    def plain(v):
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, pd.Timestamp):
            return v.to_pydatetime()
        return v.item() if isinstance(v, np.generic) else v

    values = [list(v) for _, v in columns.values()]
    return [tuple(plain(v) for v in row) for row in zip(*values, strict=True)]


@pytest.mark.parametrize("rows", [1, FEW_ROWS, FEW_ROWS + 1, 500])
def test_both_insert_paths_store_the_values_with_nulls(rows):
    conn = duckdb.connect()
    conn.execute("CREATE TABLE t (" + ", ".join(f"{n} {t}" for n, t in TYPES.items()) + ")")
    columns = _columns(rows, seed=rows)
    insert_columns(conn, "t", columns)
    stored = conn.execute("SELECT tx_row, amount, customer, ts, alert, CAST(model AS VARCHAR), run_id FROM t "
                          "ORDER BY tx_row").fetchall()
    assert stored == _expected(columns)
    assert isinstance(stored[-1][3], datetime | None)
    if rows > 1:
        assert any(r[1] is None for r in stored) and any(r[2] is None for r in stored)
