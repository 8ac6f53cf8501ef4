"""Prometheus metrics of the API, in their own registry: requests by route and status, latency,
transactions scored, alerts raised, scores, and the active model per dataset (read at scrape)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from data.datasets import list_datasets
from data.db import thread_cursor
from detectors.runs import active_run

disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("centinela_api_requests", "API requests by route and status", ["route", "method", "status"],
                   registry=REGISTRY)
LATENCY = Histogram("centinela_api_request_seconds", "API request latency, from request to response", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY)
SCORED = Counter("centinela_transactions_scored", "Transactions scored and stored", ["dataset"], registry=REGISTRY)
ALERTS = Counter("centinela_alerts_raised", "Alerts among the transactions scored", ["dataset"], registry=REGISTRY)
SCORES = Histogram("centinela_score", "Scores given to live transactions", ["dataset"],
                   buckets=tuple(round(-1 + 0.1 * i, 1) for i in range(21)), registry=REGISTRY)


class ActiveModels(Collector):
    """The active run of each dataset, as a gauge set to 1, read from the database at scrape time."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without describe(), registering calls collect(), which would open the database when this
        # module is imported (a test collection, a CLI) rather than when /metrics is scraped.
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        conn = thread_cursor()
        for dataset in list_datasets(conn):
            run = active_run(conn, dataset)
            if run is not None:
                family.add_metric([dataset.name, str(run.id), run.kind, run.detector], 1)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("centinela_active_model", "The model each dataset's queue ranks by",
                                 labels=["dataset", "run", "kind", "detector"])


REGISTRY.register(ActiveModels())

KAFKA_CONSUMED = Counter("centinela_kafka_messages_consumed", "Kafka messages consumed (offsets committed)",
                         ["dataset", "topic"], registry=REGISTRY)
KAFKA_DEAD = Counter("centinela_kafka_messages_dead_lettered", "Kafka messages sent to the dead-letter topic",
                     ["dataset", "topic"], registry=REGISTRY)
KAFKA_PUBLISHED = Counter("centinela_kafka_decisions_published", "Decisions published to the decisions topic",
                          ["dataset", "topic"], registry=REGISTRY)

WEBHOOK_ATTEMPTS = Counter("centinela_webhook_attempts", "Webhook delivery attempts by result (delivered, failed: "
                           "to be retried, given_up: the last attempt failed)", ["webhook", "result"], registry=REGISTRY)


class KafkaLag(Collector):
    """Each running consumer's lag (messages behind the topic's end), as last measured by it."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from integrations import kafka

        family = self._family()
        for status in kafka.statuses():
            if status.lag is not None:
                family.add_metric([status.dataset, status.topic], status.lag)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("centinela_kafka_consumer_lag", "Messages on the topic not yet consumed",
                                 labels=["dataset", "topic"])


REGISTRY.register(KafkaLag())


def observe_kafka(dataset: str, topic: str, consumed: int, dead_lettered: int, published: int) -> None:
    KAFKA_CONSUMED.labels(dataset, topic).inc(consumed)
    KAFKA_DEAD.labels(dataset, topic).inc(dead_lettered)
    KAFKA_PUBLISHED.labels(dataset, topic).inc(published)


def observe_scored(dataset: str, scores: list[float], alerts: int) -> None:
    SCORED.labels(dataset).inc(len(scores))
    ALERTS.labels(dataset).inc(alerts)
    histogram = SCORES.labels(dataset)
    for score in scores:
        histogram.observe(score)


class MetricsMiddleware:
    """Counts each API request by its route template (never the raw path) and times it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(name, scope.get("method", ""), str(status[0])).inc()
            LATENCY.labels(name).observe(time.perf_counter() - started)


def metrics_endpoint(request: Request) -> Response:
    """GET /metrics: the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
