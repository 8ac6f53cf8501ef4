"""Live scoring under load, end to end over loopback, with N transactions already stored.

Generates N transactions (default 1,000,000) with features and the default detector (active)
into a fresh database, creates an API key, serves the app as `make run` does (`uvicorn
serve:app`) and measures, over one keep-alive connection each:
- one transaction per request: latency p50 / p95 / p99 (at most --single requests or 60 s);
- batches of 1,000: sustained transactions per second for --seconds (default 60; bounded by count);
- while batches are sent, the alert queue in headless Chromium: sign-in to the first page shown.
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

from application import datasets, keys, runs
from application.context import Context
from cli.replay import Client, items
from data.db import connect
from data.synthetic import SyntheticConfig
from detectors.base import DEFAULT_DETECTOR
from detectors.runs import default_split
from tests.browser import ADMIN, ADMIN_PASSWORD, admin_env, chromium_page, live_server

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


def percentiles(seconds: list[float]) -> dict[str, float]:
    q = np.percentile(np.asarray(seconds) * 1000, [50, 95, 99])
    return {"p50_ms": round(float(q[0]), 2), "p95_ms": round(float(q[1]), 2), "p99_ms": round(float(q[2]), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--single", type=int, default=1_000, help="one-transaction requests (at most 60 s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long batches of 1,000 are sent")
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    max_batches = int(args.seconds * 20) + 1  # bounded in count as well as time
    with tempfile.TemporaryDirectory(prefix="centinela-live-") as folder:
        db = Path(folder) / "live.duckdb"
        conn = connect(db)
        ctx = Context(conn, "cli:bench")
        started = time.perf_counter()
        dataset = datasets.generate(ctx, "large", SyntheticConfig(rows=args.rows, seed=2)).dataset
        run = runs.fit(ctx, dataset, [DEFAULT_DETECTOR], train_until=default_split(dataset))
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
            batches = [rest[i:i + args.batch] for i in range(0, len(rest), args.batch)][:max_batches]
            done: dict[str, list[float]] = {"latency": [], "sent": [0]}
            stop = threading.Event()

            def load() -> None:
                for batch in batches:
                    if stop.is_set():
                        return
                    t0 = time.perf_counter()
                    status, _ = client.post(path, {"transactions": batch})
                    done["latency"].append(time.perf_counter() - t0)
                    assert status == 200, status
                    done["sent"][0] += len(batch)

            sender = threading.Thread(target=load, daemon=True)
            t_start = time.perf_counter()
            sender.start()
            queue_seconds = None
            if not args.no_browser:
                with chromium_page() as page:
                    page.goto(f"{url}/")
                    form = page.get_by_test_id("stForm").filter(has_text="Sign in")
                    form.get_by_label("User name").fill(ADMIN)
                    form.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
                    form.get_by_role("button", name="Sign in").click()
                    form.wait_for(state="detached", timeout=120_000)
                    t0 = time.perf_counter()
                    page.get_by_role("link", name="Alert queue").click()
                    page.get_by_test_id("stMetric").filter(has_text="Alerts matching").first.wait_for(timeout=120_000)
                    queue_seconds = time.perf_counter() - t0
            sender.join(timeout=max(0.0, args.seconds - (time.perf_counter() - t_start)))
            stop.set()
            sender.join(timeout=120)
            elapsed = time.perf_counter() - t_start
            client.close()
            batch = {"batch": args.batch, "batches": len(done["latency"]), "transactions": done["sent"][0],
                     "seconds": round(elapsed, 1), "tx_per_s": round(done["sent"][0] / elapsed, 1),
                     **percentiles(done["latency"] or [0.0])}
            print(f"batches of {args.batch:,} (keep-alive): {json.dumps(batch)}", flush=True)
            if queue_seconds is not None:
                print(f"alert queue in Chromium during the batch load: {queue_seconds:.2f} s from the menu click to its "
                      "first page", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
