"""How long the Data page takes to show a large dataset in a real browser.

Generates N transactions (default 1,000,000) with features into a fresh database, serves the
app with `streamlit run`, opens the Data page in headless Chromium and times, from navigation
until the row count is on screen: the first load (cold caches) and a reload (warm). Saves a
1280x800 screenshot to docs/screenshots/data-1m.png. Run: `.venv/bin/python -m benchmarks.bench_pages`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from data.db import connect
from data.features import compute_features
from data.synthetic import SyntheticConfig, store_synthetic
from tests.browser import SCREENSHOTS, chromium_page, metric_value, streamlit_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="centinela-pages-") as folder:
        db = Path(folder) / "pages.duckdb"
        conn = connect(db)
        dataset = store_synthetic(conn, "large", SyntheticConfig(rows=args.rows, seed=2))
        compute_features(conn, dataset)
        conn.close()
        with streamlit_server(db) as url, chromium_page() as page:
            timings = []
            for attempt in ("first load (cold)", "reload (warm)"):
                started = time.perf_counter()
                page.goto(f"{url}/?dataset=large") if not timings else page.reload()
                page.get_by_role("heading", name="Features").wait_for(timeout=120_000)
                shown = metric_value(page, "Rows")
                timings.append((attempt, time.perf_counter() - started))
                assert shown == f"{args.rows:,}", shown
            page.wait_for_timeout(500)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "data-1m.png"))
    print(f"rows: {args.rows:,}")
    for label, seconds in timings:
        print(f"Data page {label}: {seconds:.2f} s until the row count and feature catalogue are on screen")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
