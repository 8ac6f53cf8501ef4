"""The in-memory features of new transactions equal the catalogue's SQL on the same rows, on the
cases where the two could part: refunds, missing ids, transactions at the same instant, late
arrivals, window boundaries, new customers and merchants, analysts' labels, a label delay of 0.
Also: the compiled forest and the written-out transform of a saved pipeline give scikit-learn's
numbers bit for bit, NumericPreprocessor gives them to rounding, and the server keeps one history in memory across requests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest

from application import datasets as app_datasets
from application import labels as app_labels
from application import live as app_live
from data import live as store
from data import online_features as online
from data.features import CATALOGUE, load_feature_set
from detectors.base import make_detector
from detectors.compiled_forest import CompiledIsolationForest
from detectors.pipeline import DetectorModel, FeatureSpec
from tests.conftest import as_user


def _history(conn, dataset):
    return conn.execute(f"SELECT * FROM {dataset.table} ORDER BY tx_row").df()


def _edge_items(history: pd.DataFrame) -> list[dict]:
    """New transactions built on stored ones, each meant to catch one way the paths could differ."""
    last = history.sort_values(["ts", "tx_row"]).groupby("customer_id").tail(1).reset_index(drop=True)
    busy = last.iloc[0]
    other = last.iloc[1]
    t = pd.Timestamp(busy["ts"])
    base = {"customer_id": busy["customer_id"], "merchant_id": busy["merchant_id"], "device_id": busy["device_id"],
            "city": busy["city"], "lat": float(busy["lat"]), "lon": float(busy["lon"])}
    rows = [
        {**base, "timestamp": t + pd.Timedelta(minutes=5), "amount": 120.0},
        {**base, "timestamp": t + pd.Timedelta(minutes=5), "amount": 80.0},  # the same instant: peers
        {**base, "timestamp": t + pd.Timedelta(hours=1), "amount": -40.0},  # a refund, on the 1 h boundary
        {**base, "timestamp": t - pd.Timedelta(days=3), "amount": 55.5},  # a late arrival, before stored rows
        {**base, "timestamp": t + pd.Timedelta(days=7), "amount": 999.0, "device_id": "DEV-NEW-1"},  # 7 d boundary
        {**base, "timestamp": t + pd.Timedelta(days=2), "amount": 10.0, "merchant_id": "MERCH-NEW-1"},
        {"timestamp": t + pd.Timedelta(minutes=7), "amount": 33.0, "merchant_id": other["merchant_id"]},  # no customer
        {"timestamp": t + pd.Timedelta(minutes=8), "amount": 44.0, "customer_id": other["customer_id"]},  # no merchant
        {"timestamp": t + pd.Timedelta(minutes=9), "amount": 0.0, "customer_id": "CUST-NEW-1",
         "merchant_id": other["merchant_id"]},  # a new customer; a zero amount
        {**base, "timestamp": t + pd.Timedelta(days=1), "amount": 75.0, "lat": None, "lon": None,
         "device_id": None},  # no coordinates, no device
    ]
    out = []
    for i, row in enumerate(rows):
        item = {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and np.isnan(v))}
        item["timestamp"] = pd.Timestamp(item["timestamp"]).isoformat()
        item["transaction_id"] = f"EDGE{i:03d}"
        out.append(item)
    return out


def _both_paths(conn, dataset, items):
    """The new rows' features by the in-memory path and by the SQL, inside a transaction rolled back."""
    feature_set = load_feature_set(conn, dataset)
    key = ("test",)
    state = online.load(conn, dataset, feature_set, key)
    frame = store.check_items(dataset, items)
    conn.execute("BEGIN TRANSACTION")
    try:
        tx_rows = store.insert_rows(conn, dataset, frame)
        by_sql = store.features_by_sql(conn, dataset, feature_set, frame, tx_rows)
        rows = online.new_rows(frame, tx_rows, store.derived_coordinates(conn, dataset, tx_rows), None)
        in_memory = state.compute(rows)
    finally:
        conn.execute("ROLLBACK")
    return by_sql, in_memory[by_sql.columns]


