"""What the live-scoring tests share: a database holding a generated dataset's history (all but
its last days, imported from a file as a bank's export would be) with the default detector
fitted, the held-back days as a file to stream, and API keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.app import create_api
from application import datasets as app_datasets
from application import keys as app_keys
from application import runs as app_runs
from application.context import Context
from cli.replay import items, read_transactions
from data.db import thread_cursor
from data.synthetic import SyntheticConfig
from detectors.base import DEFAULT_DETECTOR

DATASET = "bank"


@dataclass(frozen=True)
class LiveSetup:
    dataset: str
    live_file: Path  # the held-back days, in time order, as `centinela export` writes them
    keys: dict[str, str]  # key name -> key


def prepare(conn, folder: Path, *, rows: int = 6_000, days: int = 40, live_days: int = 7, seed: int = 5,
            dataset: str = DATASET) -> LiveSetup:
    """Generate `rows` transactions, import all but the last `live_days` as `dataset`, fit the
    default detector on them (active), and create keys: 'scorer' (score, read), 'labeller'
    (label), 'all' (every scope), 'other' (score, for another dataset), 'revoked'."""
    ctx = Context(conn, "cli:test")
    full = app_datasets.generate(ctx, f"{dataset}-source", SyntheticConfig(rows=rows, seed=seed, days=days),
                                 features=False).dataset
    cut = pd.Timestamp(full.max_ts) - pd.Timedelta(days=live_days)
    history, live = folder / "history.parquet", folder / "live.parquet"
    for path, condition in ((history, "ts < ?"), (live, "ts >= ?")):
        conn.execute(f"COPY (SELECT * EXCLUDE (tx_row) FROM {full.table} WHERE {condition} ORDER BY tx_row) "
                     f"TO '{path}' (FORMAT parquet)", [cut])
    other = app_datasets.generate(ctx, "elsewhere", SyntheticConfig(rows=500, seed=1, days=10)).dataset
    target = app_datasets.import_dataset(ctx, history, dataset).dataset  # the newest: the pages' default
    app_runs.fit(ctx, target, [DEFAULT_DETECTOR])
    secrets = {
        "scorer": app_keys.create(ctx, "scorer", "score,read").secret,
        "labeller": app_keys.create(ctx, "labeller", "label", dataset).secret,
        "all": app_keys.create(ctx, "all", "score,label,read").secret,
        "other": app_keys.create(ctx, "other", "score", other.name).secret,
        "revoked": app_keys.create(ctx, "revoked", "score").secret,
    }
    app_keys.revoke(ctx, "revoked")
    return LiveSetup(dataset, live, secrets)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def live_client(folder: Path, **prepared: int) -> Iterator[tuple[TestClient, object, LiveSetup, list[dict]]]:
    """The API in process on a prepared database in `folder` (as the server's own connection):
    the client, that connection, the setup and the held-back rows as request items."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CENTINELA_DB", str(folder / "centinela.duckdb"))
        conn = thread_cursor()
        setup = prepare(conn, folder, **prepared)
        rows = items(read_transactions(str(setup.live_file)))
        with TestClient(create_api()) as client:
            yield client, conn, setup, rows
