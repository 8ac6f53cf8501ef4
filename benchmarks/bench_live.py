"""Live scoring under load, end to end over loopback, with N transactions already stored.

Generates N transactions (default 1,000,000) with features and the default detector (active)
into a fresh database, creates an API key, serves the app as `make run` does (`uvicorn
serve:app`) and measures, over one keep-alive connection each:
- one transaction per request: latency p50 / p95 / p99 (at most --single requests or 60 s);
- batches of 1,000 at the issue's load, --rate transactions per second (default 1,000; each batch
  sent on its schedule, or at once when the last one answered late), for --seconds (default 60;
  bounded by count): the rate reached and the batches' latency;
- while that load runs, the alert queue in headless Chromium: from the menu click on the drawn KPI
  overview to the queue's metrics and table drawn, three visits (first, and the median of the
  next two);
- the capacity: batches sent back to back for --flat-out seconds (default 20).
New transactions reuse stored customers and merchants, timed after the last stored one, in
order. Prints the figures; nothing is asserted. Run: `make bench-live` (`--rows 200000` to try).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from application import datasets, keys, runs
from application.context import Context
from cli.replay import Client, items
from data.db import connect
from data.synthetic import SyntheticConfig
from detectors.base import DEFAULT_DETECTOR
from detectors.runs import default_split
from tests.browser import ADMIN, ADMIN_PASSWORD, admin_env, chromium_page, fresh, live_server

COLUMNS = ("customer_id", "merchant_id", "device_id", "city", "lat", "lon", "channel", "payment_method",
           "merchant_name", "merchant_category", "mcc", "district", "department", "ip_address", "customer_age",
           "account_age_days")


def new_transactions(conn, dataset, n: int, seed: int = 0) -> list[dict]:
    """`n` new transactions: stored rows' customers, merchants and amounts, one second apart after the last."""
    sample = conn.execute(f"SELECT {', '.join(COLUMNS)}, amount FROM {dataset.table} USING SAMPLE {n} ROWS "
                          f"(reservoir, {seed})").df()
    sample = sample.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    start = pd.Timestamp(dataset.max_ts) + pd.Timedelta(seconds=1)
    sample.insert(0, "timestamp", [start + pd.Timedelta(seconds=i) for i in range(len(sample))])
    sample.insert(0, "transaction_id", [f"LIVE{i:09d}" for i in range(len(sample))])
    return items(sample)


def scored_dataset(db: Path, rows: int):
    """A fresh database at `db` with `rows` generated transactions ('large'), features and the
    default detector fitted (active): its connection, a bench context, the dataset and the run."""
    conn = connect(db)
    ctx = Context(conn, "cli:bench")
    dataset = datasets.generate(ctx, "large", SyntheticConfig(rows=rows, seed=2)).dataset
    run = runs.fit(ctx, dataset, [DEFAULT_DETECTOR], train_until=default_split(dataset))
    return conn, ctx, dataset, run


def percentiles(seconds: list[float]) -> dict[str, float]:
    q = np.percentile(np.asarray(seconds) * 1000, [50, 95, 99])
    return {"p50_ms": round(float(q[0]), 2), "p95_ms": round(float(q[1]), 2), "p99_ms": round(float(q[2]), 2)}


def open_queue(page) -> float:
    """Seconds from the menu click to the alert queue's first page, from the KPI overview once it
    is drawn (its Plotly chart included: the first one loads and compiles a 4.7 MB script, which
    would otherwise be timed as the queue's)."""
    page.get_by_role("link", name="KPI overview").click()
    fresh(page, page.get_by_test_id("stMetric").filter(has_text="Amount processed")).wait_for(timeout=120_000)
    fresh(page, page.get_by_test_id("stPlotlyChart").locator(".main-svg")).wait_for(timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=120_000)
    t0 = time.perf_counter()
    page.get_by_role("link", name="Alert queue").click()
    fresh(page, page.get_by_test_id("stMetric").filter(has_text="Alerts matching")).wait_for(timeout=120_000)
    fresh(page, page.get_by_test_id("stDataFrame")).wait_for(timeout=120_000)  # the page of alerts itself
    return time.perf_counter() - t0


