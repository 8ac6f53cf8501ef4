"""Centinela: the Streamlit entry point. Run with `make run` (or `streamlit run app.py`).

Every run signs the user in first (or shows sign-in and stops), then checks the requested page
against the user's role on the server before running it: the menu only lists a role's pages,
and a page opened by URL without the role shows a message and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.auth import HOME, allowed, denied, signed_in_user, user_box
from dashboard.connection import get_cursor
from dashboard.shell import app_shell, ensure_demo_data
from dashboard.state import dataset_selector
from data.db import database_path

ROOT = Path(__file__).resolve().parent
# (script, title, icon) per menu section; who may open each is dashboard.auth.PAGE_ROLES.
SECTIONS = {
    "Workbench": [("pages/data.py", "Data", ":material/database:"),
                  ("pages/detect.py", "Detect & tune", ":material/tune:"),
                  ("pages/models.py", "Models", ":material/model_training:")],
    "Investigate": [("pages/queue.py", "Alert queue", ":material/notifications:"),
                    ("pages/case.py", "Case", ":material/search:"),
                    ("pages/patterns.py", "Geo & time", ":material/map:")],
    "Manage": [("pages/overview.py", "KPI overview", ":material/monitoring:"),
               ("pages/admin.py", "Users & audit", ":material/admin_panel_settings:")],
}

# A local icon: a material-symbol icon would be fetched from Google on every page view, and
# many bank networks block that.
st.set_page_config(page_title="Centinela", page_icon=str(ROOT / "dashboard" / "centinela.png"), layout="wide")

conn = get_cursor()
pages = {script: st.Page(script, title=title, icon=icon)
         for section in SECTIONS.values() for script, title, icon in section}
# The navigation resolves the requested URL before sign-in, so a page asked for while signed out
# (a bookmark, a reload) is the page shown after signing in. "/" goes to the role's home page.
home = st.Page(lambda: None, title="Centinela", url_path="home", default=True)
navigation = st.navigation([home, *pages.values()], position="hidden")
user = signed_in_user(conn)
if navigation is home:
    st.switch_page(pages[HOME[user.role]], query_params=st.query_params.to_dict())  # keep ?dataset=...
ensure_demo_data()

for section, entries in SECTIONS.items():
    visible = [script for script, _, _ in entries if allowed(script, user)]
    if visible:
        st.sidebar.caption(section)
        for script in visible:
            st.sidebar.page_link(pages[script])
st.sidebar.divider()
dataset_selector(conn)
user_box(conn, user)
if user.role in ("admin", "data_scientist"):  # where the data lives is for those who manage it
    st.sidebar.caption(f"Database: `{database_path()}`")

# Every page is registered, so a URL always reaches this check; the menu lists only the pages
# the role may open.
script = next(s for s, page in pages.items() if page is navigation or page.title == navigation.title)
with app_shell():
    if not allowed(script, user):
        denied(navigation.title, user)
    navigation.run()
