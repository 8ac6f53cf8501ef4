"""Median imputation, as scikit-learn's SimpleImputer does it, at the speed of `np.nanmedian`.

SimpleImputer(strategy="median") finds each column's median with `np.ma.median`, a full masked
sort: 8.6 s of a 30 s default fit at 1M rows (measured with cProfile, 2 cores). `np.nanmedian`
partitions instead and gives the same numbers (the middle value, or the mean of the two middle
values, of the observed ones). Everything else — validation, the fitted attributes, transform,
get_feature_names_out, keep_empty_features — is SimpleImputer's own.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.utils._mask import _get_mask
from sklearn.utils._missing import is_scalar_nan


class MedianImputer(SimpleImputer):
    """SimpleImputer with strategy="median" (missing values: NaN); same statistics, faster fit."""

    def __init__(self, *, keep_empty_features: bool = False):
        super().__init__(strategy="median", keep_empty_features=keep_empty_features)

    def _dense_fit(self, X, strategy, missing_values, fill_value):  # SimpleImputer's own signature
        if strategy != "median" or not is_scalar_nan(missing_values):
            return super()._dense_fit(X, strategy, missing_values, fill_value)
        self._fit_indicator(_get_mask(X, missing_values))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": an empty column, handled below
            median = np.nanmedian(X, axis=0)
        median[np.isnan(median)] = 0 if self.keep_empty_features else np.nan
        return median