def send_batches(client: Client, path: str, batches, seconds: float, *, rate: float | None = None,
                 browser: bool = False, url: str = "") -> dict:
    """Send batches for `seconds` (at `rate` transactions per second, else back to back) from a
    thread; meanwhile, with `browser`, time three visits to the alert queue in Chromium."""
    done: dict[str, list[float]] = {"latency": [], "sent": [0], "seconds": [0.0]}
    stop = threading.Event()

    def load() -> None:
        t_start = time.perf_counter()
        for batch in batches:
            done["seconds"][0] = time.perf_counter() - t_start
            if stop.is_set() or done["seconds"][0] > seconds:
                return
            if rate:  # the batch's place in the schedule; late batches go at once
                delay = t_start + done["sent"][0] / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            t0 = time.perf_counter()
            status, _ = client.post(path, {"transactions": batch})
            done["latency"].append(time.perf_counter() - t0)
            assert status == 200, status
            done["sent"][0] += len(batch)
        done["seconds"][0] = time.perf_counter() - t_start

    sender = threading.Thread(target=load, daemon=True)
    t_start = time.perf_counter()
    sender.start()
    queue: list[float] = []
    if browser:
        with chromium_page() as page:
            page.goto(f"{url}/")
            form = page.get_by_test_id("stForm").filter(has_text="Sign in")
            form.get_by_label("User name").fill(ADMIN)
            form.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
            form.get_by_role("button", name="Sign in").click()
            form.wait_for(state="detached", timeout=120_000)
            for _ in range(3):
                if not sender.is_alive():
                    break
                try:
                    queue.append(open_queue(page))
                except PlaywrightTimeout:  # reported as missing; the load's figures still print
                    queue.append(float("nan"))
    sender.join(timeout=max(0.0, seconds - (time.perf_counter() - t_start)) + 120)
    stop.set()
    sender.join(timeout=120)
    elapsed, sent = done["seconds"][0], done["sent"][0]
    return {"load": {"batches": len(done["latency"]), "transactions": sent, "seconds": round(elapsed, 1),
                     "tx_per_s": round(sent / elapsed, 1), **percentiles(done["latency"] or [0.0])},
            "queue": queue}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--single", type=int, default=1_000, help="one-transaction requests (at most 60 s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long batches of 1,000 are sent")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="transactions per second of the load")
    parser.add_argument("--flat-out", type=float, default=20.0, help="seconds of batches sent back to back")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    max_batches = int((args.seconds + args.flat_out) * 20) + 2  # bounded in count as well as time
    with tempfile.TemporaryDirectory(prefix="centinela-live-") as folder:
        db = Path(folder) / "live.duckdb"
        started = time.perf_counter()
        conn, ctx, dataset, run = scored_dataset(db, args.rows)
        key = keys.create(ctx, "bench", "score,read").secret
        pool = new_transactions(conn, dataset, args.single + max_batches * args.batch)
        conn.close()
        print(f"setup: {args.rows:,} rows generated, features computed, run #{run.id} ({run.detector}) fitted "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        path = "/api/v1/datasets/large/transactions"
        with live_server(db, env=admin_env(), timeout=600) as (url, _):
            client = Client(url, key)
            client.post(path, {"transactions": pool[:1]})  # loads the model: not timed
            latencies, deadline, used = [], time.perf_counter() + 60, 1
            for row in pool[1:args.single + 1]:
                if time.perf_counter() > deadline:
                    break
                t0 = time.perf_counter()
                status, _ = client.post(path, {"transactions": [row]})
                latencies.append(time.perf_counter() - t0)
                assert status == 200, status
                used += 1
            single = {"requests": len(latencies), **percentiles(latencies)}
            print(f"one transaction per request (keep-alive): {json.dumps(single)}", flush=True)

            rest = pool[used:]
            batches = iter([rest[i:i + args.batch] for i in range(0, len(rest), args.batch)][:max_batches])
            paced = send_batches(client, path, batches, args.seconds, rate=args.rate, browser=not args.no_browser,
                                 url=url)
            print(f"batches of {args.batch:,} at {args.rate:,.0f} tx/s (keep-alive): {json.dumps(paced['load'])}",
                  flush=True)
            if paced["queue"]:
                first, *again = paced["queue"]
                print(f"alert queue in Chromium during that load: {first:.2f} s first visit, "
                      f"{float(np.median(again)):.2f} s again (median of {len(again)}), from the menu click to its "
                      "first page", flush=True)
            capacity = send_batches(client, path, batches, args.flat_out)
            print(f"capacity, batches of {args.batch:,} back to back: {json.dumps(capacity['load'])}", flush=True)
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
