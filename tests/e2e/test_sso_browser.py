"""Single sign-on for real: a real OpenID Connect provider (npm's oidc-provider, tests/idp/,
installed by `make test`) on a loopback port, the server started as `make run` starts it with an
`[auth]` section in its secrets, and headless Chromium going through `st.login`, the provider's
sign-in and consent pages and back.

An address mapped in `[centinela.roles]` lands on its role's home page, signed in and audited
(`login`, via sso); a domain mapping does the same; an address that maps to no role is refused
with the app's message, sees no page, and the refusal is audited. A reload stays signed in
(Streamlit's identity cookie); Sign out goes through the provider's end-session page and back to
the app's Sign in.

The secrets come from `$HOME/.streamlit/secrets.toml` (Streamlit reads it besides the project's
`.streamlit/secrets.toml`), so the test points the server's HOME at a temporary folder and leaves
the project's folder alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

from data.audit import audit_log
from data.db import connect
from tests.browser import chromium_page, free_port, live_server, stop_process
from tests.conftest import ROOT

pytestmark = pytest.mark.browser

IDP = ROOT / "tests" / "idp"
NODE = shutil.which("node") or "/usr/bin/node"
CLIENT_ID, CLIENT_SECRET = "centinela", "a test client secret that is long enough"
ROLES = {"analyst@bank.pe": "analyst", "@risk.pe": "data_scientist"}


@contextmanager
def oidc_provider(port: int, app_port: int, log: Path, timeout: float = 60) -> Iterator[str]:
    """tests/idp/provider.mjs on a loopback port; yield its issuer URL once its discovery
    document answers; always stop it."""
    if not (IDP / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError("oidc-provider is not installed: `make test` runs `npm ci --prefix tests/idp`")
    issuer = f"http://127.0.0.1:{port}"
    env = {**os.environ, "IDP_CLIENT_ID": CLIENT_ID, "IDP_CLIENT_SECRET": CLIENT_SECRET}
    process = subprocess.Popen([NODE, str(IDP / "provider.mjs"), str(port), str(app_port)], cwd=IDP, env=env,
                               stdout=log.open("a"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=2) as response:
                    if json.load(response).get("issuer") == issuer:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the OpenID provider did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield issuer
    finally:
        stop_process(process, timeout=10)


def _home_with_secrets(home: Path, issuer: str, app_port: int) -> Path:
    """A HOME holding `.streamlit/secrets.toml` with the provider and the role mapping."""
    roles = "\n".join(f'"{who}" = "{role}"' for who, role in ROLES.items())
    (home / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "secrets.toml").write_text(f"""\
[auth]
redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"
cookie_secret = "a test cookie secret, only for this server"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
server_metadata_url = "{issuer}/.well-known/openid-configuration"

