"""Sign-in, roles and the audit trail: the user store, each role's view, each denied page."""

from __future__ import annotations

import pytest

from application import runs as app_runs
from application import users as app_users
from dashboard.auth import USER_KEY
from dashboard.navigation import HOME, PAGES
from data.audit import audit_log
from data.errors import UserError
from data.users import (
    MAX_FAILURES,
    ROLES,
    list_users,
    role_for_identity,
)
from detectors.runs import default_split
from tests.apptest import app, one, texts
from tests.conftest import as_user

PASSWORD = "correct horse battery"
PAGE_ROLES = {page.script: page.roles for page in PAGES}  # the registry: what the server enforces


def test_passwords_are_hashed_and_checked(conn):
    app_users.add(as_user(conn, "test"), "ana", PASSWORD, "analyst")
    stored = conn.execute("SELECT password_hash FROM users WHERE username = 'ana'").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert app_users.sign_in(as_user(conn, "ana"), "ana", PASSWORD).role == "analyst"
    for name, password in (("ana", "wrong password!"), ("nobody", PASSWORD), ("", "")):
        with pytest.raises(UserError, match="wrong user name or password"):  # the same for both: no user probing
            app_users.sign_in(as_user(conn, name), name, password)
    log = audit_log(conn)
    assert list(log["action"])[:4] == ["login_failed"] * 3 + ["login"]
    assert PASSWORD not in log.to_csv()  # never the password itself


def test_repeated_failures_lock_the_name(conn):
    app_users.add(as_user(conn, "test"), "ana", PASSWORD, "analyst")
    for _ in range(MAX_FAILURES):
        with pytest.raises(UserError):
            app_users.sign_in(as_user(conn, "ana"), "ana", "guess guess guess")
    with pytest.raises(UserError, match="too many failed sign-ins"):
        app_users.sign_in(as_user(conn, "ana"), "ana", PASSWORD)  # even the right password, until the window passes


@pytest.mark.parametrize(("name", "password", "role", "message"), [
    ("x y", PASSWORD, "analyst", "not a valid user name"),
    ("'; DROP TABLE users; --", PASSWORD, "analyst", "not a valid user name"),
    ("ana", "short", "analyst", "too short"),
    ("ana", PASSWORD, "root", "role must be one of"),
    ("ANA", PASSWORD, "analyst", "already exists"),
])
def test_bad_users_are_refused_and_nothing_changes(conn, name, password, role, message):
    app_users.add(as_user(conn, "test"), "ana", PASSWORD, "analyst")
    before = list_users(conn)
    with pytest.raises(UserError, match=message):
        app_users.add(as_user(conn, "test"), name, password, role)
    assert list_users(conn).equals(before)


def test_changes_disable_and_the_last_admin(conn):
    app_users.add(as_user(conn, "test"), "boss", PASSWORD, "admin")
    app_users.add(as_user(conn, "boss"), "ana", PASSWORD, "analyst")
    with pytest.raises(UserError, match="last admin"):
        app_users.change(as_user(conn, "boss"), "boss", role="analyst")
    app_users.change(as_user(conn, "boss"), "ana", role="manager", password="a new long password")
    assert app_users.sign_in(as_user(conn, "ana"), "ana", "a new long password").role == "manager"
    app_users.change(as_user(conn, "boss"), "ana", disabled=True)
    with pytest.raises(UserError):
        app_users.sign_in(as_user(conn, "ana"), "ana", "a new long password")
    entry = audit_log(conn, actions=("user_change",)).iloc[-1]
    assert entry["actor"] == "boss" and '"role": "analyst"' in entry["before"] and '"role": "manager"' in entry["after"]
    assert "a new long password" not in audit_log(conn).to_csv()


