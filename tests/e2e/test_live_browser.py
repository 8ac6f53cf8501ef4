"""In Chromium: an analyst has the alert queue open while `centinela replay` streams 500
transactions into the same server's API; new alerts appear on the page without a reload."""

from __future__ import annotations

import re

import pytest

from application import users
from application.context import Context
from data.db import connect
from tests.browser import SCREENSHOTS, admin_env, chromium_page, live_server, metric_value, sign_in
from tests.conftest import run_cli
from tests.live import DATASET, prepare

pytestmark = pytest.mark.browser


def _count(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def test_the_queue_shows_alerts_arriving_through_the_api_without_a_reload(tmp_path):
    db = tmp_path / "centinela.duckdb"
    conn = connect(db)
    setup = prepare(conn, tmp_path, rows=6_000, days=30, live_days=6)
    users.add(Context(conn, "cli:test"), "ana", "a long test password", "admin")
    conn.close()
    with live_server(db, env=admin_env()) as (url, _), chromium_page() as page:
        page.goto(f"{url}/queue?dataset={DATASET}")
        sign_in(page)
        page.get_by_role("link", name="Alert queue").click()
        page.get_by_test_id("stMetric").filter(has_text="Alerts matching").first.wait_for()
        before = _count(metric_value(page, "Alerts matching"))
        replayed = run_cli("replay", str(setup.live_file), "--dataset", DATASET, "--url", url, "--key",
                           setup.keys["scorer"], "--limit", "500", "--batch", "25", "--rate", "250", "--json",
                           "--max-seconds", "120", db=db)
        assert replayed.returncode == 0, replayed.stderr
        # No reload, no click: the page's live fragment notices and refreshes within seconds.
        page.get_by_text(re.compile(r"new alerts? arrived through the API")).wait_for(timeout=60_000)
        page.wait_for_function(
            """([before]) => [...document.querySelectorAll('[data-testid="stMetric"]')]
                 .filter(m => m.innerText.includes('Alerts matching'))
                 .some(m => parseInt(m.querySelector('[data-testid="stMetricValue"]').innerText.replace(/\\D/g, '')) > before)""",
            arg=[before], timeout=60_000)
        assert _count(metric_value(page, "Alerts matching")) > before
        page.wait_for_timeout(500)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "live.png"))
