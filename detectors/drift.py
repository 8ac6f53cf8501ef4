"""Drift: has the data moved away from what a model was trained on?

The population stability index (PSI) compares a feature's distribution in the training period
with the recent one, over ten bins cut at the training deciles (missing values get a bin of
their own):  PSI = sum over bins of (recent% - training%) * ln(recent% / training%).
The usual reading, used here: below 0.1 stable, 0.1-0.2 moderate, above 0.2 drifted: retrain
or investigate. The run's own score is checked the same way, since a shifted score distribution
moves the alert volume a fixed threshold produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from data.datasets import Dataset
from data.errors import InvalidInput
from detectors.pipeline import ANOMALY_SCORE, FeatureSpec, load_sample, require_features
from detectors.runs import Run

PSI_BINS = 10
PSI_MODERATE = 0.1
PSI_WARNING = 0.2
SAMPLE_ROWS = 50_000  # per period: PSI over 10 bins is stable to ~0.002 at this size
# Empty bins would make the logarithm infinite; they count as this share instead.
EMPTY_BIN_SHARE = 1e-4
SCORE = "score"


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of `actual` against `expected` (bins at expected's quantiles)."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.size == 0 or actual.size == 0:
        raise ValueError("both samples need at least one value")
    known = expected[~np.isnan(expected)]
    # Unique edges: a feature with few distinct values (a flag, a count) gets fewer bins.
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1])) if known.size else np.array([])

    def shares(values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        counts = np.bincount(np.searchsorted(edges, values[~missing], side="right"), minlength=edges.size + 1)
        return np.maximum(np.append(counts, missing.sum()) / values.size, EMPTY_BIN_SHARE)

    e, a = shares(expected), shares(actual)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_status(value: float) -> str:
    if value > PSI_WARNING:
        return "drifted"
    return "moderate" if value > PSI_MODERATE else "stable"


@dataclass(frozen=True)
class DriftReport:
    run_id: int
    training: tuple[datetime | None, datetime]  # [start, end) of the reference period
    recent: tuple[datetime, datetime]  # [start, end] of the recent period
    training_rows: int
    recent_rows: int
    table: pd.DataFrame  # feature, psi, status, training_mean, recent_mean; worst first

    @property
    def drifted(self) -> list[str]:
        return list(self.table.loc[self.table["psi"] > PSI_WARNING, "feature"])


def recent_window(dataset: Dataset, days: int) -> datetime:
    """Start of the last `days` days of a dataset."""
    if dataset.max_ts is None:
        raise InvalidInput(f"dataset {dataset.name!r} has no timestamps to compare periods by.")
    return pd.Timestamp(dataset.max_ts - timedelta(days=days)).to_pydatetime()


def drift_report(conn: duckdb.DuckDBPyConnection, dataset: Dataset, run: Run, recent_days: int = 7,
                 sample_rows: int = SAMPLE_ROWS, seed: int = 0) -> DriftReport:
    """PSI of each of the run's features and of its score: its training period against the last
    `recent_days` days. A run trained on everything is compared with what came before the window."""
    if not 1 <= int(recent_days) <= 3660:
        raise InvalidInput(f"the recent period must be 1 to 3,660 days, not {recent_days}.")
    recent_start = recent_window(dataset, int(recent_days))
    train_end = min(run.train_until or recent_start, recent_start)
    feature_set = require_features(conn, dataset)
    features = [f for f in run.features["numeric"] if f != ANOMALY_SCORE and f in feature_set.computed]
    spec = FeatureSpec([*features, ANOMALY_SCORE], [], base_run_id=run.id)  # ANOMALY_SCORE = this run's score
    reference = load_sample(conn, dataset, feature_set, spec, sample_rows, end=train_end, seed=seed,
                            start=run.train_from)
    recent = load_sample(conn, dataset, feature_set, spec, sample_rows, seed=seed, start=recent_start)
    if reference.empty or recent.empty:
        empty = "training period" if reference.empty else "recent period"
        raise InvalidInput(f"the {empty} has no transactions to compare.",
                           hint="Choose a shorter recent period, or a run trained on earlier data.")
    rows = []
    for column in [ANOMALY_SCORE, *features]:
        before, after = reference[column].to_numpy(np.float64), recent[column].to_numpy(np.float64)
        value = psi(before, after)
        rows.append({"feature": SCORE if column == ANOMALY_SCORE else column, "psi": value, "status": psi_status(value),
                     "training_mean": float(np.nanmean(before)) if np.isfinite(before).any() else None,
                     "recent_mean": float(np.nanmean(after)) if np.isfinite(after).any() else None})
    table = pd.DataFrame(rows).sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
    return DriftReport(run.id, (run.train_from, train_end), (recent_start, dataset.max_ts),
                       len(reference), len(recent), table)
