"""`spark sample`: a time-respecting sample of a lake (whole customers), every labelled fraud kept
when stratified, weights recorded, imported as a dataset the workbench trains on as usual."""

from __future__ import annotations

import shutil

import pytest

from application import datasets as app_datasets
from application import models as app_models
from application import runs as app_runs
from application import scaleout
from data.datasets import get_dataset
from data.db import connect, sql_string
from data.errors import Conflict, InvalidInput
from data.synthetic import SyntheticConfig
from tests.conftest import as_user, digest

pytestmark = [pytest.mark.slow, pytest.mark.spark,
              pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java (make test installs it)")]


def test_a_stratified_sample_keeps_whole_customers_and_every_fraud(tmp_path, spark):
    conn = connect(tmp_path / "centinela.duckdb")
    ctx = as_user(conn, "ana")
    app_datasets.generate(ctx, "lake", SyntheticConfig(rows=30_000, seed=9, days=40, fraud_rate=0.01), features=False)
    lake = tmp_path / "lake.parquet"
    app_datasets.export(ctx, "lake", lake)
    src = f"read_parquet({sql_string(str(lake))})"

    # 15,000 rows asked: the customers with a fraud hold about 11,000 of the 30,000; the rest are drawn.
    done = scaleout.spark_sample(ctx, [str(lake)], "sample", 15_000, spark, stratify=True, seed=3)
    sample = get_dataset(conn, "sample")
    assert done.unit == "customer" and sample.row_count == done.sample_rows and done.lake_rows == 30_000
    assert 0 < done.rate < 1 and 0.85 * 15_000 <= done.sample_rows <= 1.15 * 15_000
    # Every fraud of the lake is in it; every sampled customer with all its transactions.
    lake_fraud = conn.execute(f"SELECT count(*) FROM {src} WHERE is_fraud").fetchone()[0]
    assert conn.execute(f"SELECT count(*) FROM {sample.table} WHERE is_fraud").fetchone()[0] == lake_fraud
    partial = conn.execute(
        f"SELECT count(*) FROM (SELECT customer_id, count(*) AS n FROM {sample.table} GROUP BY 1) s "
        f"JOIN (SELECT customer_id, count(*) AS n FROM {src} GROUP BY 1) l USING (customer_id) WHERE s.n <> l.n"
    ).fetchone()[0]
    assert partial == 0
    # Weights: 1 for customers kept for their fraud, 1 / rate for the drawn; they add up to about the lake.
    weights = conn.execute(f"SELECT sum(sample_weight), min(sample_weight), max(sample_weight) FROM {sample.table}").fetchone()
    assert weights[1] == 1.0 and weights[2] == pytest.approx(1 / done.rate)
    assert weights[0] == pytest.approx(30_000, rel=0.15)
    # Time order, and the workbench trains and retrains on it as on any dataset.
    assert conn.execute(f"SELECT bool_and(ts >= prev) FROM (SELECT ts, lag(ts) OVER (ORDER BY tx_row) AS prev "
                        f"FROM {sample.table}) WHERE prev IS NOT NULL").fetchone()[0]
    app_runs.fit(ctx, "sample", ["isolation_forest"])
    assert app_models.retrain(ctx, "sample", params={"n_estimators": 25}).label_counts["fraud"] == lake_fraud

    again = scaleout.spark_sample(ctx, [str(lake)], "sample-2", 15_000, spark, stratify=True, seed=3)
    assert again.sample_rows == done.sample_rows  # the same seed, the same sample

    before = digest(conn)
    with pytest.raises(Conflict, match="already exists"):
        scaleout.spark_sample(ctx, [str(lake)], "sample", 15_000, spark)  # the name is taken: refused before Spark runs
    assert digest(conn) == before
    notes = tmp_path / "notes.txt"
    notes.write_text("not a Parquet file")
    with pytest.raises(InvalidInput, match="cannot be read as Parquet") as refused:
        scaleout.spark_sample(ctx, [str(notes)], "sample-3", 100, spark)
    assert str(notes) in str(refused.value) and digest(conn) == before
    conn.close()
