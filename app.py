"""Centinela: the Streamlit entry point. Run with `make run` (or `streamlit run app.py`).

Every run signs the user in first (or shows sign-in and stops), then checks the requested page
against the user's role on the server before running it: the menu only lists a role's pages,
and a page opened by URL without the role shows a message and nothing else. Pages, their
menu sections and roles are declared once, in dashboard.navigation.
"""

from __future__ import annotations

import streamlit as st

from dashboard.auth import denied, next_path, signed_in_user, user_box
from dashboard.connection import get_cursor
from dashboard.navigation import HOME, PAGES, SECTIONS, allowed
from dashboard.shell import ICON, app_shell, ensure_demo_data
from dashboard.state import dataset_selector
from data.db import database_path

# A local icon: a material-symbol icon would be fetched from Google on every page view, and
# many bank networks block that.
st.set_page_config(page_title="Centinela", page_icon=str(ICON), layout="wide")

conn = get_cursor()
pages = {spec.key: st.Page(spec.script, title=spec.title, icon=spec.icon) for spec in PAGES}
# The navigation resolves the requested URL before sign-in, so a page asked for while signed out
# (a bookmark, a link in a new tab) is the page shown after signing in; with a session cookie the
# browser is signed in already (dashboard.auth). "/" goes to the role's home page.
home = st.Page(lambda: None, title="Centinela", url_path="home", default=True)
navigation = st.navigation([home, *pages.values()], position="hidden")
user = signed_in_user(conn, next_path("" if navigation is home else navigation.url_path))
if navigation is home:
    st.switch_page(pages[HOME[user.role].key], query_params=st.query_params.to_dict())  # keep ?dataset=...
ensure_demo_data()

for section in SECTIONS:
    visible = [spec for spec in PAGES if spec.section == section and allowed(spec, user.role)]
    if visible:
        st.sidebar.caption(section)
        for spec in visible:
            st.sidebar.page_link(pages[spec.key])
st.sidebar.divider()
dataset_selector(conn)
user_box(conn, user)
if user.role in ("admin", "data_scientist"):  # where the data lives is for those who manage it
    st.sidebar.caption(f"Database: `{database_path()}`")

# Every page is registered, so a URL always reaches this check; the menu lists only the pages
# the role may open.
spec = next(s for s in PAGES if pages[s.key] is navigation or pages[s.key].title == navigation.title)
with app_shell():
    if not allowed(spec, user.role):
        denied(spec, user)
    navigation.run()
