"""Sessions and backups on the pages (AppTest): signing in starts a session that every run checks,
so an admin ending it, or changing the user's password, asks that browser to sign in again at its
next run; Sign out ends it; the admin sets the expiry and takes a backup from Users & audit."""

from __future__ import annotations

import pytest

from application import users as app_users
from dashboard.auth import SESSION_KEY, USER_KEY
from data.audit import audit_log
from tests.apptest import app, one, texts
from tests.conftest import as_user

pytestmark = pytest.mark.usefixtures("server_like_navigation")
PASSWORD = "correct horse battery"


@pytest.fixture
def people(conn, small_dataset):
    app_users.add(as_user(conn, "test"), "boss", PASSWORD, "admin")
    app_users.add(as_user(conn, "test"), "luis", PASSWORD, "analyst")


def _signed_in_as(name: str):
    at = app(role=None)
    at.run()
    user, password = at.text_input
    user.input(name)
    password.input(PASSWORD)
    one(at.button, "Sign in").click()
    at.run()
    assert at.session_state[USER_KEY].username == name and SESSION_KEY in at.session_state
    at.run()
    assert not at.exception and any(name in m.value for m in at.sidebar.markdown)
    return at


def _admin_page():
    at = app("boss", "admin")
    at.run()
    at.switch_page("pages/admin.py").run()
    assert not at.exception, at.exception
    return at


def test_an_admin_ends_a_session_from_users_and_audit(conn, people):
    luis = _signed_in_as("luis")
    admin = _admin_page()
    listed = admin.dataframe[2].value  # users, audit, then sessions
    assert list(listed["user"]) == ["luis"]
    admin.selectbox(key="session-end-id").set_value(int(listed["session"][0]))
    one(admin.button, "End session").click()
    admin.run()
    assert not admin.exception and "that browser is asked to sign in again" in texts(admin)
    luis.run()
    assert USER_KEY not in luis.session_state and "An admin ended your session" in texts(luis)
    assert [b.label for b in luis.button] == ["Sign in"]


def test_a_password_change_on_the_page_signs_the_user_out(conn, people):
    luis = _signed_in_as("luis")
    admin = _admin_page()
    admin.selectbox(key="change-name").set_value("luis")
    admin.text_input(key="change-password").input("another long password")
    one(admin.button, "Save changes").click()
    admin.run()
    assert "Saved the changes to luis" in texts(admin), texts(admin)
    luis.run()
    assert "Your password was changed" in texts(luis)
    ended = audit_log(conn, actions=("session_end",))
    assert list(ended["actor"]) == ["boss"] and '"reason": "password_changed"' in ended.iloc[0]["after"]


def test_sign_out_ends_the_session(conn, people):
    luis = _signed_in_as("luis")
    one(luis.sidebar.button, "Sign out").click()
    luis.run()
    assert USER_KEY not in luis.session_state
    assert conn.execute("SELECT end_reason FROM sessions").fetchall() == [("sign_out",)]
    assert list(audit_log(conn, actions=("logout",))["actor"]) == ["luis"]


def test_the_admin_sets_the_expiry_and_takes_a_backup(conn, people, db_path):
    admin = _admin_page()
    admin.number_input(key="session-idle").set_value(15)
    admin.number_input(key="session-absolute").set_value(8)
    one(admin.button, "Save expiry").click()
    admin.run()
    assert "Sessions now end after 15 minutes unused or 8 hours" in texts(admin)
    one(admin.button, "Back up now").click()
    admin.run()
    assert not admin.exception, admin.exception
    assert "the copy was reopened and its row counts match" in texts(admin)
    (folder,) = (db_path.parent / "backups").iterdir()
    assert (folder / "manifest.json").is_file() and (folder / "centinela.duckdb").is_file()
    assert str(folder) in set(admin.dataframe[-1].value["folder"])
    assert list(audit_log(conn, actions=("backup",))["actor"]) == ["boss"]
