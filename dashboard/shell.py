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
from pathlib import Path

import streamlit as st

from application.context import Context
from application.runs import create_demo
from dashboard.actions import page_context
from dashboard.connection import get_cursor
from dashboard.progress import progress_status
from dashboard.state import active_dataset, show_flashes
from data.datasets import Dataset
from data.db import database_path
from data.demo import database_is_empty, demo_rows

# The browser tab's icon, beside this module (also where the installed wheel puts it).
ICON = Path(__file__).resolve().parent / "centinela.png"


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
            create_demo(Context(conn, "demo", report))
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


def dataset_page(title: str) -> tuple[Context, Dataset]:
    """The start of a page that works on the active dataset: set-up, title, messages from the last
    run, and, when there is no dataset yet, a pointer to the Data page instead of the page.
    Returns the signed-in user's context (for reads; writes go through `dashboard.actions.act`)."""
    page_setup()
    ctx = page_context()
    dataset = active_dataset(ctx.conn)
    st.title(title)
    show_flashes()
    if dataset is None:
        st.info("There is no dataset yet. Generate or import one on the Data page.")
        st.stop()
    return ctx, dataset
