"""From a dataset's features to a numeric matrix, and a model = preprocessing + detector.

The preprocessing (impute, scale numerics, one-hot encode categoricals) is fitted with the
detector and saved with it, so a saved run scores new rows the same way it scored the old ones:
for numeric features alone `NumericPreprocessor` (the same numbers, in NumPy), with categorical
columns a scikit-learn ColumnTransformer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from data.datasets import Dataset
from data.db import PERIOD_SQL, quote_ident
from data.errors import InvalidInput
from data.features import FeatureSet, load_feature_set
from detectors.base import Detector, ExplanationSupport
from detectors.impute import MedianImputer
from detectors.numeric_preprocessing import NumericPreprocessor

MAX_CATEGORIES = 30  # categorical columns with more distinct values (ids, IPs) are left out
# Ground truth and analyst-facing identifiers never become model inputs.
NEVER_FEATURES = {"is_fraud", "fraud_scenario", "transaction_id", "customer_id", "merchant_id", "device_id"}


@dataclass
class FeatureSpec:
    """Which columns a model reads: engineered numeric features and raw categorical columns."""

    numeric: list[str]
    categorical: list[str] = field(default_factory=list)
    # A supervised model also reads a detector run's score, as the column `anomaly_score`.
    base_run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"numeric": self.numeric, "categorical": self.categorical}
        if self.base_run_id is not None:
            out["base_run_id"] = self.base_run_id
        return out


def require_features(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> FeatureSet:
    """The dataset's feature set; InvalidInput if features were never computed (the actions that
    fit and train compute them first, `application.features.ensure`)."""
    feature_set = load_feature_set(conn, dataset)
    if feature_set is None:
        raise InvalidInput(f"dataset {dataset.name!r} has no features yet.",
                           hint=f"Compute them on the Data page, or: centinela features {dataset.name!r}")
    return feature_set


def default_feature_spec(feature_set: FeatureSet) -> FeatureSpec:
    """All computed features, no categorical columns.

    Measured on generated data, one-hot columns (district, MCC, ...) dilute isolation-based
    detectors: IsolationForest's average precision fell from 0.29 to 0.06 with them. Users add
    the categorical columns they trust (`categorical_candidates`).
    """
    return FeatureSpec(list(feature_set.computed), [])


def categorical_candidates(conn: duckdb.DuckDBPyConnection, dataset: Dataset) -> list[str]:
    """The dataset's categorical columns with few enough distinct values to one-hot encode."""
    candidates = [c for c in dataset.extras("categorical") if c not in NEVER_FEATURES]
    if not candidates:
        return []
    counts = conn.execute(
        f"SELECT {', '.join(f'approx_count_distinct({quote_ident(c)})' for c in candidates)} FROM {dataset.table}"
    ).fetchall()[0]
    return [c for c, n in zip(candidates, counts, strict=True) if 1 < n <= MAX_CATEGORIES]


def validate_spec(spec: FeatureSpec, dataset: Dataset, feature_set: FeatureSet) -> FeatureSpec:
    """Only computed features and the dataset's own categorical columns; never labels or ids."""
    bad = [f for f in spec.numeric if f not in feature_set.computed]
    bad += [c for c in spec.categorical if c not in dataset.extras("categorical") or c in NEVER_FEATURES]
    if bad:
        raise InvalidInput(f"{bad[0]!r} is not a usable feature of dataset {dataset.name!r}.",
                           hint=f"Computed features: {', '.join(feature_set.computed)}.")
    if not spec.numeric and not spec.categorical:
        raise InvalidInput("no features selected.", hint="Choose at least one feature.")
    return spec


ANOMALY_SCORE = "anomaly_score"


