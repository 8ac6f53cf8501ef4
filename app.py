"""Centinela: the Streamlit entry point. Run with `make run` (or `streamlit run app.py`)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.connection import get_cursor
from dashboard.shell import app_shell, ensure_demo_data
from dashboard.state import analyst_name, dataset_selector
from data.db import database_path

ROOT = Path(__file__).resolve().parent

# A local icon: a material-symbol icon would be fetched from Google on every page view, and
# many bank networks block that.
st.set_page_config(page_title="Centinela", page_icon=str(ROOT / "dashboard" / "centinela.png"), layout="wide")

ensure_demo_data()
dataset_selector(get_cursor())
analyst_name()
st.sidebar.caption(f"Database: `{database_path()}`")

navigation = st.navigation(
    {
        "Workbench": [
            st.Page("pages/data.py", title="Data", icon=":material/database:", default=True),
            st.Page("pages/detect.py", title="Detect & tune", icon=":material/tune:"),
            st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
        ],
        "Investigate": [
            st.Page("pages/queue.py", title="Alert queue", icon=":material/notifications:"),
            st.Page("pages/case.py", title="Case", icon=":material/search:"),
            st.Page("pages/patterns.py", title="Geo & time", icon=":material/map:"),
        ],
        "Manage": [
            st.Page("pages/overview.py", title="KPI overview", icon=":material/monitoring:"),
        ],
    }
)
with app_shell():
    navigation.run()
