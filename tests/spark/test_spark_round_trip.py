"""The round trip a bank runs: the workbench holds 45 days of history with a fitted detector; Spark
scores the lake (those days and 15 newer ones); `centinela spark import-alerts` brings the new
alerts into the workbench, where the queue shows them, a case explains one, and a label stored on
it is used by the next retrain. Importing the same output again adds nothing."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import numpy as np
import pytest

from application import cases as app_cases
from application import datasets as app_datasets
from application import labels as app_labels
from application import models as app_models
from application import runs as app_runs
from application import scaleout
from application.queue import queue_page
from data.datasets import get_dataset
from data.db import connect, sql_string
from data.errors import InvalidInput, UserError
from data.features import load_feature_set
from data.synthetic import SyntheticConfig
from detectors.explain import explainer_for_run
from tests.conftest import as_user, digest, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.spark,
              pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java (make test installs it)")]


def test_spark_alerts_come_back_to_the_queue_explained_labelled_and_retrained_on(tmp_path, spark):
    db = tmp_path / "centinela.duckdb"
    conn = connect(db)
    ctx = as_user(conn, "ana")
    full = app_datasets.generate(ctx, "full", SyntheticConfig(rows=40_000, seed=5, days=60, fraud_rate=0.01),
                                 features=False).dataset
    lake = tmp_path / "lake.parquet"
    app_datasets.export(ctx, "full", lake)
    cutoff = full.min_ts + timedelta(days=45)
    history = tmp_path / "history.parquet"
    conn.execute(f"COPY (SELECT * FROM read_parquet({sql_string(str(lake))}) WHERE ts < ?) TO "
                 f"{sql_string(str(history))} (FORMAT parquet)", [cutoff])
    app_datasets.import_dataset(ctx, history, "bank")
    app_datasets.compute_features(ctx, "bank")
    detector = app_runs.fit(ctx, "bank", ["isolation_forest"])
    bank = get_dataset(conn, "bank")
    held = bank.row_count

    scored = scaleout.spark_score(ctx, "bank", [str(lake)], tmp_path / "scored", spark)
    assert scored.run_id == detector.id and scored.rows == full.row_count
    conn.close()  # the command line opens the database itself
    first = run_cli("spark", "import-alerts", str(tmp_path / "scored"), "--dataset", "bank", "--json", db=db)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    conn = connect(db)
    ctx = as_user(conn, "ana")
    alerts = sql_string(str(tmp_path / "scored" / "alerts") + "/**/*.parquet")
    newer = conn.execute(f"SELECT count(*) FROM read_parquet({alerts}, hive_partitioning = true) WHERE ts >= ?",
                         [cutoff]).fetchone()[0]
    assert newer > 0 and report["imported"] == newer and report["already_stored"] == report["alerts"] - newer
    bank = get_dataset(conn, "bank")
    assert bank.row_count == held + newer and bank.max_ts >= cutoff

    # The queue shows them (the detector run ranks it), and a case explains one as any other.
    page = queue_page(ctx, "bank", page_size=500)
    arrived = page.rows[page.rows["ts"] >= cutoff]
    assert len(arrived) > 0
    case_id = arrived["transaction_id"].iloc[0]
    case = app_cases.open_case(ctx, "bank", case_id)
    assert case.score is not None and case.score >= page.active.threshold
    explained = app_cases.explanation(ctx, case, lambda: explainer_for_run(conn, bank, detector))
    assert len(explained["attributions"]) > 0 and explained["lineage"]["score_is_current"]

    # A label on it feeds the next retrain.
    app_labels.label(ctx, "bank", [case_id], "fraud")
    version = app_models.retrain(ctx, "bank", params={"n_estimators": 25})
    assert version.label_counts["analyst_fraud"] == 1

    # Again: nothing new, and the database is as it was.
    before = digest(conn)
    again = scaleout.import_spark_alerts(ctx, "bank", tmp_path / "scored")
    assert again.imported == 0 and again.already_stored == again.alerts
    after = digest(conn)
    assert {t: v for t, v in after.items() if t != "audit"} == {t: v for t, v in before.items() if t != "audit"}

    # Bad input: alerts of another dataset's run are refused, naming the file and column; nothing changes.
    app_datasets.compute_features(ctx, "full")
    other = app_runs.fit(ctx, "full", ["isolation_forest"])
    foreign = scaleout.spark_score(ctx, "full", [str(lake)], tmp_path / "foreign", spark)
    assert foreign.run_id == other.id
    before = digest(conn)
    with pytest.raises(InvalidInput) as refused:
        scaleout.import_spark_alerts(ctx, "bank", tmp_path / "foreign")
    assert "column 'run_id'" in str(refused.value) and str(tmp_path / "foreign") in str(refused.value)
    assert digest(conn) == before
    conn.close()


@pytest.mark.parametrize("case", ["missing column", "wrong type", "unknown model", "output exists", "not parquet"])
def test_bad_input_is_refused_naming_it_and_nothing_is_written(tmp_path, spark, case):
    conn = connect(tmp_path / "centinela.duckdb")
    ctx = as_user(conn, "ana")
    app_datasets.generate(ctx, "bank", SyntheticConfig(rows=3_000, seed=2, days=20))
    app_runs.fit(ctx, "bank", ["isolation_forest"])
    lake, out, model = tmp_path / "lake.parquet", tmp_path / "out", None
    select = {"missing column": "* EXCLUDE (tx_row, amount)",
              "wrong type": "* EXCLUDE (tx_row, amount), CAST(amount AS VARCHAR) || ' PEN' AS amount"}.get(case, "* EXCLUDE (tx_row)")
    conn.execute(f"COPY (SELECT {select} FROM tx_1) TO {sql_string(str(lake))} (FORMAT parquet)")
    if case == "unknown model":
        model = 999
    if case == "output exists":
        out.mkdir()
        (out / "earlier.txt").write_text("an earlier run")
    if case == "not parquet":
        lake = tmp_path / "notes.txt"
        lake.write_text("not a Parquet file")
    before = digest(conn)
    with pytest.raises(UserError) as refused:
        scaleout.spark_score(ctx, "bank", [str(lake)], out, spark, run_id=model)
    message = str(refused.value)
    expected = {"missing column": [str(lake), "column 'amount'"], "wrong type": [str(lake), "column 'amount'", "string"],
                "unknown model": ["999"], "output exists": [str(out), "already exists"],
                "not parquet": [str(lake), "Parquet"]}[case]
    assert all(part in message for part in expected), message
    assert digest(conn) == before
    assert (not out.exists()) if case != "output exists" else [p.name for p in out.iterdir()] == ["earlier.txt"]
    conn.close()


def test_a_lake_with_zoned_timestamps_gets_the_workbench_features(tmp_path, spark):
    """The workbench stores wall-clock time in the dataset's zone (America/Lima); a lake that holds
    instants (Parquet timestamps adjusted to UTC, as most writers make them) is read in that zone."""
    conn = connect(tmp_path / "centinela.duckdb")
    ctx = as_user(conn, "ana")
    dataset = app_datasets.generate(ctx, "bank", SyntheticConfig(rows=5_000, seed=4, days=20)).dataset
    lake = tmp_path / "zoned.parquet"
    conn.execute(f"COPY (SELECT * EXCLUDE (tx_row, ts), timezone('America/Lima', ts) AS ts FROM tx_1 ORDER BY tx_row) "
                 f"TO {sql_string(str(lake))} (FORMAT parquet)")
    assert conn.execute(f"SELECT typeof(ts) FROM read_parquet({sql_string(str(lake))}) LIMIT 1").fetchone()[0] == \
        "TIMESTAMP WITH TIME ZONE"
    feature_set = load_feature_set(conn, dataset)
    got = scaleout.spark_features(ctx, "bank", [str(lake)], spark).drop("tx_row").toArrow().to_pandas()
    got = got.set_index("transaction_id").sort_index()
    stored = conn.execute(f"SELECT t.transaction_id, t.ts, f.* EXCLUDE (tx_row) FROM {feature_set.table} f "
                          f"JOIN {dataset.table} t USING (tx_row)").df().set_index("transaction_id").sort_index()
    # The same wall-clock times (Arrow hands Spark's timestamps over as UTC instants: the session's zone).
    wall = got["ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    assert (wall.to_numpy() == stored["ts"].to_numpy()).all()
    for name in feature_set.computed:
        a, b = got[name].to_numpy(float), stored[name].to_numpy(float)
        assert (np.isnan(a) == np.isnan(b)).all(), name
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, equal_nan=True, err_msg=name)
    conn.close()
