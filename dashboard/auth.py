"""Sign-in and roles for the app. app.py calls `signed_in_user()` before anything else and
`allowed(page, role)` (dashboard.navigation) before running a page: the check happens on the server for every page and
every rerun, whatever URL the browser asked for.

Local users (data.users) are the default. Signing in starts a server-side session
(application.sessions) referenced by a signed `HttpOnly`, `SameSite=Strict` cookie, so a reload,
a bookmark or a link opened in a new tab stays signed in until the session ends (sign-out,
idle or absolute expiry, an admin, a change of the user's password or role, a disabled user).
Every page run checks the session again, so an end takes effect at the browser's next
interaction. The cookie is set by the server's `/session/start` route (api/sessions.py): the
page sends the browser there right after the form succeeds.

When `.streamlit/secrets.toml` configures an OpenID
Connect provider (an `[auth]` section), Streamlit's `st.login` signs people in instead, and
`[centinela.roles]` maps addresses (or "@domain") to roles; an identity with no role sees only
a message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import duckdb
import streamlit as st

from application import sessions, users
from application.context import Context
from dashboard.navigation import PageSpec
from data.errors import UserError
from data.users import ADMIN_PASSWORD_ENV, ADMIN_USER_ENV, ROLE_TITLES, User, has_users

USER_KEY = "signed_in_user"
SESSION_KEY = "signed_in_session"  # the signed cookie value of this browser session's server-side session
BACK_TO_KEY = "sign_in_back_to"  # the page to show after signing in
WHY_ENDED = {
    "expired_idle": "Your session expired after {idle} minutes without use. Sign in again.",
    "expired_absolute": "Your session reached its limit of {absolute} hours. Sign in again.",
    "sign_out": "This session was signed out (in this tab or another). Sign in again.",
    "ended_by_admin": "An admin ended your session. Sign in again.",
    "password_changed": "Your password was changed, which ends every session. Sign in again.",
    "role_changed": "Your role was changed, which ends every session. Sign in again.",
    "disabled": "Your session ended: the account is disabled.",
    "tampered": "The session cookie was not valid. Sign in again.",
}


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


def navigate(url: str) -> None:
    """Send the browser to `url` (a full page load). Streamlit has no public call for this; it is
    the message `st.login` and `st.logout` send (the frontend sets `window.location.href`), so no
    script of ours runs in the page."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    run = get_script_run_ctx()
    if run is not None:
        message = ForwardMsg()
        message.auth_redirect.url = url
        run.enqueue(message)


def _request_info() -> tuple[str | None, str | None]:
    """The browser's user agent and address, as the server saw them (shown to admins)."""
    agent, address = st.context.headers.get("User-Agent"), st.context.ip_address
    return (agent if isinstance(agent, str) else None), (address if isinstance(address, str) else None)


def next_path(url_path: str) -> str:
    """The path and query string of the page asked for, to come back to after signing in."""
    query = urlencode(st.query_params.to_dict())
    return "/" + url_path.strip("/") + (f"?{query}" if query else "")


def _local_sign_in(conn: duckdb.DuckDBPyConnection, back_to: str, ended: str | None) -> None:
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
    # The page asked for on this browser session's first run: the menu rewrites the address to
    # "/" while the sign-in form shows, so later runs no longer know it.
    back_to = st.session_state.setdefault(BACK_TO_KEY, back_to)
    _, middle, _ = st.columns([1, 2, 1])
    if ended in WHY_ENDED:
        rules = sessions.expiry(Context(conn, "server"))
        middle.info(WHY_ENDED[ended].format(idle=rules.idle_minutes, absolute=rules.absolute_hours),
                    icon=":material/schedule:")
    with middle, st.form("sign-in"):
        st.subheader("Sign in")
        name = st.text_input("User name", max_chars=64, autocomplete="username")
        password = st.text_input("Password", type="password", max_chars=1_024, autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
    if submitted:
        client, address = _request_info()
        try:
            signed = sessions.sign_in(Context(conn, name or "(empty)"), name, password, client=client, address=address)
        except UserError as exc:
            middle.error(str(exc))
        else:
            st.session_state[SESSION_KEY] = signed.cookie
            st.session_state[USER_KEY] = signed.user
            # The cookie comes from the server's route; the browser then loads the page it asked for.
            navigate(f"/session/start?code={quote(signed.handoff)}&next={quote(back_to)}")
            middle.info("Signing you in…")
    st.stop()


def _session_user(conn: duckdb.DuckDBPyConnection) -> tuple[User | None, str | None]:
    """The user of this browser's session (from this run's state, else the request's cookie), and
    why there is none when a session was there but is no longer valid."""
    held = st.session_state.get(SESSION_KEY)
    if held is None:
        if current_user() is not None:  # only server code puts a user here without a session (tests do)
            return current_user(), None
        held = st.context.cookies.get(sessions.COOKIE_NAME)
    if not held:
        return None, None
    checked = sessions.check(Context(conn, "server"), held)
    if checked.user is not None:
        st.session_state[SESSION_KEY], st.session_state[USER_KEY] = held, checked.user
        return checked.user, None
    if SESSION_KEY in st.session_state:
        st.session_state.clear()  # the ended session's selections go with it
    return None, checked.reason


def signed_in_user(conn: duckdb.DuckDBPyConnection, back_to: str = "/") -> User:
    """The signed-in user; otherwise draws sign-in and stops the run. `back_to` is the page to
    return to after signing in."""
    if _sso_settings() is not None:
        user = current_user()
        if user is None:
            user = _sso_user(conn)
            st.session_state[USER_KEY] = user
        return user
    user, ended = _session_user(conn)
    if user is not None:
        return user
    users.first_admin_from_environment(Context(conn, "environment"))
    _local_sign_in(conn, back_to, ended)
    raise AssertionError("unreachable: sign-in stops the run")


def sign_out(conn: duckdb.DuckDBPyConnection) -> None:
    """End this browser's session (audited), forget this run's state, clear the cookie."""
    user, held = current_user(), st.session_state.get(SESSION_KEY)
    if held is not None:
        sessions.sign_out(Context(conn, user.username if user else "server"), held)
    elif user is not None:
        users.sign_out(Context(conn, user.username))
    if _sso_settings() is not None:
        st.session_state.clear()
        st.logout()
    else:
        # The browser leaves for /session/end (which clears the cookie), and with it this session's
        # state; clearing every widget's state here instead would rerun the page first and drop
        # the navigation.
        navigate("/session/end")
        for key in (USER_KEY, SESSION_KEY):
            st.session_state.pop(key, None)


def user_box(conn: duckdb.DuckDBPyConnection, user: User) -> None:
    """Who is signed in, as what, and Sign out, in the sidebar."""
    st.sidebar.markdown(f"Signed in as **{user.username}** ({ROLE_TITLES[user.role]})")
    if st.sidebar.button("Sign out", key="sign-out", icon=":material/logout:"):
        sign_out(conn)
        # Both ways end in a message that sends the browser away (to /session/end, or to
        # Streamlit's /auth/logout and the provider's end-session page); a rerun here would drop it.
        st.sidebar.caption("Signing out…")
        st.stop()


def denied(page: PageSpec, user: User) -> None:
    """What a page shows to a role it is not for: a message and nothing else."""
    st.title(page.title)
    st.error(f"Your role ({ROLE_TITLES[user.role]}) does not give access to this page.", icon=":material/block:")
    st.stop()
