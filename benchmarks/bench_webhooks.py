"""Webhooks end to end over loopback: latency from a live alert's decision to its signed event at
a receiver, and how fast a backlog drains.

Generates N transactions (default 200,000) with features and the default detector active into a
fresh database, saves the run at 50% contamination (so about half of the live transactions
alert), registers a webhook for `alert.raised` to a receiver in this process (the standard
library's threaded HTTP server on loopback), and serves the app as `make run` does. Then:
- latency: --requests single-transaction API requests (default 300), one every 50 ms, each alert
  timed from its request being sent to the receiver's copy of its event (p50 / p95 / p99);
- backlog: the webhook paused, --backlog transactions (default 5,000) scored in batches of 500,
  the webhook resumed, and the time from the first of them at the receiver to the last (events a
  second).
Every loop is bounded in count and time. Prints the figures; nothing is asserted.
Run: `make bench-webhooks` (`--rows 1000000` for the other benchmarks' size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from application import keys, runs
from application import webhooks as app_webhooks
from benchmarks.bench_live import new_transactions, percentiles, scored_dataset
from cli.replay import Client
from tests.browser import live_server
from tests.conftest import run_cli
from tests.webhooks import receiver


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--backlog", type=int, default=5_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    try:
        db = folder / "centinela.duckdb"
        conn, ctx, dataset, run = scored_dataset(db, args.rows)
        runs.save_threshold(ctx, run.id, 0.5)
        key = keys.create(ctx, "bench", "score").secret
        os.environ["CENTINELA_API_KEY"] = keys.create(ctx, "bench-ops", "operate").secret
        arrived: dict[str, float] = {}
        with receiver() as hooks:
            app_webhooks.add_webhook(ctx, "bench", hooks.url, ["alert.raised"], dataset.name)
            live = new_transactions(conn, dataset, args.requests + args.backlog, seed=3)
            conn.close()

            def seen() -> int:
                with hooks.lock:
                    for r in hooks.requests[len(arrived):]:
                        arrived.setdefault(json.loads(r.body)["data"]["transaction_id"], r.at)
                    return len(hooks.requests)

            with live_server(db) as (url, _):
                client = Client(url, key)
                path = f"/api/v1/datasets/{dataset.name}/transactions"
                answered: dict[str, float] = {}
                for item in live[:args.requests]:
                    sent = time.perf_counter()
                    status, body = client.post(path, {"transactions": [item]})
                    assert status == 200, body
                    if body["decisions"][0]["alert"]:
                        answered[item["transaction_id"]] = sent
                    seen()
                    time.sleep(0.05)
                _wait(lambda: seen() >= len(answered), 60)
                latency = [arrived[tx] - t for tx, t in answered.items() if tx in arrived]
                os.environ["CENTINELA_URL"] = url  # the pause and resume run through the server
                run_cli("webhooks", "pause", "bench", db=db, check=True)
                before = seen()
                alerts = 0
                for start in range(args.requests, args.requests + args.backlog, 500):
                    status, body = client.post(path, {"transactions": live[start:start + 500]})
                    assert status == 200, body
                    alerts += sum(d["alert"] for d in body["decisions"])
                run_cli("webhooks", "resume", "bench", db=db, check=True)
                _wait(lambda: seen() >= before + alerts, 300)
                with hooks.lock:  # from the first event of the backlog at the receiver to its last
                    times = [r.at for r in hooks.requests[before:]]
                drained = max(times) - min(times) if len(times) > 1 else float("nan")
        print(json.dumps({
            "rows": args.rows, "latency": {"alerts": len(answered), "delivered": len(latency), **percentiles(latency)},
            "backlog": {"events": alerts, "delivered": seen() - before, "seconds": round(drained, 2),
                        "events_per_s": round((len(times) - 1) / drained, 1)}}, indent=2))
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
