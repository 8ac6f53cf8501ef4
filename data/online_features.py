"""The feature catalogue for new transactions, from their customers' and merchants' history in memory.

Live scoring needs a transaction's features in well under a millisecond, and the catalogue's SQL
(data/features.py) costs 40 ms or more per request however few rows it reads: planning and
running twenty-odd window operators has a fixed price. So the server process keeps each
customer's and merchant's rows (time, row number, purchase amount, coordinates, device,
merchant, current label) as small NumPy arrays and computes the same definitions over them:
the same backwards-only frames (ROWS frames in (ts, tx_row) order, RANGE frames over ts that
include rows at the same instant), the same label delay, the same NULL rules. The SQL stays
the definition; `tests/unit/test_online_features.py` holds this module to it to 1e-9 on every
feature, on edge cases (refunds, missing ids, equal timestamps, late arrivals, label delay 0),
and the live parity test does the same through the API.

The history is loaded once per (feature set, labels) state with one query; rows the server
stores itself are appended after their transaction commits. Anything else that changes the
dataset (an import, a recompute, an analyst's label) changes the state key and the history
is loaded again on the next request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from data.datasets import Dataset
from data.features import CATALOGUE, MERCHANT_RATE_WINDOW_DAYS, MERCHANT_WINDOWS_DAYS, FeatureSet, base_query
from data.geography import EARTH_RADIUS_KM

US = 1_000_000  # timestamps are held as integer microseconds, as DuckDB stores them
HOUR_US, DAY_US = 3_600 * US, 86_400 * US
CUSTOMER_WINDOWS_US = {"1h": HOUR_US, "24h": 24 * HOUR_US, "7d": 7 * DAY_US, "30d": 30 * DAY_US}
CUSTOMER_COLUMNS = ("ts", "tx_row", "purchase", "lat", "lon", "device_code", "merchant_code")
CODED = {"device_code": "device_id", "merchant_code": "merchant_id"}  # ids held as int32 codes, -1 for NULL
MERCHANT_COLUMNS = ("ts", "tx_row", "purchase", "known_fraud")


def _epoch(ts_us: np.ndarray) -> np.ndarray:
    return ts_us / 1e6  # DuckDB's epoch(): seconds as a double


def _haversine(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    # The same operations, in the same order, as data.features._haversine's SQL.
    return (2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(
            np.power(np.sin(np.radians(lat2 - lat1) / 2), 2)
            + np.cos(np.radians(lat1)) * np.cos(np.radians(lat2)) * np.power(np.sin(np.radians(lon2 - lon1) / 2), 2))))


def _nan_to_zero(values: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(values), 0.0, values)


def _prefix(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running sums of the non-NULL values and running counts of them, with a leading zero.

    A window's sum is the difference of two running sums over a whole batch's rows; in extended
    precision (80-bit on x86) that difference keeps ~1e-12 of a 10^8 total, where float64 would
    lose ~1e-8 and part from the SQL's sums by more than the parity tolerance."""
    present = ~np.isnan(values)
    return (np.concatenate(([0.0], np.cumsum(_nan_to_zero(values), dtype=np.longdouble))),
            np.concatenate(([0], np.cumsum(present))))


