"""`centinela replay`: stream a CSV or Parquet file of transactions into the HTTP API, in time
order, at a chosen rate: how a team demos live traffic and how the benchmark drives load.

It talks to a running server over one keep-alive connection and never opens the database (the
server holds it). The file's columns are sent by their request names: an export of a dataset
(`centinela export`) replays as it is (`ts` is sent as `timestamp`, `is_fraud` as `label`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from data.errors import InvalidInput

RENAMES = {"ts": "timestamp", "is_fraud": "label"}
DROP = {"tx_row"}


def register(commands: argparse._SubParsersAction) -> None:
    r = commands.add_parser("replay", help="stream a CSV or Parquet file into the HTTP API in time order")
    r.add_argument("file")
    r.add_argument("--dataset", required=True)
    r.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8501")
    r.add_argument("--key", required=True, help="an API key with the score scope")
    r.add_argument("--rate", type=_rate, help="transactions per second, e.g. 200 or 200/s (default: as fast as answered)")
    r.add_argument("--limit", type=int, help="send at most this many transactions")
    r.add_argument("--batch", type=int, default=100, help="transactions per request (1-10,000; default 100)")
    r.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this long (default 3600)")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.set_defaults(func=replay_command, needs_db=False)


def _rate(text: str) -> float:
    try:
        value = float(text.removesuffix("/s"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (N or N/s)") from None
    if not 0 < value <= 1e6:
        raise argparse.ArgumentTypeError("the rate must be between 0 and 1,000,000 per second")
    return value


def read_transactions(path: str, limit: int | None = None) -> pd.DataFrame:
    """The file's rows in time order (by timestamp, then file order), columns by request name."""
    import duckdb
    source = Path(path)
    if not source.is_file():
        raise InvalidInput("no such file.", file=path)
    reader = "read_parquet" if source.suffix.lower() == ".parquet" else "read_csv_auto"
    conn = duckdb.connect()
    try:
        frame = conn.execute(f"SELECT * FROM {reader}(?)", [str(source)]).df()
    finally:
        conn.close()
    frame = frame.drop(columns=[c for c in frame.columns if c in DROP]).rename(columns=RENAMES)
    if "timestamp" not in frame.columns:
        raise InvalidInput("the file has no timestamp (or ts) column.", file=path)
    frame = frame.sort_values("timestamp", kind="stable")
    return frame.head(limit) if limit is not None else frame


def items(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as request items: times as ISO text, missing values left out."""
    import pandas as pd
    out = []
    for record in frame.to_dict("records"):
        item = {}
        for name, value in record.items():
            if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
                continue
            if isinstance(value, pd.Timestamp):
                value = value.isoformat()
            elif isinstance(value, np.generic):
                value = value.item()
            item[name] = value
        out.append(item)
    return out


@dataclass
class Summary:
    sent: int = 0
    stored: int = 0
    retried: int = 0
    alerts: int = 0
    failed_requests: int = 0
    first_error: str | None = None
    latencies: list[float] = field(default_factory=list)  # seconds per request
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        q = (np.percentile(self.latencies, [50, 95, 99]) * 1000).round(2).tolist() if self.latencies else [None] * 3
        return {"sent": self.sent, "stored": self.stored, "retried": self.retried, "alerts": self.alerts,
                "failed_requests": self.failed_requests, "requests": len(self.latencies),
                "latency_ms": {"p50": q[0], "p95": q[1], "p99": q[2]}, "seconds": round(self.seconds, 2),
                "rate": round(self.sent / self.seconds, 1) if self.seconds else None, "first_error": self.first_error}


class Client:
    """One keep-alive HTTP connection to the server; reconnects once if the server closed it."""

    def __init__(self, url: str, key: str, timeout: float = 60.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"{url!r} is not an http(s) URL.", field="url")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.base, self.key, self.timeout = parts.path.rstrip("/"), key, timeout
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=self.timeout)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        for attempt in range(2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request("POST", self.base + path, data, headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, json.loads(payload) if payload else {}
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def batches(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def replay(rows: list[dict[str, Any]], client: Client, dataset: str, *, batch: int = 100, rate: float | None = None,
           max_seconds: float = 3600.0, progress: Any = None) -> Summary:
    """Send the rows in batches, paced to `rate` per second, for at most `max_seconds`."""
    if not 1 <= batch <= 10_000:
        raise InvalidInput("the batch size must be between 1 and 10,000.", field="batch")
    if not (math.isfinite(max_seconds) and max_seconds > 0):
        raise InvalidInput("the time limit must be a positive number of seconds.", field="max_seconds")
    summary, started = Summary(), time.perf_counter()
    path = f"/api/v1/datasets/{quote(dataset, safe='')}/transactions"
    for chunk in batches(rows, batch):
        left = max_seconds - (time.perf_counter() - started)
        if rate:
            wait = summary.sent / rate - (max_seconds - left)
            if wait >= left:
                break  # the next batch is due after the time limit
            if wait > 0:
                time.sleep(wait)
        if time.perf_counter() - started > max_seconds:
            break
        sent_at = time.perf_counter()
        status, body = client.post(path, {"transactions": chunk})
        summary.latencies.append(time.perf_counter() - sent_at)
        summary.sent += len(chunk)
        if status == 200:
            summary.stored += body["stored"]
            summary.retried += len(chunk) - body["stored"]
            summary.alerts += body["alerts"]
        else:
            summary.failed_requests += 1
            if summary.first_error is None:
                summary.first_error = f"HTTP {status}: {json.dumps(body.get('error', body))}"
        if progress is not None:
            progress(summary.sent, len(rows))
    summary.seconds = time.perf_counter() - started
    return summary


def _bar(done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}", end="", file=sys.stderr, flush=True)


def replay_command(args: argparse.Namespace, ctx: Any) -> int:
    rows = items(read_transactions(args.file, args.limit))
    client = Client(args.url, args.key)
    try:
        summary = replay(rows, client, args.dataset, batch=args.batch, rate=args.rate, max_seconds=args.max_seconds,
                         progress=None if args.quiet else _bar)
    finally:
        client.close()
    if not args.quiet:
        print(file=sys.stderr)
    report = summary.as_dict()
    if args.json:
        print(json.dumps(report))
    else:
        lat = report["latency_ms"]
        print(f"sent {report['sent']:,} in {report['requests']:,} requests over {report['seconds']} s "
              f"({report['rate']} tx/s): stored {report['stored']:,}, retried {report['retried']:,}, "
              f"alerts {report['alerts']:,}, failed requests {report['failed_requests']:,}")
        print(f"latency per request: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms")
        if summary.first_error:
            print(f"first error: {summary.first_error}", file=sys.stderr)
    return 2 if summary.failed_requests else 0
