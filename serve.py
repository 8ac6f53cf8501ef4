"""The server: the pages (app.py) and the HTTP API (/api, /metrics) from one process on one port.

`make run` serves it with uvicorn (`uvicorn serve:app`), which sets TCP_NODELAY on its sockets;
under `streamlit run serve.py` every keep-alive response waits about 44 ms on Nagle's algorithm
(see /work/shared/MEASURED.md), so the latency figures assume uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from starlette.routing import Mount, Route

from api.app import create_api
from api.metrics import metrics_endpoint
from api.sessions import routes as session_routes
from application import heap
from integrations import kafka, webhooks

ROOT = Path(__file__).resolve().parent


@asynccontextmanager
async def lifespan(app: st.App) -> AsyncIterator[None]:
    """The Kafka consumers and the webhook dispatcher run in this process, the one that owns the
    database; what the imports built stays for the process's life (application/heap.py)."""
    heap.enable()
    kafka.start()
    webhooks.start()
    try:
        yield
    finally:
        webhooks.stop()
        kafka.stop()


# /session/start and /session/end set and clear the signed-in browser's HttpOnly cookie (api/sessions.py).
app = st.App(str(ROOT / "app.py"), routes=[Mount("/api", app=create_api()), Route("/metrics", metrics_endpoint),
                                           *session_routes], lifespan=lifespan)
