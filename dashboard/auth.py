"""Sign-in and roles for the app. app.py calls `signed_in_user()` before anything else and
`allowed(page, role)` (dashboard.navigation) before running a page: the check happens on the server for every page and
every rerun, whatever URL the browser asked for.

Local users (data.users) are the default. When `.streamlit/secrets.toml` configures an OpenID
Connect provider (an `[auth]` section), Streamlit's `st.login` signs people in instead, and
`[centinela.roles]` maps addresses (or "@domain") to roles; an identity with no role sees only
a message.
"""

from __future__ import annotations

from typing import Any

import duckdb
import streamlit as st

from application import users
from application.context import Context
from dashboard.navigation import PageSpec
from data.errors import UserError
from data.users import ADMIN_PASSWORD_ENV, ADMIN_USER_ENV, ROLE_TITLES, User, has_users

USER_KEY = "signed_in_user"


def current_user() -> User | None:
    return st.session_state.get(USER_KEY)


def _sso_settings() -> dict[str, Any] | None:
    """The `[auth]` section of secrets.toml, or None when SSO is not configured."""
    try:
        return dict(st.secrets["auth"]) if "auth" in st.secrets else None
    except (FileNotFoundError, KeyError, st.errors.StreamlitSecretNotFoundError):
        return None


def _sso_user(conn: duckdb.DuckDBPyConnection) -> User:
    if not st.user.is_logged_in:
        st.title("Centinela")
        st.write("Sign in with your organisation's account to continue.")
        st.button("Sign in", type="primary", on_click=st.login, icon=":material/login:")
        st.stop()
    email = str(st.user.get("email") or "")
    settings = st.secrets.get("centinela", {})
    try:
        return users.sso_sign_in(Context(conn, email or "(no email)"), email, dict(settings.get("roles", {})),
                                 settings.get("default_role"))
    except UserError as exc:
        st.title("Centinela")
        st.error(str(exc))
        st.button("Sign out", on_click=st.logout)
        st.stop()
    raise AssertionError("unreachable: st.stop() ends the run")


def _local_sign_in(conn: duckdb.DuckDBPyConnection) -> None:
    """The sign-in form (or, before the first user exists, how to create one); stops the run."""
    st.title("Centinela")
    if not has_users(conn):
        st.warning("No user exists yet, so nobody can sign in.", icon=":material/lock:")
        st.markdown(
            "Create the first admin, then reload this page:\n"
            f"- set `{ADMIN_PASSWORD_ENV}` (and optionally `{ADMIN_USER_ENV}`, default `admin`) in the app's "
            "environment and restart it; or\n"
            "- stop the app and run `centinela users add NAME --role admin` (it asks for the password).\n\n"
            "There is no default password.")
        st.stop()
    _, middle, _ = st.columns([1, 2, 1])
    with middle, st.form("sign-in"):
        st.subheader("Sign in")
        name = st.text_input("User name", max_chars=64, autocomplete="username")
        password = st.text_input("Password", type="password", max_chars=1_024, autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if submitted:
        try:
            user = users.sign_in(Context(conn, name or "(empty)"), name, password)
        except UserError as exc:
            middle.error(str(exc))
        else:
            st.session_state[USER_KEY] = user
            st.rerun()
    st.stop()


def signed_in_user(conn: duckdb.DuckDBPyConnection) -> User:
    """The signed-in user; otherwise draws sign-in and stops the run."""
    user = current_user()
    if user is not None:
        return user
    if _sso_settings() is not None:
        user = _sso_user(conn)
        st.session_state[USER_KEY] = user
        return user
    users.first_admin_from_environment(Context(conn, "environment"))
    _local_sign_in(conn)
    raise AssertionError("unreachable: sign-in stops the run")


def sign_out(conn: duckdb.DuckDBPyConnection) -> None:
    user = current_user()
    if user is not None:
        users.sign_out(Context(conn, user.username))
    st.session_state.clear()
    if _sso_settings() is not None:
        st.logout()


def user_box(conn: duckdb.DuckDBPyConnection, user: User) -> None:
    """Who is signed in, as what, and Sign out, in the sidebar."""
    st.sidebar.markdown(f"Signed in as **{user.username}** ({ROLE_TITLES[user.role]})")
    if st.sidebar.button("Sign out", key="sign-out", icon=":material/logout:"):
        sign_out(conn)
        st.rerun()


def denied(page: PageSpec, user: User) -> None:
    """What a page shows to a role it is not for: a message and nothing else."""
    st.title(page.title)
    st.error(f"Your role ({ROLE_TITLES[user.role]}) does not give access to this page.", icon=":material/block:")
    st.stop()
