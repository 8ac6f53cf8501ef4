"""What every page needs before it draws: a database with data in it.

Called by app.py and again by each page, because Streamlit runs a page on its own when a
fresh server's first request is a page URL (its pages/ folder compatibility mode); the
check is one COUNT query.
"""

from __future__ import annotations

import threading

import streamlit as st

from dashboard.connection import get_cursor
from dashboard.progress import progress_status
from data.db import database_path
from data.demo import create_demo, database_is_empty, demo_rows


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
            create_demo(conn, report)
    st.rerun()
