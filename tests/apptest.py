"""AppTest helpers shared by the page tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent

TIMEOUT = 120


@pytest.fixture
def server_like_navigation(monkeypatch):
    """Run app.py on every AppTest run, as a warm `streamlit run` server does.

    AppTest resets Streamlit's pages/-folder detection before each run, so with a pages/
    folder beside app.py its reruns would execute the page alone; a server clears that flag
    for good the first time st.navigation runs. The cold-server path is tested in the browser.
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


def app(user: str = "ana", role: str = "admin") -> AppTest:
    """app.py with a session signed in as `user` with `role` (role=None: not signed in).

    The signed-in user lives in server-side session state, which a browser cannot set; the
    sign-in form itself is tested in tests/test_auth.py and in the browser.
    """
    from dashboard.auth import USER_KEY
    from data.users import User

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    if role is not None:
        at.session_state[USER_KEY] = User(user, role)
    return at


def page(path: str, role: str = "admin", **query: str) -> AppTest:
    """app.py signed in with `role`, with these query parameters, switched to the page `path`; no exception."""
    at = app(role=role)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def pick_server_file(at: AppTest, path: Path, monkeypatch) -> None:
    """On the Data page, choose `path` as *A path on this server*: its folder is made the import
    folder ($CENTINELA_IMPORT_DIR), the only place the page reads server files from."""
    monkeypatch.setenv("CENTINELA_IMPORT_DIR", str(path.parent))
    one(at.radio, "Source").set_value("A path on this server")
    at.run()
    at.selectbox(key="import-server-file").set_value(path.name)


def open_queue_filters(at: AppTest) -> AppTest:
    """Open the alert queue's Filters expander, as an analyst's click does (it reruns the page:
    the form is drawn only while the expander is open)."""
    def pickers() -> list:
        return [m for m in at.multiselect if (m.key or "").startswith("qf-")]

    assert not pickers(), "the filters' pickers are drawn while the expander is closed"
    at.session_state["queue-filters-open"] = True
    at.run()
    assert not at.exception, at.exception
    assert pickers(), "the filters' pickers are not drawn once the expander is open"
    return at


def one(elements, label: str):
    found = [e for e in elements if e.label == label]
    assert len(found) == 1, f"{label!r} among {[e.label for e in elements]}"
    return found[0]


def metric(at: AppTest, label: str) -> str:
    return one(at.metric, label).value


def texts(at: AppTest) -> str:
    parts = [e.value for kind in (at.success, at.info, at.error, at.warning, at.markdown, at.caption) for e in kind]
    return "\n".join(str(p) for p in parts)