def test_first_admin_comes_from_the_environment_only(conn, monkeypatch):
    monkeypatch.delenv("CENTINELA_ADMIN_PASSWORD", raising=False)
    assert app_users.first_admin_from_environment(as_user(conn, "environment")) is None and list_users(conn).empty  # no default password
    monkeypatch.setenv("CENTINELA_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("CENTINELA_ADMIN_USER", "root-admin")
    assert app_users.first_admin_from_environment(as_user(conn, "environment")).username == "root-admin"
    assert app_users.first_admin_from_environment(as_user(conn, "environment")) is None  # only ever the first user
    assert app_users.sign_in(as_user(conn, "root-admin"), "root-admin", PASSWORD).is_admin


def test_sso_roles_from_the_mapping():
    mapping = {"Rosa@Bank.pe": "manager", "@bank.pe": "analyst", "x@y.pe": "superuser"}
    assert role_for_identity("rosa@bank.pe", mapping) == "manager"
    assert role_for_identity("luis@bank.pe", mapping) == "analyst"
    assert role_for_identity("eve@evil.pe", mapping) is None
    assert role_for_identity("eve@evil.pe", mapping, default="manager") == "manager"
    assert role_for_identity("x@y.pe", mapping) is None  # an unknown role gives no access
    assert role_for_identity(None, mapping) is None


# --- the app ------------------------------------------------------------------------------

pytestmark_pages = pytest.mark.usefixtures("server_like_navigation")


@pytest.fixture
def fitted(conn, small_dataset):
    app_runs.fit(as_user(conn, "test"), small_dataset, ["isolation_forest"], train_until=default_split(small_dataset))
    return small_dataset


@pytestmark_pages
def test_sign_in_form_then_the_roles_home(conn, fitted):
    app_users.add(as_user(conn, "test"), "luis", PASSWORD, "analyst")
    at = app(role=None)
    at.run()
    assert USER_KEY not in at.session_state and not at.dataframe and not at.metric
    name, password = at.text_input
    name.input("luis")
    password.input("not it at all")
    one(at.button, "Sign in").click()
    at.run()
    assert any("wrong user name or password" in e.value for e in at.error) and USER_KEY not in at.session_state
    name, password = at.text_input
    name.input("luis")
    password.input(PASSWORD)
    one(at.button, "Sign in").click()
    at.run()
    assert at.session_state[USER_KEY].role == "analyst"
    at.switch_page(HOME["analyst"].script).run()
    assert not at.exception and at.title[0].value == "Alert queue"


@pytestmark_pages
def test_no_user_yet_shows_how_to_create_the_first_admin(conn, monkeypatch):
    monkeypatch.delenv("CENTINELA_ADMIN_PASSWORD", raising=False)
    at = app(role=None)
    at.run()
    assert "No user exists yet" in texts(at) and "centinela users add NAME --role admin" in texts(at)
    assert not at.text_input  # no form to guess at


@pytestmark_pages
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", list(PAGE_ROLES))
def test_each_page_checks_the_role_on_the_server(conn, fitted, role, page):
    at = app("tester", role)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    denied = any("does not give access to this page" in e.value for e in at.error)
    assert denied == (role not in PAGE_ROLES[page])
    if denied:  # nothing but the message: no data, no controls
        main = at.main
        assert not main.dataframe and not main.metric and not main.get("plotly_chart") and not main.button
        assert [e.type for e in main] == ["main", "title", "error"]  # the block itself, a title, the message


@pytestmark_pages
@pytest.mark.parametrize("role", ROLES)
def test_the_menu_lists_only_the_roles_pages(conn, fitted, role):
    at = app("tester", role)
    at.run()
    links = {e.proto.label for e in at.get("page_link")}
    expected = {title for script, title in (
        ("pages/data.py", "Data"), ("pages/detect.py", "Detect & tune"), ("pages/models.py", "Models"),
        ("pages/queue.py", "Alert queue"), ("pages/case.py", "Case"), ("pages/patterns.py", "Geo & time"),
        ("pages/overview.py", "KPI overview"), ("pages/admin.py", "Users & audit"), ("pages/rules.py", "Rules"),
        ("pages/lists.py", "Lists")) if role in PAGE_ROLES[script]}
    assert links == expected


@pytestmark_pages
def test_admin_adds_a_user_and_reads_the_audit_trail(conn, fitted):
    at = app("boss", "admin")
    at.run()
    at.switch_page("pages/admin.py").run()
    at.text_input(key="add-name").input("rosa")
    at.selectbox(key="add-role").set_value("manager")
    at.text_input(key="add-password").input(PASSWORD)
    at.text_input(key="add-again").input(PASSWORD)
    one(at.button, "Add user").click()
    at.run()
    assert not at.exception and app_users.sign_in(as_user(conn, "rosa"), "rosa", PASSWORD).role == "manager"
    log = at.dataframe[1].value
    assert {"user_add", "generate", "fit"} <= set(log["action"])  # the fixture generated and fitted
    at.multiselect(key="audit-actions").set_value(["user_add"]).run()
    log = at.dataframe[1].value
    assert list(log["action"]) == ["user_add"] and list(log["actor"]) == ["boss"] and list(log["target"]) == ["rosa"]
    assert any(b.proto.label == "Download the audit trail (CSV)" for b in at.get("download_button"))
