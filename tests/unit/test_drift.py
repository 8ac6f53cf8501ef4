"""Drift (PSI): the statistic on known distributions, and a report that finds planted drift."""

from __future__ import annotations

import numpy as np
import pytest

from application import datasets as app_datasets
from application import runs as app_runs
from data.errors import UserError
from data.features import compute_features
from data.synthetic import SyntheticConfig
from detectors.drift import PSI_WARNING, drift_report, psi, psi_status
from detectors.runs import default_split
from tests.conftest import as_user


def test_psi_on_known_distributions():
    rng = np.random.default_rng(0)
    base = rng.normal(size=50_000)
    assert psi(base, base) == pytest.approx(0.0, abs=1e-12)
    assert psi(base, rng.normal(size=50_000)) < 0.01  # same distribution, another sample
    assert psi(base, rng.normal(loc=1.0, size=50_000)) > 0.5  # one standard deviation off
    # Ten equal bins, all recent values in the top one: sum of 9 x (eps - .1) ln(eps/.1) + (1 - .1) ln(1/.1).
    top = np.full(1_000, 99.0)
    expected = 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1) + 0.9 * np.log(1 / 0.1)
    assert psi(np.arange(1_000.0), top) == pytest.approx(expected, rel=1e-3)
    # Missing values are a bin of their own: a feature that goes missing has drifted.
    gone = np.where(rng.random(50_000) < 0.3, np.nan, rng.normal(size=50_000))
    assert psi(base, gone) > PSI_WARNING
    assert psi(np.zeros(100), np.zeros(50)) == pytest.approx(0.0)  # a constant feature
    assert [psi_status(v) for v in (0.05, 0.15, 0.25)] == ["stable", "moderate", "drifted"]
    with pytest.raises(ValueError):
        psi(np.array([]), base)


def test_report_flags_planted_amount_drift_only(conn):
    dataset = app_datasets.generate(as_user(conn), "drifting", SyntheticConfig(rows=20_000, seed=3, days=60), features=False).dataset
    steady = app_datasets.generate(as_user(conn), "steady", SyntheticConfig(rows=20_000, seed=3, days=60), features=False).dataset
    # In the last 10 days every amount is five times larger: inflation, a new product, a bug upstream.
    conn.execute(f"UPDATE {dataset.table} SET amount = amount * 5 WHERE ts >= ?",
                 [dataset.max_ts - np.timedelta64(10, "D")])
    reports = {}
    for each in (dataset, steady):
        compute_features(conn, each)
        run = app_runs.fit(as_user(conn, "test"), each, ["isolation_forest"], contamination=0.01, train_until=default_split(each))
        reports[each.name] = drift_report(conn, each, run, recent_days=7)
    drifted, calm = reports["drifting"].table.set_index("feature"), reports["steady"].table.set_index("feature")
    assert {"amount", "log_amount", "score"} <= set(reports["drifting"].drifted)
    assert drifted.loc["amount", "recent_mean"] > 3 * drifted.loc["amount", "training_mean"]
    # Without the planted change, the amount is stable. Features that accumulate history
    # (cust_history_count, merch_count_30d, the merchant's fraud risk) do drift here, because the
    # data start from nothing, and the score moves with them, but far less than with the change.
    assert calm.loc["amount", "psi"] < 0.1 and calm.loc["log_amount", "psi"] < 0.1
    assert "amount" not in reports["steady"].drifted
    assert calm.loc["score", "psi"] < 0.5 * drifted.loc["score", "psi"], (calm.loc["score", "psi"], drifted.loc["score", "psi"])
    # Features that do not read the amount stay put even where the amount moved.
    assert drifted.loc["hour", "psi"] < 0.1
    report = reports["drifting"]
    assert report.training[1] <= report.recent[0] and report.recent_rows > 1_000 and report.training_rows > 5_000
    assert list(report.table["psi"]) == sorted(report.table["psi"], reverse=True)
    with pytest.raises(UserError):
        drift_report(conn, dataset, run, recent_days=0)
