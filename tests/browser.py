"""Helpers for end-to-end tests: the real server, started as `make run` starts it, and headless Debian Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium from reaching for the network at start-up (none is reachable here).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(db: Path, env: dict[str, str] | None = None, timeout: float = 90) -> Iterator[str]:
    """The server as `make run` starts it (pages and API in one process); yield its URL."""
    with live_server(db, env=env, timeout=timeout) as (url, _):
        yield url


@contextmanager
def live_server(db: Path, env: dict[str, str] | None = None, timeout: float = 90,
                port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the server the way `make run` does (`uvicorn serve:app`: the pages and the HTTP API in
    one process) on a loopback port; yield its URL and process; stop it afterwards."""
    port = port or free_port()
    log = db.parent / f"server-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serve:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, stdout=log.open("a"), stderr=subprocess.STDOUT,
        # No STREAMLIT_* overrides: headless, no file watcher and no usage stats come from
        # .streamlit/config.toml, as under `make run` (tests/e2e/test_production_defaults.py).
        env={**os.environ, "PYTHONPATH": str(ROOT), "CENTINELA_DB": str(db), **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, process
    finally:
        stop_process(process, timeout=20)


def wait_until(condition, seconds: float, what: str) -> None:
    """Poll `condition` every 0.2 s; fail, naming `what`, after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """Terminate a server a test started (if it still runs), killing it after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def chromium_page(width: int = 1280, height: int = 800):
    """A Playwright page in headless Debian Chromium (Playwright cannot download its own here)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})  # page.context.new_page(): a tab
            context.set_default_timeout(90_000)
            page = context.new_page()
            yield page
        finally:
            browser.close()


def fresh(page, element):
    """`element` as drawn by the current script run. A page left behind stays in the DOM, marked
    stale, until the next run's elements replace it: a plain locator may find the old one."""
    return page.locator('[data-testid="stElementContainer"][data-stale="false"]').filter(has=element).first


def metric_value(page, label: str) -> str:
    """The value of the st.metric with this label."""
    metric = page.get_by_test_id("stMetric").filter(has_text=label).first
    return metric.get_by_test_id("stMetricValue").inner_text().strip()


# The admin every browser test's server starts with (created from the environment on first start).
ADMIN, ADMIN_PASSWORD = "ana", "a long test password"


def admin_env(user: str = ADMIN, password: str = ADMIN_PASSWORD) -> dict[str, str]:
    return {"CENTINELA_ADMIN_USER": user, "CENTINELA_ADMIN_PASSWORD": password}


def sign_in(page, user: str = ADMIN, password: str = ADMIN_PASSWORD, attempts: int = 3) -> None:
    """Fill in and submit the sign-in form (a new browser session starts signed out). Once, in a
    full suite on two busy cores, a submit right after a navigation was not acted on and the form
    stayed for 90 s; as a user would, the form is filled in and submitted again after 30 s."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    form = page.get_by_test_id("stForm").filter(has_text="Sign in")
    for attempt in range(attempts):
        form.get_by_label("User name").fill(user)
        form.get_by_label("Password", exact=True).fill(password)
        form.get_by_role("button", name="Sign in").click()
        try:
            form.wait_for(state="detached", timeout=30_000)
            return
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise


def download(page, button: str, attempts: int = 3) -> Path:
    """Click a download button and return the downloaded file. In a full suite on two busy cores a
    click that landed during another rerun was once lost, so, as a user would, the button is clicked
    again after 30 s (`attempts=1` where a test checks that every click downloads)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    for attempt in range(attempts):
        try:
            with page.expect_download(timeout=30_000) as started:
                page.get_by_role("button", name=button).click()
            return Path(started.value.path())
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def pick_option(page, combobox, name: str, attempts: int = 10) -> None:
    """Open a select box and click its option `name`. A rerun that lands while the list is open
    redraws the widget closed (seen in a full suite), so it is opened until the option shows."""
    option = page.get_by_role("option", name=name, exact=True)
    for _ in range(attempts):
        if not option.is_visible():
            combobox.click()
        try:
            option.wait_for(timeout=3_000)
            option.click(timeout=3_000)
            return
        except Exception:  # closed again by a rerun: open it once more
            page.wait_for_timeout(500)
    raise AssertionError(f"option {name!r} never showed")