def _select_from(dataset: Dataset, feature_set: FeatureSet, spec: FeatureSpec) -> tuple[str, dict[str, Any]]:
    """`SELECT ... FROM ...` of a spec's columns (with tx_row and ts), and its named parameters."""
    columns = [f"s.score AS {ANOMALY_SCORE}" if c == ANOMALY_SCORE and spec.base_run_id is not None
               else f"f.{quote_ident(c)}" for c in spec.numeric]
    columns += [f"t.{quote_ident(c)}" for c in spec.categorical]
    sql = f"SELECT {', '.join(['t.tx_row', 't.ts', *columns])} FROM {dataset.table} t JOIN {feature_set.table} f USING (tx_row)"
    if spec.base_run_id is None:
        return sql, {}
    return sql + " LEFT JOIN scores s ON s.run_id = $base_run AND s.tx_row = t.tx_row", {"base_run": int(spec.base_run_id)}


def load_rows(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, spec: FeatureSpec,
              tx_rows: list[int]) -> pd.DataFrame:
    """Feature rows of the given transactions (by tx_row), in tx_row order."""
    select, params = _select_from(dataset, feature_set, spec)
    return conn.execute(
        f"{select} WHERE t.tx_row IN (SELECT unnest(CAST($rows AS BIGINT[]))) ORDER BY t.tx_row",
        {**params, "rows": [int(r) for r in tx_rows]},
    ).df()


def load_sample(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, spec: FeatureSpec,
                n: int, end: datetime | None = None, seed: int = 0, start: datetime | None = None) -> pd.DataFrame:
    """A deterministic pseudo-random sample of `n` feature rows with start <= ts < end (the same for the same seed)."""
    select, params = _select_from(dataset, feature_set, spec)
    # The sample is drawn on tx_row alone, then joined: ordering the whole feature join by the hash
    # carries every column of every row through the sort (3.3 -> 2.2 s for 50,000 of 10M rows).
    return conn.execute(
        f"WITH picked AS (SELECT t.tx_row FROM {dataset.table} t JOIN {feature_set.table} f USING (tx_row) "
        f"WHERE {PERIOD_SQL} ORDER BY hash(t.tx_row, $seed), t.tx_row LIMIT $n) "
        f"{select} WHERE t.tx_row IN (SELECT tx_row FROM picked) ORDER BY hash(t.tx_row, $seed), t.tx_row",
        {**params, "start": start, "end": end, "seed": int(seed), "n": int(n)},
    ).df()


