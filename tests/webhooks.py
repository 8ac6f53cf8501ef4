"""A real HTTP receiver for the webhook tests: the standard library's threaded server on a
loopback port, keeping every request it was sent; it can answer an error status for a while."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.perf_counter() when it arrived

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    failing: int = 0  # answer 503 to this many more requests
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict]:
        with self.lock:
            return [r.event for r in self.requests]


def verified(secret: str, request: Received, tolerance: int | None = None, now: int | None = None) -> bool:
    """What a receiver does: recompute HMAC-SHA256(secret, "<t>." + raw body) and compare."""
    parts = dict(p.split("=", 1) for p in request.headers["centinela-signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + request.body, hashlib.sha256).hexdigest()
    fresh = tolerance is None or abs(int(now) - int(parts["t"])) <= tolerance
    return fresh and hmac.compare_digest(expected, parts["v1"])


@contextmanager
def receiver(port: int = 0) -> Iterator[Receiver]:
    """Serve on 127.0.0.1 (`port`, or a free one) until the block ends."""
    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would

        def setup(self) -> None:
            super().setup()
            # Headers and body go out as two writes: without this, each answer on a kept-alive
            # connection waits about 40 ms for the client's delayed ACK (Nagle's algorithm).
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                failing = state.failing > 0
                state.failing -= failing
                if not failing:
                    state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                                   time.perf_counter()))
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"no" if failing else b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/centinela")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
