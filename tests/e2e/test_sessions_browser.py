"""Sessions in a real browser: the server started as `make run` starts it, headless Chromium.

A reload and a link opened in a new tab stay signed in (the HttpOnly cookie), signing out in one
tab ends the other at its next interaction, and an expired session asks to sign in again.
"""

from __future__ import annotations

import pytest

from data.audit import audit_log
from data.db import connect
from data.sessions import COOKIE_NAME
from tests.browser import ADMIN, admin_env, chromium_page, live_server, sign_in

pytestmark = pytest.mark.browser

ENV = {"CENTINELA_DEMO_ROWS": "3000", **admin_env()}


def _signed_in(page) -> None:
    page.get_by_text(f"Signed in as {ADMIN}").wait_for(timeout=120_000)


def _sign_in_form(page) -> None:
    page.get_by_test_id("stForm").filter(has_text="Sign in").wait_for(timeout=60_000)


def test_reload_and_a_new_tab_stay_signed_in_and_sign_out_ends_the_other_tab(tmp_path):
    db = tmp_path / "sessions.duckdb"
    with live_server(db, env=ENV) as (url, _), chromium_page() as page:
        page.goto(url)
        sign_in(page)
        page.get_by_role("heading", name="Data").wait_for(timeout=120_000)
        _signed_in(page)
        cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE_NAME)
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain http here
        assert COOKIE_NAME not in page.evaluate("document.cookie")  # no script can read it

        page.goto(f"{url}/admin")  # a bookmark
        page.get_by_role("heading", name="Users & audit").wait_for()
        _signed_in(page)
        page.reload()
        page.get_by_role("heading", name="Users & audit").wait_for()
        _signed_in(page)

        other = page.context.new_page()  # a link opened in a new tab
        other.goto(f"{url}/queue")
        other.get_by_role("heading", name="Alert queue").wait_for(timeout=60_000)
        _signed_in(other)

        # Sign out in the first tab; the second is asked to sign in at its next interaction.
        with page.expect_response(lambda r: r.url.endswith("/session/end"), timeout=30_000):
            page.get_by_role("button", name="Sign out").click()  # sends the browser to the route that clears the cookie
        _sign_in_form(page)
        assert not [c for c in page.context.cookies() if c["name"] == COOKIE_NAME]
        other.get_by_role("link", name="Users & audit").click()
        _sign_in_form(other)
        other.get_by_text("This session was signed out").wait_for()
        other.reload()
        _sign_in_form(other)

        # A deep link while signed out: after signing in, that page.
        other.goto(f"{url}/admin")
        sign_in(other)
        other.get_by_role("heading", name="Users & audit").wait_for(timeout=60_000)
        _signed_in(other)
    conn = connect(db)
    log = audit_log(conn, actions=("login", "logout"))
    assert list(log["action"]) == ["login", "logout", "login"] and set(log["actor"]) == {ADMIN}
    assert conn.execute("SELECT count(*) FROM sessions WHERE ended_at IS NULL").fetchall()[0][0] == 1
    conn.close()


def test_an_expired_session_asks_to_sign_in_again(tmp_path):
    db = tmp_path / "expiry.duckdb"
    with chromium_page() as page:
        with live_server(db, env=ENV) as (url, _):
            page.goto(url)
            sign_in(page)
            _signed_in(page)
        # The server is stopped: age the session past its idle expiry (30 minutes) in the file.
        conn = connect(db)
        conn.execute("UPDATE sessions SET last_seen_at = last_seen_at - INTERVAL 31 MINUTE")
        conn.close()
        with live_server(db, env=ENV) as (url, _):  # another port: cookies are per host, not port
            page.goto(f"{url}/data")
            _sign_in_form(page)
            page.get_by_text("Your session expired after 30 minutes without use").wait_for()
            sign_in(page)
            page.get_by_role("heading", name="Data").wait_for(timeout=60_000)
    conn = connect(db)
    ended = audit_log(conn, actions=("session_end",))
    assert len(ended) == 1 and '"reason": "expired_idle"' in ended.iloc[0]["after"]
    conn.close()
