"""How long pages take to show a large dataset in a real browser.

Generates N transactions (default 1,000,000) with features and a default detector run into a
fresh database, serves the app with `streamlit run`, and times in headless Chromium:
- the Data page, from signing in until the row count is on screen, cold and on a reload;
- the Detect & tune page's threshold tab, until the alert count is on screen;
- a threshold move: one key press on the contamination slider until the new alert count shows;
- the alert queue until its first page shows, the top case until its SHAP chart shows, the map,
  the KPI overview, the Models page and its drift tab.
Saves 1280x800 screenshots to docs/screenshots/. Run: `make bench-pages`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from data.db import connect
from data.features import compute_features
from data.synthetic import SyntheticConfig, store_synthetic
from detectors.runs import DEFAULT_DETECTOR, default_split, fit_run
from tests.browser import ADMIN, ADMIN_PASSWORD, SCREENSHOTS, admin_env, chromium_page, metric_value, streamlit_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="centinela-pages-") as folder:
        db = Path(folder) / "pages.duckdb"
        conn = connect(db)
        dataset = store_synthetic(conn, "large", SyntheticConfig(rows=args.rows, seed=2))
        compute_features(conn, dataset)
        fit_run(conn, dataset, [DEFAULT_DETECTOR], train_until=default_split(dataset))
        conn.close()
        with streamlit_server(db, env=admin_env()) as url, chromium_page() as page:
            timings = []
            for attempt in ("Data page, first load (cold)", "Data page, reload (warm)"):
                page.goto(f"{url}/data?dataset=large") if not timings else page.reload()
                # A reload is a new session: each load starts at sign-in; timed from its submit.
                form = page.get_by_test_id("stForm").filter(has_text="Sign in")
                form.get_by_label("User name").fill(ADMIN)
                form.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
                started = time.perf_counter()
                form.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Features").wait_for(timeout=120_000)
                shown = metric_value(page, "Rows")
                timings.append((attempt, time.perf_counter() - started))
                assert shown == f"{args.rows:,}", shown
            page.wait_for_timeout(500)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "data-1m.png"))

            started = time.perf_counter()
            page.get_by_role("link", name="Detect & tune").click()
            page.get_by_role("tab", name="Threshold & metrics").click()
            page.get_by_test_id("stMetric").filter(has_text="Alerts").wait_for(timeout=120_000)
            page.get_by_test_id("stPlotlyChart").first.wait_for()
            timings.append(("Detect & tune, threshold tab", time.perf_counter() - started))
            before = metric_value(page, "Alerts")
            slider = page.get_by_role("slider")
            slider.focus()
            started = time.perf_counter()
            slider.press("ArrowRight")
            page.wait_for_function(
                "([before]) => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
                ".find(e => e.innerText.startsWith('Alerts')); return m && !m.innerText.includes(before); }",
                arg=[before], timeout=60_000)
            timings.append(("threshold move (slider key press to new alert count)", time.perf_counter() - started))
            page.wait_for_timeout(1000)
            page.screenshot(path=str(SCREENSHOTS / "detect-1m.png"))

            started = time.perf_counter()
            page.get_by_role("link", name="Alert queue").click()
            page.get_by_test_id("stMetric").filter(has_text="Alerts matching").wait_for(timeout=120_000)
            page.get_by_test_id("stDataFrame").first.wait_for()
            timings.append(("Alert queue, first page of alerts", time.perf_counter() - started))
            page.wait_for_timeout(2000)  # the explainer builds in the background meanwhile
            page.screenshot(path=str(SCREENSHOTS / "queue-1m.png"))
            started = time.perf_counter()
            page.get_by_role("button", name="Open case").click()
            page.get_by_text("red pushes toward suspicious").first.wait_for(timeout=120_000)
            timings.append(("open the top case until its SHAP chart shows", time.perf_counter() - started))
            page.wait_for_timeout(800)
            page.screenshot(path=str(SCREENSHOTS / "case-1m.png"))
            started = time.perf_counter()
            page.get_by_role("link", name="Geo & time").click()
            page.get_by_text("Where alerts happen").wait_for(timeout=120_000)
            timings.append(("Geo & time, map", time.perf_counter() - started))
            page.wait_for_timeout(800)
            page.screenshot(path=str(SCREENSHOTS / "geo-1m.png"))
            started = time.perf_counter()
            page.get_by_role("link", name="KPI overview").click()
            page.get_by_text("Alerts and confirmed fraud per day").wait_for(timeout=120_000)
            page.get_by_test_id("stDataFrame").first.wait_for()
            timings.append(("KPI overview, figures, trend and table", time.perf_counter() - started))
            page.wait_for_timeout(800)
            page.screenshot(path=str(SCREENSHOTS / "kpi-1m.png"))
            started = time.perf_counter()
            page.get_by_role("link", name="Models").click()
            page.get_by_role("heading", name="Version #").wait_for(timeout=120_000)
            timings.append(("Models, registry and the active version", time.perf_counter() - started))
            started = time.perf_counter()
            page.get_by_role("tab", name="Drift").click()
            page.get_by_text("Population stability index").wait_for(timeout=120_000)
            timings.append(("Models, then the Drift tab until its PSI chart shows", time.perf_counter() - started))
    print(f"rows: {args.rows:,}")
    for label, seconds in timings:
        print(f"{label}: {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