def _assert_same(by_sql: pd.DataFrame, in_memory: pd.DataFrame) -> None:
    assert list(by_sql.columns) == list(in_memory.columns)
    for column in by_sql.columns:
        a, b = by_sql[column].to_numpy(dtype=float), in_memory[column].to_numpy(dtype=float)
        assert (np.isnan(a) == np.isnan(b)).all(), f"{column}: NULL differs: sql {a} memory {b}"
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-9, equal_nan=True, err_msg=column)


@pytest.fixture
def featured(conn, small_dataset):
    ctx = as_user(conn, "ana")
    app_datasets.compute_features(ctx, small_dataset)
    return ctx, small_dataset


def test_every_catalogue_feature_has_an_in_memory_definition():
    assert {f.name for f in CATALOGUE} == online.SUPPORTED


def test_edge_cases_get_the_sql_features(conn, featured):
    ctx, dataset = featured
    by_sql, in_memory = _both_paths(conn, dataset, _edge_items(_history(conn, dataset)))
    assert len(by_sql) == 10 and by_sql.shape[1] == len(load_feature_set(conn, dataset).computed) + 1
    assert by_sql["cust_count_1h"].notna().any() and by_sql["merchant_fraud_rate"].notna().any()
    _assert_same(by_sql, in_memory)


def test_analyst_labels_and_a_label_delay_of_zero(conn, featured):
    ctx, dataset = featured
    history = _history(conn, dataset)
    # Analysts overrule the ground truth on some rows of busy merchants, both ways.
    busiest = history["merchant_id"].value_counts().index[:3]
    chosen = history[history["merchant_id"].isin(busiest)].sort_values("ts").tail(40)["transaction_id"].tolist()
    app_labels.label(ctx, dataset, chosen[:20], "fraud")
    app_labels.label(ctx, dataset, chosen[20:], "legitimate")
    items = _edge_items(history)
    for delay in (7, 0):
        app_datasets.compute_features(ctx, dataset, label_delay_days=delay)
        dataset = ctx.dataset(dataset.name)
        by_sql, in_memory = _both_paths(conn, dataset, items)
        assert by_sql["merch_fraud_risk_30d"].notna().any()
        _assert_same(by_sql, in_memory)


@pytest.mark.parametrize("kept", [False, True], ids=["read-each-request", "kept-between-requests"])
def test_the_server_keeps_one_history_and_follows_labels_and_recomputations(conn, featured, kept, tmp_path):
    from application import runs as app_runs
    from detectors.base import DEFAULT_DETECTOR

    ctx, dataset = featured
    if kept:  # as the server's API does: the live state kept between requests while nothing changed
        ctx = dataclasses.replace(ctx, database=str(tmp_path / "kept"))
    app_runs.fit(ctx, dataset, [DEFAULT_DETECTOR])
    items = _edge_items(_history(conn, dataset))
    app_live._HISTORY.pop(dataset.id, None)
    app_live.score(ctx, dataset.name, items[:1], api_key="k")
    first = app_live._HISTORY[dataset.id]
    app_live.score(ctx, dataset.name, items[1:4], api_key="k")
    assert app_live._HISTORY[dataset.id] is first  # appended to, not loaded again
    assert first.rows == ctx.dataset(dataset.name).row_count
    app_live.score(ctx, dataset.name, items[1:2], api_key="k")  # a retry: found without a new row
    assert first.rows == ctx.dataset(dataset.name).row_count
    # An analyst's label on a busy merchant's old transaction: only the labels are read again, and
    # the merchant features of the next transaction there see it (the SQL says the same).
    history = _history(conn, dataset)
    merchant = history["merchant_id"].value_counts().index[0]
    when = pd.Timestamp(history["ts"].max()) + pd.Timedelta(days=1)
    legitimate = history[(history["merchant_id"] == merchant) & (history["is_fraud"] == 0)]
    old = legitimate[legitimate["ts"] < when - pd.Timedelta(days=8)].iloc[-1]  # known by then: behind the delay
    later = {"transaction_id": "AFTER-LABEL", "timestamp": when.isoformat(), "amount": 50.0, "merchant_id": merchant,
             "customer_id": old["customer_id"]}
    before = app_live.score(ctx, dataset.name, [dict(later, transaction_id="BEFORE-LABEL")], api_key="k")
    app_labels.label(ctx, dataset, [old["transaction_id"]], "fraud")
    after = app_live.score(ctx, dataset.name, [later], api_key="k")
    assert app_live._HISTORY[dataset.id] is first  # re-read in place, not loaded again
    assert first.rows == ctx.dataset(dataset.name).row_count
    features = load_feature_set(conn, dataset).table
    stored = conn.execute(f"SELECT tx_row, merch_days_since_fraud FROM {features} WHERE tx_row IN (?, ?) ORDER BY tx_row",
                          [before.decisions[0]["tx_row"], after.decisions[0]["tx_row"]]).fetchall()
    assert stored[0][1] != stored[1][1]  # the new fraud label moved the merchant's latest known fraud
    by_sql, in_memory = _both_paths(conn, ctx.dataset(dataset.name), [dict(later, transaction_id="CHECK")])
    _assert_same(by_sql, in_memory)
    app_live.score(ctx, dataset.name, [dict(later, transaction_id="AFTER-RECOMPUTE")], api_key="k")
    app_datasets.compute_features(ctx, dataset)
    app_live.score(ctx, dataset.name, [dict(later, transaction_id="AFTER-RECOMPUTE-2")], api_key="k")
    assert app_live._HISTORY[dataset.id] is not first  # a recomputed feature set: loaded again


