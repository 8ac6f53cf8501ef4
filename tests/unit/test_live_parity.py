"""Online features equal batch features: the last 7 days of a generated dataset streamed through
the API (in batches and one by one) get exactly the features and scores that the batch
computation over the whole dataset then gives them, for a detector run and for a promoted
version learned from labels."""

from __future__ import annotations

import numpy as np
import pytest

from application import datasets as app_datasets
from application import models as app_models
from application import runs as app_runs
from application.context import Context
from data.datasets import get_dataset
from data.features import load_feature_set
from tests.live import DATASET, bearer, live_client

URL = f"/v1/datasets/{DATASET}/transactions"


def _features(conn, dataset):
    feature_set = load_feature_set(conn, dataset)
    return conn.execute(f"SELECT * FROM {feature_set.table} ORDER BY tx_row").df()


def _scores(conn, run_id):
    return conn.execute("SELECT tx_row, score FROM scores WHERE run_id = ? ORDER BY tx_row", [run_id]).df()


def _assert_equal(online, batch):
    assert list(online.columns) == list(batch.columns) and len(online) == len(batch)
    a, b = online.to_numpy(dtype=float), batch.to_numpy(dtype=float)
    assert (np.isnan(a) == np.isnan(b)).all()
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True)


def _stream(client, key, rows):
    singles, rest = rows[:20], rows[20:]
    for row in singles:  # one transaction per request, as a card terminal sends them
        assert client.post(URL, json={"transactions": [row]}, headers=bearer(key)).status_code == 200
    for start in range(0, len(rest), 250):
        response = client.post(URL, json={"transactions": rest[start:start + 250]}, headers=bearer(key))
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    with live_client(tmp_path_factory.mktemp("live-parity"), rows=8_000, days=40, live_days=7) as live:
        yield live


def test_streamed_transactions_get_the_batch_features_and_scores(streamed):
    client, conn, setup, rows = streamed
    ctx = Context(conn, "cli:test")
    dataset = get_dataset(conn, DATASET)
    history = dataset.row_count
    first_half = rows[: len(rows) // 2]
    _stream(client, setup.keys["scorer"], first_half)
    dataset = get_dataset(conn, DATASET)
    assert dataset.row_count == history + len(first_half)
    run = app_runs.active(ctx, dataset).run
    online, live_scores = _features(conn, dataset), _scores(conn, run.id)
    app_datasets.compute_features(ctx, dataset)  # the batch computation over the whole table
    _assert_equal(online, _features(conn, dataset))
    app_runs.rescore(ctx, dataset)
    np.testing.assert_allclose(live_scores["score"], _scores(conn, run.id)["score"], rtol=0, atol=1e-9)
    decided = conn.execute("SELECT d.score, s.score FROM decisions d JOIN scores s ON s.run_id = d.run_id "
                           "AND s.tx_row = d.tx_row").fetchall()
    assert len(decided) == len(first_half)
    assert all(abs(a - b) <= 1e-9 for a, b in decided)


def test_a_promoted_learned_version_scores_live_with_the_same_parity(streamed):
    client, conn, setup, rows = streamed
    ctx = Context(conn, "cli:test")
    dataset = get_dataset(conn, DATASET)
    version = app_models.retrain(ctx, dataset, params={"n_estimators": 25})  # small: the path is under test
    app_models.promote(ctx, dataset, version.id)
    second_half = rows[len(rows) // 2:]
    _stream(client, setup.keys["scorer"], second_half)
    kinds = conn.execute("SELECT DISTINCT json_extract_string(model, '$.kind') FROM decisions WHERE run_id = ?",
                         [version.id]).fetchall()
    assert kinds == [("supervised",)]
    online, base, learned = _features(conn, dataset), _scores(conn, version.base_run_id), _scores(conn, version.id)
    app_datasets.compute_features(ctx, dataset)
    _assert_equal(online, _features(conn, dataset))
    app_runs.rescore(ctx, dataset, run_id=version.base_run_id)
    np.testing.assert_allclose(base["score"], _scores(conn, version.base_run_id)["score"], rtol=0, atol=1e-9)
    app_runs.rescore(ctx, dataset, run_id=version.id)
    # The streamed rows: the version's stored scores of older rows come from its training.
    streamed_rows = conn.execute("SELECT tx_row FROM decisions WHERE run_id = ? ORDER BY tx_row", [version.id]).df()
    assert len(streamed_rows) == len(second_half)
    rescored = _scores(conn, version.id).set_index("tx_row").loc[streamed_rows["tx_row"], "score"]
    live = learned.set_index("tx_row").loc[streamed_rows["tx_row"], "score"]
    np.testing.assert_allclose(live.to_numpy(), rescored.to_numpy(), rtol=0, atol=1e-9)