[centinela.roles]
{roles}
""")
    return home


def _sign_in_through_the_provider(page, url: str, issuer: str, email: str) -> None:
    """From the app's Sign in button, through the provider's login and consent pages, back to the app."""
    page.goto(url)
    page.get_by_text("Sign in with your organisation's account").wait_for(timeout=120_000)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{issuer}/interaction/**", timeout=60_000)
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill("any password: the provider's development sign-in takes any")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # the consent page (openid, email, profile)
    page.wait_for_url(f"{url}/**", timeout=60_000)


def _through_the_end_session_page(page, url: str, issuer: str) -> None:
    """After Sign out: the provider asks to confirm, then the app asks to sign in again."""
    page.wait_for_url(f"{issuer}/session/end**", timeout=60_000)
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url(f"{url}/**", timeout=60_000)
    page.get_by_text("Sign in with your organisation's account").wait_for(timeout=120_000)


def test_sso_through_a_real_provider_maps_the_claim_to_a_role_or_refuses(tmp_path):
    db = tmp_path / "sso.duckdb"
    app_port, idp_port = free_port(), free_port()
    with oidc_provider(idp_port, app_port, tmp_path / "idp.log") as issuer:
        home = _home_with_secrets(tmp_path / "home", issuer, app_port)
        env = {"HOME": str(home), "CENTINELA_DEMO_ROWS": "3000"}
        with live_server(db, env=env, port=app_port, timeout=120) as (url, _), chromium_page() as page:
            # An address mapped to a role: the analyst's home, the analyst's menu.
            _sign_in_through_the_provider(page, url, issuer, "analyst@bank.pe")
            page.get_by_role("heading", name="Alert queue").wait_for(timeout=120_000)
            page.get_by_text("Signed in as analyst@bank.pe (Analyst)").wait_for(timeout=60_000)
            sidebar = page.get_by_test_id("stSidebar")
            # The menu is drawn after the page's heading: wait for it before counting what is absent.
            sidebar.get_by_role("link", name="Case", exact=True).wait_for(timeout=60_000)
            assert sidebar.get_by_role("link", name="Case", exact=True).count() == 1
            assert sidebar.get_by_role("link", name="Data", exact=True).count() == 0  # a data scientist's page
            assert urlparse(page.url).path == "/queue"
            # A reload is a new browser session: Streamlit's identity cookie signs it in again
            # (the mapping applied again, audited again), without the provider's pages.
            page.reload()
            page.get_by_role("heading", name="Alert queue").wait_for(timeout=120_000)
            page.get_by_text("Signed in as analyst@bank.pe (Analyst)").wait_for(timeout=60_000)
            # Sign out: Streamlit's cookie goes, and the provider's session with it (its end-session page).
            sidebar.get_by_role("button", name="Sign out").click()
            _through_the_end_session_page(page, url, issuer)
            assert page.get_by_text("Signed in as").count() == 0

            # A whole domain: the data scientist's home. A new browser context starts signed out
            # at the app and at the provider.
            other = page.context.browser.new_context(viewport={"width": 1280, "height": 800})
            other.set_default_timeout(90_000)
            scientist = other.new_page()
            _sign_in_through_the_provider(scientist, url, issuer, "rosa@risk.pe")
            scientist.get_by_role("heading", name="Data").wait_for(timeout=120_000)
            assert urlparse(scientist.url).path == "/data"
            scientist.get_by_text("Signed in as rosa@risk.pe (Data scientist)").wait_for(timeout=60_000)
            scientist_menu = scientist.get_by_test_id("stSidebar")
            scientist_menu.get_by_role("link", name="Data", exact=True).wait_for(timeout=60_000)
            assert scientist_menu.get_by_role("link", name="Alert queue", exact=True).count() == 0
            other.close()

            # An address that maps to no role: the app's message, a Sign out button, no page.
            other = page.context.browser.new_context(viewport={"width": 1280, "height": 800})
            other.set_default_timeout(90_000)
            stranger = other.new_page()
            _sign_in_through_the_provider(stranger, url, issuer, "mallory@elsewhere.pe")
            stranger.get_by_text("mallory@elsewhere.pe has no role in Centinela.").wait_for(timeout=120_000)
            stranger.get_by_role("button", name="Sign out").wait_for()
            assert stranger.get_by_test_id("stSidebar").count() == 0  # no menu, no page
            assert stranger.get_by_text("Signed in as").count() == 0
            assert stranger.get_by_role("heading", name="Alert queue").count() == 0
            stranger.get_by_role("button", name="Sign out").click()  # to try another account
            _through_the_end_session_page(stranger, url, issuer)
            other.close()
    conn = connect(db)
    logins = audit_log(conn, actions=("login", "login_failed", "logout")).iloc[::-1]  # oldest first
    conn.close()
    by_actor = {actor: rows for actor, rows in logins.groupby("actor")}
    assert set(by_actor) == {"analyst@bank.pe", "rosa@risk.pe", "mallory@elsewhere.pe"}
    analyst, scientist = by_actor["analyst@bank.pe"], by_actor["rosa@risk.pe"]
    # Signed in, reloaded (each browser session signs in again), signed out.
    assert list(analyst["action"])[-1] == "logout" and list(analyst["action"])[:-1].count("login") >= 2
    assert set(analyst["action"]) == {"login", "logout"} and set(scientist["action"]) == {"login"}
    for rows, role in ((analyst, "analyst"), (scientist, "data_scientist")):
        signed_in = rows[rows["action"] == "login"]["after"]
        assert all(json.loads(after) == {"role": role, "via": "sso"} for after in signed_in)
    refused = by_actor["mallory@elsewhere.pe"]
    assert set(refused["action"]) == {"login_failed"}
    assert all(json.loads(after) == {"reason": "no role"} for after in refused["after"])
