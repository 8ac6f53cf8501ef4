"""The page registry: every page's script, title, icon, menu section, the roles that may open
it and the roles it is home to, declared once. app.py builds the menu and the navigation from
it, the role check reads it, `/` sends each role to its home, and links name pages by key."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from data.users import ROLES


@dataclass(frozen=True)
class PageSpec:
    key: str
    script: str
    title: str
    icon: str
    section: str
    roles: tuple[str, ...]  # who may open it; admins open every page
    home_for: tuple[str, ...] = ()  # roles that land here after signing in


PAGES: tuple[PageSpec, ...] = (
    PageSpec("data", "pages/data.py", "Data", ":material/database:", "Workbench", ("data_scientist", "admin"),
             home_for=("data_scientist", "admin")),
    PageSpec("detect", "pages/detect.py", "Detect & tune", ":material/tune:", "Workbench", ("data_scientist", "admin")),
    PageSpec("models", "pages/models.py", "Models", ":material/model_training:", "Workbench", ("data_scientist", "admin")),
    PageSpec("rules", "pages/rules.py", "Rules", ":material/rule:", "Workbench", ("analyst", "data_scientist", "admin")),
    PageSpec("lists", "pages/lists.py", "Lists", ":material/playlist_add_check:", "Workbench",
             ("analyst", "data_scientist", "admin")),
    PageSpec("queue", "pages/queue.py", "Alert queue", ":material/notifications:", "Investigate", ("analyst", "admin"),
             home_for=("analyst",)),
    PageSpec("case", "pages/case.py", "Case", ":material/search:", "Investigate", ("analyst", "admin")),
    PageSpec("patterns", "pages/patterns.py", "Geo & time", ":material/map:", "Investigate", ("analyst", "admin")),
    PageSpec("overview", "pages/overview.py", "KPI overview", ":material/monitoring:", "Manage", ("manager", "admin"),
             home_for=("manager",)),
    PageSpec("admin", "pages/admin.py", "Users & audit", ":material/admin_panel_settings:", "Manage", ("admin",)),
)
PAGE = {p.key: p for p in PAGES}
BY_SCRIPT = {p.script: p for p in PAGES}
SECTIONS = tuple(dict.fromkeys(p.section for p in PAGES))
HOME = {role: next(p for p in PAGES if role in p.home_for) for role in ROLES}


def allowed(page: PageSpec, role: str) -> bool:
    return role in page.roles


def page_link(key: str, label: str | None = None, icon: str | None = None) -> None:
    """A link to a registered page (its title and icon unless given)."""
    page = PAGE[key]
    st.page_link(page.script, label=label or page.title, icon=icon or page.icon)


def switch_to(key: str, **query_params: str) -> None:
    st.switch_page(PAGE[key].script, query_params=query_params or None)