def stream_frames(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, spec: FeatureSpec,
                  chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Every feature row (as `load_frame` returns them) in tx_row order, about `chunk_rows` at a
    time: memory holds one chunk, not the table (10M rows of 32 features are 2.6 GB as floats,
    twice that while converted). It reads on a cursor of its own, closed at the end (another
    query on `conn` would silently replace a half-read result), so it sees committed rows only:
    call it outside a unit of work."""
    select, params = _select_from(dataset, feature_set, spec)
    cursor = conn.cursor()
    try:
        result = cursor.execute(f"{select} ORDER BY t.tx_row", params)
        vectors = max(1, chunk_rows // duckdb.__standard_vector_size__)
        while True:
            chunk = result.fetch_df_chunk(vectors)
            if chunk.empty:
                return
            yield chunk
    finally:
        cursor.close()


def load_frame(
    conn: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    feature_set: FeatureSet,
    spec: FeatureSpec,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Feature rows (with tx_row and ts) for transactions with start <= ts < end, in tx_row order."""
    select, params = _select_from(dataset, feature_set, spec)
    sql, params = f"{select} WHERE {PERIOD_SQL} ORDER BY t.tx_row", {**params, "start": start, "end": end}
    if spec.categorical:  # text columns: through Arrow, pandas 3 would make them its `str` type, not objects
        return conn.execute(sql, params).df()
    # Numbers only: through Arrow, the same frame as `.df()` (a test compares them) in 1.4 s instead
    # of 2.1-2.4 s at 1.8M rows and 29 features, in one float64 block.
    return conn.sql(sql, params=params).to_arrow_table().to_pandas()


def _as_float64(dtypes: pd.Series) -> bool:
    """Whether scikit-learn computes on these columns as float64, as the written-out preprocessing
    does: it takes the columns' common type, keeps it when it is float32 or float16 (float32
    columns with small integers or booleans, say) and makes everything else float64."""
    try:
        common = np.result_type(*(np.dtype(d) for d in dtypes)) if len(dtypes) else np.dtype(np.float64)
    except TypeError:  # an extension dtype (nullable integers): left to scikit-learn
        return False
    return common not in (np.float32, np.float16)


class DetectorModel:
    """Preprocessing and an anomaly detector, fitted and saved together (a `RankingModel`)."""

    def __init__(self, detector: Detector, spec: FeatureSpec):
        self.detector = detector
        self.spec = spec

    def _preprocessor(self) -> Pipeline:
        # No missing-value indicators: measured on generated data, they cut IsolationForest's
        # average precision from 0.29 to 0.11 (trees spend their splits on them).
        numeric = Pipeline([("impute", MedianImputer()), ("scale", StandardScaler())])
        categorical = Pipeline([
            ("impute", SimpleImputer(strategy="constant", fill_value="(missing)")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False, max_categories=MAX_CATEGORIES)),
        ])
        columns = ColumnTransformer([("numeric", numeric, self.spec.numeric), ("categorical", categorical, self.spec.categorical)],
                                    sparse_threshold=0.0)
        # Columns constant in training carry no signal and break variance-weighted detectors (PCA).
        return Pipeline([("columns", columns), ("drop_constant", VarianceThreshold())])

    def _columns(self, frame: pd.DataFrame) -> pd.DataFrame:
        # No .copy(): under pandas' copy-on-write the selection is copied only where it is written
        # (the categorical columns below), not all of it (0.9 s of a fit at 1.8M rows).
        out = frame[self.spec.numeric + self.spec.categorical]
        for column in self.spec.categorical:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
        return out

    def fit(self, frame: pd.DataFrame) -> DetectorModel:
        if frame.empty:
            raise InvalidInput("there are no rows to train on.", hint="Choose a later 'train until' date.")
        if self.spec.categorical:
            self.preprocessor_ = self._preprocessor()
            X = self.preprocessor_.fit_transform(self._columns(frame))  # one pass, not fit then transform
        else:
            self.preprocessor_ = NumericPreprocessor()
            X = self.preprocessor_.fit_transform(frame[self.spec.numeric])
        self.feature_names_ = list(self.preprocessor_.get_feature_names_out())
        self.detector.fit(X)
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        if isinstance(self.preprocessor_, NumericPreprocessor):
            return self.preprocessor_.transform(frame)  # it reads its own columns
        # A model saved before NumericPreprocessor: scikit-learn's pipeline, written out for float64.
        if not self.spec.categorical and _as_float64(frame.dtypes[self.spec.numeric]):
            return self._numeric_transform(frame)
        return self.preprocessor_.transform(self._columns(frame))

    def _numeric_transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The fitted preprocessing of numeric-only features written out: the same operations in
        the same order (impute medians, subtract means, divide by scales, keep varying columns),
        so the same numbers, without scikit-learn's per-call validation (10 ms for one row) and
        its copies of a batch (a second at 1.8M rows)."""
        steps = self.preprocessor_.named_steps["columns"].named_transformers_["numeric"].named_steps
        imputer, scaler = steps["impute"], steps["scale"]
        X = frame[self.spec.numeric].to_numpy(dtype=np.float64, copy=True)
        statistics = imputer.statistics_
        if not imputer.keep_empty_features:
            valid = ~np.isnan(statistics)
            X, statistics = X[:, valid], statistics[valid]
        X = np.where(np.isnan(X), statistics, X)
        if scaler.with_mean:
            X -= scaler.mean_
        if scaler.with_std:
            X /= scaler.scale_
        return X[:, self.preprocessor_.named_steps["drop_constant"].get_support()]

    def score_matrix(self, X: np.ndarray) -> np.ndarray:
        return self.detector.decision_function(X)

    def decision_function(self, frame: pd.DataFrame) -> np.ndarray:
        return self.score_matrix(self.transform(frame))

    def check_rows(self, n_rows: int, action: str) -> None:
        self.detector.check_rows(n_rows, action)

    def explanation_support(self) -> ExplanationSupport:
        return self.detector.explanation_support()
