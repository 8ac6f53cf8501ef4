"""The frame every page runs in: app.py's navigation, sidebar and demo data.

Streamlit has a compatibility mode for apps with a pages/ folder: on a fresh server whose
first request is a page URL (say /data), it runs that page alone, and keeps doing so until
app.py runs once. Pages therefore call `page_setup()`, which sends such a request through
app.py; after that, the server stays in st.navigation mode.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import streamlit as st

from dashboard.connection import get_cursor
from dashboard.progress import progress_status
from dashboard.state import active_dataset, show_flashes
from data.datasets import Dataset
from data.db import database_path
from data.demo import create_demo, database_is_empty, demo_rows
from detectors.runs import DEFAULT_DETECTOR, default_split, fit_run


@st.cache_resource(show_spinner=False)
def _demo_lock() -> threading.Lock:
    return threading.Lock()


def ensure_demo_data() -> None:
    """A new database gets the demo dataset first, with progress shown, so every page has data."""
    conn = get_cursor()
    if not database_is_empty(conn):
        return
    with _demo_lock():  # two first visitors must not both generate
        if not database_is_empty(conn):
            return
        st.title("Centinela")
        st.write(f"First start on `{database_path()}`: generating a demo dataset of {demo_rows():,} "
                 "Peruvian transactions. This takes a few seconds, once.")
        with progress_status("Generating demo data") as report:
            dataset = create_demo(conn, lambda f, m: report(f * 0.7, m))
            # The default detector, trained on the first 70% of the period, so Detect has a run.
            fit_run(conn, dataset, [DEFAULT_DETECTOR], train_until=default_split(dataset), created_by="demo",
                    progress=lambda f, m: report(0.7 + f * 0.3, m))
    st.rerun()


_run = threading.local()


@contextmanager
def app_shell() -> Iterator[None]:
    """app.py wraps `navigation.run()` in this, so pages know they run inside it."""
    _run.inside = True
    try:
        yield
    finally:
        _run.inside = False


def page_setup() -> None:
    """First line of every page: make sure the page runs inside app.py."""
    if not getattr(_run, "inside", False):
        st.switch_page("app.py")


def dataset_page(title: str) -> tuple[duckdb.DuckDBPyConnection, Dataset]:
    """The start of a page that works on the active dataset: set-up, title, messages from the last
    run, and, when there is no dataset yet, a pointer to the Data page instead of the page."""
    page_setup()
    conn = get_cursor()
    dataset = active_dataset(conn)
    st.title(title)
    show_flashes()
    if dataset is None:
        st.info("There is no dataset yet. Generate or import one on the Data page.")
        st.stop()
    return conn, dataset
