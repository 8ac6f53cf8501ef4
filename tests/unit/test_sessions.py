"""Server-side sessions: start, use, expiry (idle and absolute, on an injected clock), every way a
session ends, the cookie's signature, the expiry setting, the audit rows, and the two routes that
set and clear the cookie."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from api.sessions import routes
from application import sessions
from application import users as app_users
from application.context import Context
from data.audit import audit_log
from data.errors import InvalidInput, NotFound, UserError
from data.sessions import COOKIE_NAME, sign, token_hash
from tests.conftest import as_user, digest

PASSWORD = "correct horse battery"
START = datetime(2026, 12, 1, 9, 0, 0)


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime = START):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def people(conn):
    app_users.add(as_user(conn, "test"), "boss", PASSWORD, "admin")
    app_users.add(as_user(conn, "test"), "ana", PASSWORD, "analyst")


def at(conn, clock: Clock, actor: str = "server") -> Context:
    return Context(conn, actor, clock=clock)


def _after(entry) -> str:
    return entry["after"] or ""


def test_sign_in_starts_a_session_and_its_cookie_signs_the_browser_in(conn, people, clock):
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD, client="Chromium", address="10.0.0.7")
    assert signed.user.username == "ana" and signed.user.role == "analyst"
    token, _, mac = signed.cookie.partition(".")
    assert len(token) >= 40 and len(mac) == 64
    stored = conn.execute("SELECT token_hash, username, client, address FROM sessions").fetchall()
    assert stored == [(token_hash(token), "ana", "Chromium", "10.0.0.7")]
    assert token not in str(digest(conn)) and signed.cookie not in audit_log(conn).to_csv()  # never the token
    login = audit_log(conn, actions=("login",)).iloc[0]
    assert login["actor"] == "ana" and f'"session": {signed.session_id}' in _after(login)
    checked = sessions.check(at(conn, clock), signed.cookie)
    assert checked.user == signed.user and checked.session_id == signed.session_id


def test_a_wrong_password_starts_no_session(conn, people, clock):
    with pytest.raises(UserError, match="wrong user name or password"):
        sessions.sign_in(at(conn, clock, "ana"), "ana", "not the password")
    assert conn.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 0
    assert list(audit_log(conn, actions=("login_failed",))["target"]) == ["ana"]


def test_tampered_or_foreign_cookies_are_refused(conn, people, clock):
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    token, _, mac = signed.cookie.partition(".")
    other_token = "A" * len(token)
    forged = [
        f"{token}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",  # one character of the signature
        f"{other_token}.{mac}",  # another token under this signature
        sign("not the server's secret", token),  # signed with another key
        token,  # unsigned
        f"{token}.{mac}.extra",
        "",
        "x" * 5000,
    ]
    for cookie in forged:
        checked = sessions.check(at(conn, clock), cookie)
        assert checked.user is None and checked.reason in ("tampered", "missing"), cookie
    assert sessions.check(at(conn, clock), signed.cookie).user is not None  # the real one still works
    # Signed by this server but not a session it started (the database never holds tokens):
    server_secret = conn.execute("SELECT value FROM settings WHERE key = 'session_secret'").fetchall()[0][0].strip('"')
    assert sessions.check(at(conn, clock), sign(server_secret, other_token)).reason == "unknown"


def test_idle_expiry_counts_from_the_last_use(conn, people, clock):
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    for _ in range(5):  # used every 20 minutes for 100 minutes: never idle for 30
        clock.advance(minutes=20)
        assert sessions.check(at(conn, clock), signed.cookie).user is not None
    clock.advance(minutes=30)
    checked = sessions.check(at(conn, clock), signed.cookie)
    assert checked.user is None and checked.reason == "expired_idle"
    assert sessions.check(at(conn, clock), signed.cookie).reason == "expired_idle"  # stays ended
    ended = audit_log(conn, actions=("session_end",))
    assert len(ended) == 1 and '"reason": "expired_idle"' in _after(ended.iloc[0]) and ended.iloc[0]["target"] == "ana"


def test_absolute_expiry_ends_even_a_busy_session(conn, people, clock):
    sessions.set_expiry(at(conn, clock, "boss"), idle_minutes=60, absolute_hours=2)
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    for _ in range(11):
        clock.advance(minutes=10)
        assert sessions.check(at(conn, clock), signed.cookie).user is not None
    clock.advance(minutes=10)  # 2 hours after the start
    assert sessions.check(at(conn, clock), signed.cookie).reason == "expired_absolute"


def test_the_expiry_setting_is_checked_audited_and_applies_to_open_sessions(conn, people, clock):
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    before = digest(conn)
    for idle, absolute in ((0, 12), (30, 0), (60 * 24 + 1, 48), (120, 1), (True, 12)):
        with pytest.raises(InvalidInput):
            sessions.set_expiry(at(conn, clock, "boss"), idle, absolute)
    assert digest(conn) == before
    clock.advance(minutes=10)
    assert sessions.check(at(conn, clock), signed.cookie).user is not None
    sessions.set_expiry(at(conn, clock, "boss"), idle_minutes=5, absolute_hours=12)
    clock.advance(minutes=6)
    assert sessions.check(at(conn, clock), signed.cookie).reason == "expired_idle"
    change = audit_log(conn, actions=("setting_change",)).iloc[0]
    assert change["actor"] == "boss" and '"idle_minutes": 30' in change["before"] and '"idle_minutes": 5' in change["after"]


def test_sign_out_ends_the_session_for_every_tab(conn, people, clock):
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    assert sessions.sign_out(at(conn, clock, "ana"), signed.cookie) == signed.session_id
    assert sessions.check(at(conn, clock), signed.cookie).reason == "sign_out"
    assert sessions.sign_out(at(conn, clock, "ana"), signed.cookie) is None  # once
    logout = audit_log(conn, actions=("logout",))
    assert len(logout) == 1 and logout.iloc[0]["actor"] == "ana"


@pytest.mark.parametrize(("change", "reason"), [
    ({"password": "a brand new password"}, "password_changed"),
    ({"role": "manager"}, "role_changed"),
    ({"disabled": True}, "disabled"),
])
def test_a_change_to_the_user_ends_all_of_its_sessions(conn, people, clock, change, reason):
    first = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    second = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)  # another browser
    boss = sessions.sign_in(at(conn, clock, "boss"), "boss", PASSWORD)
    app_users.change(at(conn, clock, "boss"), "ana", **change)
    for signed in (first, second):
        assert sessions.check(at(conn, clock), signed.cookie).reason == reason
    assert sessions.check(at(conn, clock), boss.cookie).user is not None  # nobody else's
    ended = audit_log(conn, actions=("session_end",))
    assert len(ended) == 2 and set(ended["actor"]) == {"boss"} and set(ended["target"]) == {"ana"}
    assert all(f'"reason": "{reason}"' in _after(e) for _, e in ended.iterrows())


def test_a_change_that_changes_nothing_ends_nothing(conn, people, clock):
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    app_users.change(at(conn, clock, "boss"), "ana", role="analyst", disabled=False)
    assert sessions.check(at(conn, clock), signed.cookie).user is not None


def test_an_admin_ends_a_session(conn, people, clock):
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    listed = sessions.open_sessions(at(conn, clock))
    assert [(row.id, row.username, expired) for row, _, expired in listed] == [(signed.session_id, "ana", None)]
    sessions.end(at(conn, clock, "boss"), signed.session_id)
    assert sessions.check(at(conn, clock), signed.cookie).reason == "ended_by_admin"
    assert sessions.open_sessions(at(conn, clock)) == []
    with pytest.raises(NotFound, match="already ended"):
        sessions.end(at(conn, clock, "boss"), signed.session_id)
    with pytest.raises(NotFound, match="no session 999"):
        sessions.end(at(conn, clock, "boss"), 999)
    entry = audit_log(conn, actions=("session_end",)).iloc[0]
    assert entry["actor"] == "boss" and '"reason": "ended_by_admin"' in _after(entry)


def test_each_page_run_is_activity_written_at_most_every_half_minute(conn, people, clock):
    signed = sessions.sign_in(at(conn, clock, "ana"), "ana", PASSWORD)
    seen = lambda: conn.execute("SELECT last_seen_at FROM sessions").fetchall()[0][0]  # noqa: E731
    clock.advance(seconds=10)
    sessions.check(at(conn, clock), signed.cookie)
    assert seen() == START
    clock.advance(seconds=25)
    sessions.check(at(conn, clock), signed.cookie)
    assert seen() == START + timedelta(seconds=35)


# --- the routes -----------------------------------------------------------------------------


@pytest.fixture
def client(conn, people):
    return TestClient(Starlette(routes=routes), follow_redirects=False)


def test_the_start_route_exchanges_a_one_time_code_for_the_cookie(conn, client):
    signed = sessions.sign_in(as_user(conn, "ana"), "ana", PASSWORD)
    answer = client.get("/session/start", params={"code": signed.handoff, "next": "/queue?dataset=demo"})
    assert answer.status_code == 303 and answer.headers["location"] == "/queue?dataset=demo"
    header = answer.headers["set-cookie"]
    assert header.startswith(f"{COOKIE_NAME}={signed.cookie};")
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/" in header and "Secure" not in header
    assert "Max-Age=43200" in header  # the absolute expiry, 12 hours
    again = client.get("/session/start", params={"code": signed.handoff, "next": "/queue"})
    assert again.status_code == 303 and "set-cookie" not in again.headers  # used once


def test_the_cookie_is_secure_over_https_and_the_routes_refuse_other_sites(conn, people):
    secure = TestClient(Starlette(routes=routes), base_url="https://centinela.bank.pe", follow_redirects=False)
    signed = sessions.sign_in(as_user(conn, "ana"), "ana", PASSWORD)
    assert "Secure" in secure.get("/session/start", params={"code": signed.handoff}).headers["set-cookie"]
    other = sessions.sign_in(as_user(conn, "ana"), "ana", PASSWORD)
    refused = secure.get("/session/start", params={"code": other.handoff}, headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403 and "set-cookie" not in refused.headers


@pytest.mark.parametrize("wanted", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", ""])
def test_the_start_route_only_redirects_within_the_app(conn, client, wanted):
    signed = sessions.sign_in(as_user(conn, "ana"), "ana", PASSWORD)
    answer = client.get("/session/start", params={"code": signed.handoff, "next": wanted})
    assert answer.headers["location"] == "/"


def test_the_end_route_ends_the_session_and_clears_the_cookie(conn, client):
    signed = sessions.sign_in(as_user(conn, "ana"), "ana", PASSWORD)
    client.cookies.set(COOKIE_NAME, signed.cookie)
    answer = client.get("/session/end")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    assert f'{COOKIE_NAME}=""' in answer.headers["set-cookie"] and "Max-Age=0" in answer.headers["set-cookie"]
    assert sessions.check(as_user(conn), signed.cookie).reason == "sign_out"


def test_each_action_is_one_commit(conn, people, clock):
    ctx = at(conn, clock, "ana")
    signed = sessions.sign_in(ctx, "ana", PASSWORD)
    assert ctx.commits == 1  # the session and its login row together
    admin = at(conn, clock, "boss")
    sessions.set_expiry(admin, 20, 6)
    sessions.set_expiry(admin, 25, 6)  # a second change replaces the first
    sessions.end(admin, signed.session_id)
    assert admin.commits == 3 and sessions.expiry(admin).idle_minutes == 25
