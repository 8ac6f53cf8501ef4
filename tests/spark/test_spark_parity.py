"""Spark in local mode (`local[2]`, Debian's Java 17) against the workbench, on 200,000 generated
rows exported as Parquet: every feature Spark computes equals DuckDB's to 1e-9 with NULLs in the
same places (through `centinela spark features`, as a user runs it), and every score Spark gives
equals the workbench's own, for the default detector and for a learned version. The features are
computed by `spark-submit scaleout/submit.py spark features ...`, the README's cluster command
in local mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from application import datasets as app_datasets
from application import labels as app_labels
from application import models as app_models
from application import runs as app_runs
from application import scaleout
from data.datasets import get_dataset
from data.features import load_feature_set
from data.synthetic import SyntheticConfig
from tests.conftest import ROOT, as_user

pytestmark = [pytest.mark.slow, pytest.mark.spark,
              pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java (make test installs it)")]
ROWS = 200_000


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """A generated dataset with features, the default detector and a few analyst labels (which the
    label-based features read), and its rows as one Parquet file."""
    from data.db import connect

    folder = tmp_path_factory.mktemp("spark")
    db = folder / "centinela.duckdb"
    conn = connect(db)
    ctx = as_user(conn, "cli:test")
    dataset = app_datasets.generate(ctx, "lake", SyntheticConfig(rows=ROWS, seed=11, days=60, fraud_rate=0.01)).dataset
    ids = conn.execute(f"SELECT transaction_id FROM {dataset.table} WHERE NOT is_fraud ORDER BY tx_row LIMIT 40").df()
    app_labels.label(ctx, "lake", list(ids["transaction_id"][:20]), "fraud")  # analysts disagree with the truth
    app_labels.label(ctx, "lake", list(ids["transaction_id"][20:]), "legitimate")
    app_datasets.compute_features(ctx, "lake")
    app_runs.fit(ctx, "lake", ["iforest"])
    parquet = folder / "lake.parquet"
    app_datasets.export(ctx, "lake", parquet)
    yield db, conn, parquet, folder
    conn.close()


def _by_id(conn, dataset, sql: str, params=()) -> pd.DataFrame:
    return conn.execute(sql, list(params)).df().set_index("transaction_id").sort_index()


def _assert_close(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert (np.isnan(a) == np.isnan(b)).all(), f"{what}: NULLs differ in {int((np.isnan(a) != np.isnan(b)).sum())} rows"
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True, err_msg=what)


def test_spark_features_equal_duckdb_features(lake):
    db, conn, parquet, folder = lake
    dataset = get_dataset(conn, "lake")
    feature_set = load_feature_set(conn, dataset)
    assert "merch_fraud_risk_7d" in feature_set.computed and feature_set.labels_snapshot  # labels are read
    out = folder / "features"
    conn.execute("CHECKPOINT")
    conn.close()  # the command opens the database itself, as a user's would
    try:
        result = _spark_submit(db, "spark", "features", "--input", str(parquet), "--dataset", "lake", "--output", str(out))
    finally:
        from data.db import connect

        lake_conn = connect(db)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"features of 'lake' written to {out}" in result.stdout
    spark_rows = pd.read_parquet(out).set_index("transaction_id").sort_index()
    batch = _by_id(lake_conn, dataset, f"SELECT t.transaction_id, f.* EXCLUDE (tx_row) FROM {feature_set.table} f "
                                       f"JOIN {dataset.table} t USING (tx_row)")
    lake_conn.close()
    assert len(spark_rows) == len(batch) == ROWS and (spark_rows.index == batch.index).all()
    for name in feature_set.computed:
        _assert_close(spark_rows[name].to_numpy(float), batch[name].to_numpy(float), name)


def _spark_submit(db, *args: str) -> subprocess.CompletedProcess:
    """`spark-submit scaleout/submit.py ARGS` in local mode, the driver on loopback, as a user runs it."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "CENTINELA_DB": str(db), "PYTHONPATH": str(ROOT), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    return subprocess.run([str(spark_submit), "--master", "local[2]", "--conf", "spark.driver.bindAddress=127.0.0.1",
                           "--conf", "spark.driver.host=127.0.0.1", str(ROOT / "scaleout" / "submit.py"), *args],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _reconnected(lake):
    from data.db import connect

    db, _, parquet, folder = lake
    return connect(db), parquet, folder


def _spark_scores(path: str) -> pd.DataFrame:
    return pd.read_parquet(path).set_index("transaction_id").sort_index()


def test_spark_scores_equal_the_workbench_scores_for_the_detector_and_a_learned_version(lake, spark):
    conn, parquet, folder = _reconnected(lake)
    ctx = as_user(conn, "cli:test")
    dataset = get_dataset(conn, "lake")
    detector = app_runs.active(ctx, dataset)
    done = scaleout.spark_score(ctx, "lake", [str(parquet)], folder / "scored-detector", spark)
    decisions = _spark_scores(done.decisions)
    stored = _by_id(conn, dataset, f"SELECT t.transaction_id, s.score FROM scores s JOIN {dataset.table} t USING (tx_row) "
                                   "WHERE s.run_id = ?", [detector.run.id])
    assert len(decisions) == ROWS and (decisions.index == stored.index).all()
    _assert_close(decisions["score"].to_numpy(), stored["score"].to_numpy(), "detector score")
    assert (decisions["alert"] == (stored["score"] >= detector.threshold)).all()
    assert done.alerts == int(decisions["alert"].sum()) and done.run_id == detector.run.id
    feature_version = load_feature_set(conn, dataset).version
    assert set(decisions["run_id"]) == {detector.run.id} and set(decisions["feature_set_version"]) == {feature_version}
    days = sorted(p.name for p in (folder / "scored-detector" / "decisions").glob("day=*"))
    assert len(days) == decisions["ts"].dt.date.nunique() and days[0] == f"day={decisions['ts'].min():%Y-%m-%d}"
    alerts = _spark_scores(done.alerts_path)
    assert set(alerts.index) == set(decisions.index[decisions["alert"]])
    assert {"amount", "merch_fraud_risk_7d", "channel", "score"} <= set(alerts.columns)

    version = app_models.retrain(ctx, "lake", params={"n_estimators": 25})
    app_models.promote(ctx, "lake", version.id)
    app_runs.rescore(ctx, "lake", run_id=version.id)  # the workbench's own score of every row
    learned = scaleout.spark_score(ctx, "lake", [str(parquet)], folder / "scored-learned", spark)
    assert learned.run_id == version.id
    got = _spark_scores(learned.decisions)
    stored = _by_id(conn, dataset, f"SELECT t.transaction_id, s.score FROM scores s JOIN {dataset.table} t USING (tx_row) "
                                   "WHERE s.run_id = ?", [version.id])
    _assert_close(got["score"].to_numpy(), stored["score"].to_numpy(), "learned score")
    trail = conn.execute("SELECT count(*) FROM audit WHERE action = 'spark_score'").fetchone()[0]
    assert trail == 2
    conn.close()