@pytest.mark.parametrize("max_features", [1.0, 0.6])
def test_the_compiled_forest_scores_as_scikit_learn_does(max_features):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3_000, 10))
    X[:, 2] = rng.integers(0, 4, len(X))  # ties at thresholds
    forest = IsolationForest(n_estimators=50, max_samples=128, max_features=max_features, random_state=1).fit(X)
    Y = rng.normal(size=(700, 10)) * 3
    Y[rng.random(Y.shape) < 0.05] = np.nan
    Y[:, 2] = rng.integers(0, 4, len(Y))
    assert np.array_equal(CompiledIsolationForest(forest).score_samples(Y), forest.score_samples(Y))


def _saved_with_a_pipeline(train: pd.DataFrame, columns: list[str]) -> DetectorModel:
    """A model as runs saved before NumericPreprocessor hold it: scikit-learn's pipeline."""
    model = DetectorModel(make_detector("isolation_forest", {"n_estimators": 30}), FeatureSpec(columns))
    model.preprocessor_ = model._preprocessor().fit(model._columns(train))
    model.feature_names_ = list(model.preprocessor_.get_feature_names_out())
    model.detector.fit(model.preprocessor_.transform(model._columns(train)))
    return model


def test_a_saved_pipeline_takes_the_written_out_transform_with_scikit_learns_numbers():
    rng = np.random.default_rng(4)
    columns = [f"f{i}" for i in range(6)]
    train = pd.DataFrame(rng.normal(size=(2_000, 6)) * 50, columns=columns)
    train["f1"] = 3.0  # constant: dropped
    train["f2"] = np.nan  # never present: the imputer drops it
    train.loc[rng.random(len(train)) < 0.1, "f3"] = np.nan
    model = _saved_with_a_pipeline(train, columns)
    test = pd.DataFrame(rng.normal(size=(300, 6)) * 50, columns=columns)
    test.loc[rng.random(len(test)) < 0.2, "f0"] = np.nan
    reference = model.preprocessor_.transform(model._columns(test))
    assert np.array_equal(model.transform(test), reference, equal_nan=True)
    assert np.array_equal(model.decision_function(test[:5]), model.detector.decision_function(reference[:5]))
    # A batch the size of a scoring chunk, integers among the columns, takes the same path.
    batch = pd.DataFrame(rng.normal(size=(25_000, 6)) * 50, columns=columns)
    batch.loc[rng.random(len(batch)) < 0.1, "f4"] = np.nan
    batch["f5"] = rng.integers(-100, 100, len(batch))
    assert np.array_equal(model.transform(batch), model.preprocessor_.transform(model._columns(batch)), equal_nan=True)
    # All float32, scikit-learn computes in float32: the written-out float64 path stands aside.
    narrow = test.astype(np.float32)
    assert np.array_equal(model.transform(narrow), model.preprocessor_.transform(model._columns(narrow)),
                          equal_nan=True)
    assert model.transform(narrow).dtype == np.float32


