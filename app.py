"""Centinela: the Streamlit entry point. Run with `make run` (or `streamlit run app.py`)."""

from __future__ import annotations

import streamlit as st

from dashboard.connection import get_cursor
from dashboard.shell import app_shell, ensure_demo_data
from dashboard.state import dataset_selector
from data.db import database_path

st.set_page_config(page_title="Centinela", page_icon=":material/shield:", layout="wide")

ensure_demo_data()
dataset_selector(get_cursor())
st.sidebar.caption(f"Database: `{database_path()}`")

navigation = st.navigation(
    {
        "Workbench": [
            st.Page("pages/data.py", title="Data", icon=":material/database:", default=True),
            st.Page("pages/detect.py", title="Detect & tune", icon=":material/tune:"),
        ],
    }
)
with app_shell():
    navigation.run()
