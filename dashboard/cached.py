"""Cached aggregates for pages. A dataset's rows never change once created, so results keyed on
its id and creation time stay valid until it is deleted (and a new one never reuses both)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.connection import get_cursor
from data.datasets import Dataset, get_dataset, label_summary, missing_values, profile


def _dataset(dataset_id: int) -> Dataset:
    return get_dataset(get_cursor(), dataset_id)


@st.cache_data(show_spinner=False, max_entries=32)
def dataset_overview(dataset_id: int, created_at: datetime) -> dict[str, Any]:
    """Missing values, profile and label counts of a dataset: three scans, done once."""
    conn, dataset = get_cursor(), _dataset(dataset_id)
    return {
        "missing": missing_values(conn, dataset),
        "profile": profile(conn, dataset),
        "labels": label_summary(conn, dataset),
    }


def overview_of(dataset: Dataset) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    result = dataset_overview(dataset.id, dataset.created_at)
    return result["missing"], result["profile"], result["labels"]