def _awkward_features(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """Columns where imputation, scaling and the constant test could part from scikit-learn's."""
    return pd.DataFrame({
        "normal": rng.normal(size=rows) * 50 + 7,
        "heavy_tail": rng.lognormal(sigma=3.0, size=rows),
        "sparse": np.where(rng.random(rows) < 0.9, np.nan, rng.normal(size=rows)),
        "never": np.nan,
        "constant": 3.0,
        "constant_with_gaps": np.where(rng.random(rows) < 0.3, np.nan, -2.5),
        "one_odd_value": np.r_[np.zeros(rows - 1), 1.0],
        "near_constant_large": 1e9 + rng.normal(size=rows) * 1e-7,  # StandardScaler's scale of 1
        "counts": rng.integers(0, 5, rows),
    })


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")  # the reference pipeline's
@pytest.mark.parametrize("rows", [2, 7, 5_000])
def test_the_numeric_preprocessor_gives_scikit_learns_numbers(rows):
    rng = np.random.default_rng(rows)
    train = _awkward_features(rng, rows)
    columns = list(train.columns)
    model = DetectorModel(make_detector("isolation_forest", {"n_estimators": 20}), FeatureSpec(columns)).fit(train)
    assert type(model.preprocessor_).__name__ == "NumericPreprocessor"
    pipeline = model._preprocessor()
    expected = pipeline.fit_transform(model._columns(train))
    fitted = type(model.preprocessor_)()
    got = fitted.fit_transform(train)
    assert list(model.feature_names_) == list(pipeline.get_feature_names_out())
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(fitted.transform(train), got)  # fit_transform is fit, then transform
    test = _awkward_features(rng, 400)
    test.loc[rng.random(len(test)) < 0.2, ["normal", "heavy_tail", "one_odd_value"]] = np.nan
    np.testing.assert_allclose(model.transform(test), pipeline.transform(model._columns(test)), rtol=1e-12, atol=1e-12)
    # float32 features are computed in float64, the type the fit used.
    np.testing.assert_allclose(model.transform(test.astype(np.float32)),
                               pipeline.transform(model._columns(test.astype(np.float32).astype(np.float64))),
                               rtol=1e-12, atol=1e-12)


def test_an_infinite_feature_is_refused_naming_its_column():
    from data.errors import InvalidInput

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"ok": rng.normal(size=50), "ratio": rng.normal(size=50)})
    frame.loc[10, "ratio"] = np.inf
    model = DetectorModel(make_detector("isolation_forest", {"n_estimators": 20}), FeatureSpec(["ok", "ratio"]))
    with pytest.raises(InvalidInput, match="'ratio'"):
        model.fit(frame)
    model.fit(frame.replace(np.inf, 1.0))
    with pytest.raises(InvalidInput, match="'ratio'"):
        model.transform(frame)


def test_nullable_integer_features_are_read_with_their_missing_values():
    rng = np.random.default_rng(6)
    counts = rng.integers(0, 9, 300).astype(float)
    counts[rng.random(300) < 0.2] = np.nan
    plain = pd.DataFrame({"count": counts, "amount": rng.normal(size=300)})
    nullable = plain.astype({"count": "Int64"})
    assert nullable["count"].isna().sum() == np.isnan(counts).sum() > 0
    spec = FeatureSpec(["count", "amount"])
    model = DetectorModel(make_detector("isolation_forest", {"n_estimators": 20}), spec).fit(nullable)
    reference = DetectorModel(make_detector("isolation_forest", {"n_estimators": 20}), spec).fit(plain)
    np.testing.assert_array_equal(model.transform(nullable), reference.transform(plain))
    np.testing.assert_array_equal(model.decision_function(nullable), reference.decision_function(plain))