@dataclass
class _Rows:
    """One entity's rows in (ts, tx_row) order: one array per column."""

    columns: dict[str, np.ndarray]

    def merged(self, new: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """These rows with `new` ones, in (ts, tx_row) order, and where the new ones landed."""
        both = {c: np.concatenate((self.columns[c], new[c])) for c in self.columns}
        old_ts, new_ts = self.columns["ts"], new["ts"]
        if (not len(old_ts) or new_ts[0] >= old_ts[-1]) and (len(new_ts) == 1 or (np.diff(new_ts) >= 0).all()):
            # In order already (the usual case: new rows come later, and new tx_rows are larger).
            return both, np.arange(len(old_ts), len(old_ts) + len(new_ts))
        order = np.lexsort((both["tx_row"], both["ts"]))
        sorted_both = {c: v[order] for c, v in both.items()}
        landed = np.empty(len(order), dtype=np.int64)
        landed[order] = np.arange(len(order))
        return sorted_both, landed[len(self.columns["ts"]):]


def _empty(columns: tuple[str, ...], new: dict[str, np.ndarray]) -> _Rows:
    return _Rows({c: new[c][:0] for c in columns})


@dataclass
class _Segments:
    """Several entities' rows (history and new ones, each in (ts, tx_row) order) laid end to end,
    so one NumPy pass serves a whole batch. `at`: where the new rows landed; `start`: the first
    index of each new row's entity; `key`: ts made increasing across entities, so a binary search
    for a time stays inside its entity (each entity's times are offset by its segment's number
    times a stride wider than any time span searched)."""

    rows: dict[str, np.ndarray]
    at: np.ndarray
    start: np.ndarray
    key: np.ndarray
    stride: int

    def search(self, times: np.ndarray, side: str) -> np.ndarray:
        """Index in the rows of `times` (one per new row, in its own entity), as searchsorted."""
        return np.searchsorted(self.key, self.segment_offset + times, side=side)

    @property
    def segment_offset(self) -> np.ndarray:
        return self.key[self.at] - self.rows["ts"][self.at]


def _segments(parts: list[tuple[dict[str, np.ndarray], np.ndarray]], widest_us: int) -> _Segments:
    lengths = np.array([len(rows["ts"]) for rows, _ in parts])
    firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    rows = {c: np.concatenate([r[c] for r, _ in parts]) for c in parts[0][0]}
    at = np.concatenate([first + landed for (_, landed), first in zip(parts, firsts, strict=True)])
    start = np.concatenate([np.full(len(landed), first) for (_, landed), first in zip(parts, firsts, strict=True)])
    ts = rows["ts"]
    low, high = (int(ts.min()), int(ts.max())) if len(ts) else (0, 0)
    stride = high - low + widest_us + 1
    if stride * len(parts) >= 2 ** 62:  # would overflow: the caller goes entity by entity
        raise OverflowError
    key = np.repeat(np.arange(len(parts), dtype=np.int64) * stride, lengths) + (ts - low)
    return _Segments(rows, at, start, key, stride)


def _customer_features(seg: _Segments) -> dict[str, np.ndarray]:
    """The customer-window features of the new rows, over their customers' rows."""
    rows, at, start = seg.rows, seg.at, seg.start
    ts, purchase, lat, lon = rows["ts"], rows["purchase"], rows["lat"], rows["lon"]
    out: dict[str, np.ndarray] = {}
    has_prev = at > start
    prev = np.where(has_prev, at - 1, 0)
    secs = np.where(has_prev, _epoch(ts[at]) - _epoch(ts[prev]), np.nan)
    out["secs_since_prev"] = secs
    out["speed_from_prev_kmh"] = np.where(
        has_prev, _haversine(lat[prev], lon[prev], lat[at], lon[at]) / (np.fmax(secs, 60) / 3600.0), np.nan)
    # ROWS frames: every row of the customer before this one in (ts, tx_row) order.
    sums, counts = _prefix(purchase)
    before_sum, before_count = sums[at] - sums[start], counts[at] - counts[start]
    before_mean = np.where(before_count > 0, before_sum / np.maximum(before_count, 1), np.nan)
    out["cust_history_count"] = (at - start).astype(np.float64)
    out["amount_ratio_customer"] = purchase[at] / np.where(before_mean == 0, np.nan, before_mean)
    stds = np.array([np.std(p[~np.isnan(p)], ddof=1) if (~np.isnan(p)).sum() >= 2 else np.nan
                     for p in (purchase[s:i] for s, i in zip(start, at, strict=True))], dtype=np.float64)
    z = (purchase[at] - before_mean) / np.where(stds == 0, np.nan, stds)
    out["amount_zscore_customer"] = np.where(before_count >= 3, z, np.nan)
    lat_sums, lat_counts = _prefix(lat)
    lon_sums, lon_counts = _prefix(lon)
    n_lat, n_lon = lat_counts[at] - lat_counts[start], lon_counts[at] - lon_counts[start]
    usual_lat = np.where(n_lat > 0, (lat_sums[at] - lat_sums[start]) / np.maximum(n_lat, 1), np.nan)
    usual_lon = np.where(n_lon > 0, (lon_sums[at] - lon_sums[start]) / np.maximum(n_lon, 1), np.nan)
    out["distance_from_usual_km"] = _haversine(usual_lat, usual_lon, lat[at], lon[at])
    for name, column in (("is_new_device", "device_code"), ("is_new_merchant", "merchant_code")):
        codes = rows[column]
        flags = np.full(len(at), np.nan)
        for k, (s, i) in enumerate(zip(start, at, strict=True)):
            if codes[i] >= 0:
                flags[k] = float(i > s and not (codes[s:i] == codes[i]).any())
        out[name] = flags
    # RANGE frames over ts: rows in [ts - window, ts], peers at the same instant included, itself excluded.
    hi = seg.search(ts[at], "right")
    own = ~np.isnan(purchase[at])
    for label, width in CUSTOMER_WINDOWS_US.items():
        lo = seg.search(ts[at] - width, "left")
        total = sums[hi] - sums[lo] - np.where(own, purchase[at], 0.0)
        present = counts[hi] - counts[lo] - own
        out[f"cust_count_{label}"] = (hi - lo - 1).astype(np.float64)
        out[f"cust_mean_amount_{label}"] = np.where(present > 0, total / np.maximum(present, 1), np.nan)
    return out


def _merchant_features(seg: _Segments, delay: int) -> dict[str, np.ndarray]:
    """The merchant-window features of the new rows, over their merchants' rows."""
    rows, at, start = seg.rows, seg.at, seg.start
    ts, purchase, fraud = rows["ts"], rows["purchase"], rows["known_fraud"]
    out: dict[str, np.ndarray] = {}
    sums, counts = _prefix(purchase)
    before_count = counts[at] - counts[start]
    before_mean = np.where(before_count > 0, (sums[at] - sums[start]) / np.maximum(before_count, 1), np.nan)
    out["amount_ratio_merchant"] = purchase[at] / np.where(before_mean == 0, np.nan, before_mean)
    fraud_sums, fraud_counts = _prefix(fraud)
    end = seg.search(ts[at] - delay * DAY_US, "right")  # `delay` days PRECEDING, inclusive

    def frame(days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo = seg.search(ts[at] - (delay + days) * DAY_US, "left")
        return end - lo, fraud_sums[end] - fraud_sums[lo], fraud_counts[end] - fraud_counts[lo]

    rows_in, fraud_in, labelled_in = frame(MERCHANT_RATE_WINDOW_DAYS)
    out["merchant_fraud_rate"] = np.where(labelled_in > 0, fraud_in / np.maximum(labelled_in, 1), np.nan)
    for days in MERCHANT_WINDOWS_DAYS:
        rows_in, fraud_in, _ = frame(days)
        out[f"merch_count_{days}d"] = rows_in.astype(np.float64)
        out[f"merch_fraud_risk_{days}d"] = np.where(rows_in > 0, fraud_in / np.maximum(rows_in, 1), np.nan)
    # The latest confirmed fraud at or before the label delay: the last fraud row before `end`
    # (times ascend within a merchant), if it belongs to this merchant.
    last_fraud = np.maximum.accumulate(np.where(fraud == 1, np.arange(len(ts)), -1))
    latest = last_fraud[np.maximum(end - 1, 0)]
    found = (end > start) & (latest >= start)
    out["merch_days_since_fraud"] = np.where(
        found, (_epoch(ts[at]) - _epoch(ts[np.where(found, latest, 0)])) / 86400.0, np.nan)
    return out


def _row_features(new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    amount = new["amount"]
    stamps = pd.DatetimeIndex(new["ts"].astype("datetime64[us]"))
    hour, dow = stamps.hour.to_numpy(dtype=np.float64), (stamps.day_of_week + 1).to_numpy(dtype=np.float64)
    return {"amount": amount, "log_amount": np.sign(amount) * np.log(1 + np.abs(amount)),
            "is_refund": (amount < 0).astype(np.float64), "hour": hour, "day_of_week": dow,
            "is_weekend": (dow >= 6).astype(np.float64), "is_night": (hour < 6).astype(np.float64)}


CUSTOMER_FEATURES = frozenset({"secs_since_prev", "speed_from_prev_kmh", "cust_history_count", "amount_ratio_customer",
                               "amount_zscore_customer", "distance_from_usual_km", "is_new_device", "is_new_merchant",
                               *(f"cust_{kind}_{w}" for kind in ("count", "mean_amount") for w in CUSTOMER_WINDOWS_US)})
MERCHANT_FEATURES = frozenset({"amount_ratio_merchant", "merchant_fraud_rate", "merch_days_since_fraud",
                               *(f"merch_{kind}_{d}d" for kind in ("count", "fraud_risk") for d in MERCHANT_WINDOWS_DAYS)})
ROW_FEATURES = frozenset({"amount", "log_amount", "is_refund", "hour", "day_of_week", "is_weekend", "is_night"})
SUPPORTED = CUSTOMER_FEATURES | MERCHANT_FEATURES | ROW_FEATURES


@dataclass
class OnlineFeatures:
    """One dataset's history in memory, for one state of its feature set and labels."""

    key: tuple[Any, ...]
    delay: int
    names: list[str]
    customers: dict[str, _Rows] = field(default_factory=dict)
    merchants: dict[str, _Rows] = field(default_factory=dict)
    next_tx_row: int = 0
    rows: int = 0
    id_hashes: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))  # sorted, of stored ids
    vocab: dict[str, dict[str, int]] = field(default_factory=lambda: {c: {} for c in CODED})
    recent_ids: set[str] = field(default_factory=set)  # ids appended since the load

    def may_hold(self, ids: list[str]) -> bool:
        """False when none of `ids` is stored (checked without the database: new ids are the
        common case); True when one might be (a hash match), to be read from the table."""
        if any(i in self.recent_ids for i in ids):
            return True
        hashes = _hash_ids(ids)
        found = np.searchsorted(self.id_hashes, hashes)
        return bool((self.id_hashes[np.minimum(found, len(self.id_hashes) - 1)] == hashes).any()) if len(
            self.id_hashes) else False

    def compute(self, new: dict[str, np.ndarray]) -> pd.DataFrame:
        """Features of `new` rows (arrays as `new_rows` makes them), over the history plus each
        other, in `new`'s order."""
        return pd.DataFrame(self.compute_columns(new))

    def compute_columns(self, new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`compute` as arrays by name (tx_row first), without building a frame: live scoring's
        path, where a frame and reading its columns back cost a millisecond a request."""
        with np.errstate(divide="ignore", invalid="ignore"):  # NaN stands for SQL's NULL throughout
            return self._compute(new)

    def encoded(self, new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`new` with its device and merchant ids as the history's codes (new ids get new codes)."""
        out = dict(new)
        for code, column in CODED.items():
            vocab = self.vocab[code]
            out[code] = np.array([-1 if v is None else vocab.setdefault(v, len(vocab)) for v in new[column].tolist()],
                                 dtype=np.int32)
        return out

    def _compute(self, new: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        new = self.encoded(new)
        n = len(new["tx_row"])
        values: dict[str, np.ndarray] = {name: np.full(n, np.nan) for name in self.names}
        for name, column in _row_features(new).items():
            if name in values:
                values[name] = column
        wanted_customer = [nm for nm in self.names if nm in CUSTOMER_FEATURES]
        wanted_merchant = [nm for nm in self.names if nm in MERCHANT_FEATURES]
        widest_merchant = (self.delay + max(MERCHANT_RATE_WINDOW_DAYS, *MERCHANT_WINDOWS_DAYS)) * DAY_US
        for role, wanted, store, columns, compute, widest in (
            ("customer_id", wanted_customer, self.customers, CUSTOMER_COLUMNS, _customer_features,
             max(CUSTOMER_WINDOWS_US.values())),
            ("merchant_id", wanted_merchant, self.merchants, MERCHANT_COLUMNS,
             lambda seg: _merchant_features(seg, self.delay), widest_merchant),
        ):
            groups = _groups(new[role]) if wanted else []
            if not groups:
                continue
            parts = [(store.get(entity) or _empty(columns, new)).merged({c: new[c][positions] for c in columns})
                     for entity, positions in groups]
            try:
                batches = [(_segments(parts, widest), np.concatenate([p for _, p in groups]))]
            except OverflowError:  # times too far apart to lay every entity end to end: one by one
                batches = [(_segments([part], widest), positions) for part, (_, positions) in zip(parts, groups,
                                                                                                 strict=True)]
            for seg, positions in batches:
                for name, column in compute(seg).items():
                    if name in values:
                        values[name][positions] = column
        return {"tx_row": new["tx_row"], **values}

    def append(self, new: dict[str, np.ndarray]) -> None:
        """Add rows the server has just committed to the history."""
        new = self.encoded(new)
        for role, store, columns in (("customer_id", self.customers, CUSTOMER_COLUMNS),
                                     ("merchant_id", self.merchants, MERCHANT_COLUMNS)):
            for entity, positions in _groups(new[role]):
                part = {c: new[c][positions] for c in columns}
                history = store.get(entity) or _empty(columns, new)
                rows, _ = history.merged(part)
                store[entity] = _Rows(rows)
        self.next_tx_row = max(self.next_tx_row, int(new["tx_row"].max()) + 1)
        self.rows += len(new["tx_row"])
        self.recent_ids.update(new["transaction_id"].tolist())


def _array(column: pd.Series) -> np.ndarray:
    """A loaded column as NumPy: numbers as they are, text as objects with None for NULL."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy()
    return column.to_numpy(dtype=object, na_value=None)


def _hash_ids(ids: Any) -> np.ndarray:
    return pd.util.hash_array(np.asarray(ids, dtype=object))


def _groups(values: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Positions of each non-NULL id (rows without one take no entity's features)."""
    if len(values) == 1:  # one transaction per request: the common case, without factorizing
        return [] if pd.isna(values[0]) else [(values[0], np.zeros(1, dtype=np.intp))]
    present = np.flatnonzero(pd.notna(values))
    if not len(present):
        return []
    codes, uniques = pd.factorize(values[present])
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return [(uniques[codes[chunk[0]]], present[chunk]) for chunk in np.split(order, bounds)]


def history_frame(conn: duckdb.DuckDBPyConnection, dataset: Dataset, reads_labels: bool, delay: int,
                  restrict: str | None = None, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """The rows the features read, as the catalogue's `base` gives them (ts in microseconds)."""
    sql = (f"{base_query(dataset, reads_labels, restrict)} SELECT tx_row, transaction_id, epoch_us(ts) AS ts, amount, purchase, "
           "customer_id, merchant_id, device_id, lat, lon, known_fraud FROM base ORDER BY ts, tx_row")
    frame = conn.execute(sql, {"dataset": dataset.id, **(params or {})}).df()
    for column in ("purchase", "lat", "lon", "known_fraud", "amount"):
        frame[column] = frame[column].astype(np.float64)
    return frame


def load(conn: duckdb.DuckDBPyConnection, dataset: Dataset, feature_set: FeatureSet, key: tuple[Any, ...]) -> OnlineFeatures:
    """Every row's history, grouped by customer and by merchant (one query, then NumPy)."""
    reads_labels = any("labels" in f.needs for f in CATALOGUE if f.name in feature_set.computed)
    delay = int(feature_set.params.get("label_delay_days", 7))
    frame = history_frame(conn, dataset, reads_labels, delay)
    state = OnlineFeatures(key, delay, list(feature_set.computed))
    codes = {}
    for code, column in CODED.items():  # 4 bytes a row instead of a Python string
        values, uniques = pd.factorize(frame[column], use_na_sentinel=True)
        codes[code] = values.astype(np.int32)
        state.vocab[code] = {v: i for i, v in enumerate(uniques.tolist())}
    for role, store, columns in (("customer_id", state.customers, CUSTOMER_COLUMNS),
                                 ("merchant_id", state.merchants, MERCHANT_COLUMNS)):
        arrays = {c: codes[c] if c in CODED else _array(frame[c]) for c in columns}
        for entity, positions in _groups(_array(frame[role])):  # positions ascend: (ts, tx_row) order holds
            store[entity] = _Rows({c: v[positions] for c, v in arrays.items()})
    state.next_tx_row = int(frame["tx_row"].max()) + 1 if len(frame) else 0
    state.id_hashes = np.sort(_hash_ids(frame["transaction_id"].to_numpy()))
    state.rows = len(frame)
    return state


def refresh_labels(conn: duckdb.DuckDBPyConnection, dataset: Dataset, state: OnlineFeatures, key: tuple[Any, ...]) -> None:
    """Read every row's current label again into the merchants' histories (after an analyst's
    label or undo): one narrow query, a fraction of a full load."""
    known = conn.execute(f"{base_query(dataset, True)} SELECT tx_row, known_fraud FROM base",
                         {"dataset": dataset.id}).df()
    by_row = np.full(max(state.next_tx_row, int(known["tx_row"].max()) + 1 if len(known) else 0), np.nan)
    by_row[known["tx_row"].to_numpy()] = known["known_fraud"].to_numpy(dtype=np.float64, na_value=np.nan)
    for rows in state.merchants.values():
        rows.columns["known_fraud"] = by_row[rows.columns["tx_row"]]
    state.key = key


def new_rows(frame: pd.DataFrame, tx_rows: np.ndarray, coordinates: pd.DataFrame | None,
             truth: pd.Series | None) -> dict[str, np.ndarray]:
    """Request rows as the arrays `OnlineFeatures.compute` reads (the catalogue's `base` columns)."""
    n = len(frame)
    amount = frame["amount"].to_numpy(dtype=np.float64)
    out = {"tx_row": np.asarray(tx_rows, dtype=np.int64), "transaction_id": frame["transaction_id"].to_numpy(dtype=object),
           "ts": frame["ts"].to_numpy().astype("datetime64[us]").astype(np.int64),
           "amount": amount, "purchase": np.where(amount >= 0, amount, np.nan)}
    for column in ("customer_id", "merchant_id", "device_id"):
        out[column] = (frame[column].to_numpy(dtype=object, na_value=None) if column in frame.columns
                       else np.full(n, None, dtype=object))
    for column in ("lat", "lon"):
        source = coordinates if coordinates is not None else frame
        out[column] = (source[column].to_numpy(dtype=np.float64, na_value=np.nan) if column in source.columns
                       else np.full(n, np.nan))
    out["known_fraud"] = (np.full(n, np.nan) if truth is None
                          else pd.to_numeric(truth, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    return out
