"""Centinela: the Streamlit entry point. Run with `make run` (or `streamlit run app.py`)."""

from __future__ import annotations

import threading

import streamlit as st

from dashboard.connection import get_cursor
from dashboard.progress import progress_status
from dashboard.state import dataset_selector
from data.db import database_path
from data.demo import create_demo, database_is_empty, demo_rows

st.set_page_config(page_title="Centinela", page_icon=":material/shield:", layout="wide")


@st.cache_resource(show_spinner=False)
def _demo_lock() -> threading.Lock:
    return threading.Lock()


def _ensure_demo_data() -> None:
    """A new database gets a demo dataset before anything else, so every page has data."""
    conn = get_cursor()
    if not database_is_empty(conn):
        return
    with _demo_lock():  # two first visitors must not both generate
        if not database_is_empty(conn):
            return
        st.title("Centinela")
        st.write(f"First start on `{database_path()}`: generating a demo dataset of {demo_rows():,} Peruvian transactions.")
        with progress_status("Generating demo data") as report:
            create_demo(conn, report)
    st.rerun()


_ensure_demo_data()
dataset_selector(get_cursor())
st.sidebar.caption(f"Database: `{database_path()}`")

navigation = st.navigation(
    {
        "Workbench": [
            st.Page("pages/data.py", title="Data", icon=":material/database:", default=True),
        ],
    }
)
navigation.run()
