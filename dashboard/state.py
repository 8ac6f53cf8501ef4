"""The user's current selections. Only selections live in session state; data lives in DuckDB."""

from __future__ import annotations

import duckdb
import streamlit as st

from dashboard.auth import current_user
from data.datasets import Dataset, list_datasets

DATASET_KEY = "active_dataset"
PENDING_KEY = "next_active_dataset"
FLASH_KEY = "flash_messages"


def dataset_selector(conn: duckdb.DuckDBPyConnection) -> Dataset | None:
    """Sidebar picker for the active dataset, remembered in the URL so a reload keeps it."""
    datasets = list_datasets(conn)
    if not datasets:
        st.sidebar.info("No datasets yet.")
        return None
    names = [d.name for d in datasets]
    pending = st.session_state.pop(PENDING_KEY, None)
    wanted = pending or st.session_state.get(DATASET_KEY) or st.query_params.get("dataset")
    if wanted not in names:
        wanted = names[-1]
    st.session_state[DATASET_KEY] = wanted
    chosen = st.sidebar.selectbox("Active dataset", names, key=DATASET_KEY, help="Every page works on this dataset.")
    st.query_params["dataset"] = chosen
    return next(d for d in datasets if d.name == chosen)


def set_active_dataset(name: str) -> None:
    """Make `name` the active dataset from the next run on (after creating or restoring one).

    The selector widget has already been drawn this run, so the choice waits in its own key.
    """
    st.session_state[PENDING_KEY] = name


def flash(kind: str, message: str) -> None:
    """A message to show at the top of the next run (survives the rerun after an action)."""
    st.session_state.setdefault(FLASH_KEY, []).append((kind, message))


def show_flashes() -> None:
    for kind, message in st.session_state.pop(FLASH_KEY, []):
        getattr(st, kind)(message)


def active_dataset(conn: duckdb.DuckDBPyConnection) -> Dataset | None:
    """The active dataset without drawing a widget: the sidebar's choice, else the URL's, else the newest."""
    datasets = list_datasets(conn)
    for name in (st.session_state.get(DATASET_KEY), st.query_params.get("dataset")):
        found = next((d for d in datasets if d.name == name), None)
        if found:
            return found
    return datasets[-1] if datasets else None


def current_analyst() -> str:
    """Who is working: the signed-in user's name (labels and case changes are recorded under it)."""
    user = current_user()
    return user.username if user else ""


FILTERS_KEY = "queue_filters"
FILTERS_VERSION_KEY = "queue_filters_version"


def queue_filters():
    """The alert queue's filters for this session (a `data.alerts.QueueFilters`)."""
    from data.alerts import QueueFilters

    return st.session_state.get(FILTERS_KEY) or QueueFilters()


def set_queue_filters(filters) -> None:
    """Replace the queue's filters (from the queue's form, the patterns page, or Clear).

    The version changes the filter widgets' keys, so they redraw showing the new filters.
    """
    st.session_state[FILTERS_KEY] = filters
    st.session_state[FILTERS_VERSION_KEY] = st.session_state.get(FILTERS_VERSION_KEY, 0) + 1


def queue_filters_version() -> int:
    return st.session_state.get(FILTERS_VERSION_KEY, 0)
