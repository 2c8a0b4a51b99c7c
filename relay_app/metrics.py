"""The relay's Prometheus metrics: a WSGI middleware that times every request and serves /metrics.

Names: htpc_write_throughput_bytes_total (bytes ingested; fixed, as dashboards use it),
commander_relay_requests_total{route,method,status}, commander_relay_request_seconds{route}
(route, method and status from fixed sets: `route_of`, `method_of`, `status_of`),
commander_relay_messages_ingested_total (messages newly stored), the process collector's
process_cpu_seconds_total and process_resident_memory_bytes (CPU per message is
rate(process_cpu_seconds_total) / rate(commander_relay_messages_ingested_total)),
commander_relay_writes_refused_total{reason}, commander_relay_logins_total{outcome}
(success, failure, throttled, busy), and, read at scrape time from the store's figures
(`MessageStore.figures`) and the disk,
commander_relay_messages_stored, commander_relay_database_bytes,
commander_relay_free_disk_bytes, commander_relay_node_last_report_age_seconds{node},
commander_relay_archived_messages, commander_relay_archive_bytes and
commander_relay_archive_damaged_segments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from relay_app.app import STORED_KEY
from relay_app.errors import RelayAppError
from relay_app.inbox.login import LOGIN_OUTCOME_KEY
from relay_app.inbox.login import OUTCOMES as LOGIN_OUTCOMES
from relay_app.ingest import Ingest
from relay_app.store import MessageStore, StoreFigures
from runtime.core.park import PARK_KEY

# Route labels: the relay's routes (relay_app.app) and the inbox's (relay_app.inbox.routes).
# A path without parameters is its own label; one with a parameter is labelled by the
# route's fixed prefix and "*"; any other path is "other".
EXACT_ROUTES = frozenset(
    {
        "/sync/messages",
        "/sync/message",
        "/sync/status",
        "/sync/files",
        "/sync/mail",
        "/sync/digests",
        "/sync/ids",
        "/query/messages",
        "/query/status",
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/messages",
        "/messages/",
        "/messages/nodes",
        "/messages/actions",
        "/messages/login",
        "/messages/logout",
        "/messages/badge.js",
        "/messages/badge",
        "/messages/api/updates",
        "/api/unread_count",
    }
)
PREFIX_ROUTES = (
    "/query/messages/",
    "/files/",
    "/messages/m/",
    "/messages/files/",
    "/messages/static/",
)
# A label value per distinct method, path or status a client invents would grow /metrics
# without bound: labels take values from these fixed sets only.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
REFUSALS = {
    507: "disk_full",
    413: "too_large",
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
}
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def method_of(method: str) -> str:
    """A bounded label for a request method: the method if standard, else "OTHER"."""
    return method if method in METHODS else OTHER_METHOD


def status_of(status: int) -> str:
    """A bounded label for a status code: the code when it is a valid HTTP status."""
    return str(status) if 100 <= status <= 599 else "other"


def route_of(path: str) -> str:
    """A bounded label for a path: the route it belongs to, never the raw path."""
    if path in EXACT_ROUTES:
        return path
    for prefix in PREFIX_ROUTES:
        if path.startswith(prefix):
            return prefix + "*"
    return "other"


class RelayCollector(Collector):
    """Reads the store's figures and the disk at scrape time."""

    def __init__(
        self,
        store: MessageStore,
        free_bytes: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._free_bytes = free_bytes
        self._clock = clock

    def _free(self) -> int:
        """Free bytes as the relay's gate sees them; 0 while the data disk cannot be read."""
        try:
            return self._free_bytes()
        except OSError:
            return 0

    def collect(self) -> Iterator[Any]:
        """Yield the gauges."""
        figures = self._figures()
        yield GaugeMetricFamily(
            "commander_relay_database_bytes", "Cluster database size.", value=figures.database_bytes
        )
        yield GaugeMetricFamily(
            "commander_relay_free_disk_bytes",
            "Free bytes on the data disk.",
            value=self._free(),
        )
        yield GaugeMetricFamily(
            "commander_relay_messages_stored",
            "Messages in the cluster database.",
            value=figures.messages_stored,
        )
        yield from _archive_gauges(figures)
        ages = GaugeMetricFamily(
            "commander_relay_node_last_report_age_seconds",
            "Seconds since each node's last status report.",
            labels=["node"],
        )
        now = self._clock()
        for node_id, received_at in figures.last_reports.items():
            ages.add_metric([node_id], max(0.0, now - received_at))
        yield ages

    def _figures(self) -> StoreFigures:
        """The store's figures; zeros when it cannot answer (a scrape still gets the rest)."""
        try:
            return self._store.figures()
        except RelayAppError:
            return StoreFigures(0, 0)


def _archive_gauges(figures: StoreFigures) -> Iterator[Any]:
    yield GaugeMetricFamily(
        "commander_relay_archived_messages",
        "Messages in archive segments.",
        value=figures.archived_messages,
    )
    yield GaugeMetricFamily(
        "commander_relay_archive_bytes", "Archive segments' size.", value=figures.archive_bytes
    )
    yield GaugeMetricFamily(
        "commander_relay_archive_damaged_segments",
        "Archive segments that do not read back as recorded.",
        value=len(figures.damaged_segments),
    )


class GroupCollector(Collector):
    """The IngestActor's group commits: requests per transaction is their ratio."""

    def __init__(self, ingest: Ingest) -> None:
        self._counts = ingest.counts
        self._queued = ingest.queued

    def collect(self) -> Iterator[Any]:
        """Yield the counters and the queue."""
        yield CounterMetricFamily(
            "commander_relay_transactions",
            "Write transactions committed (one fsync each with synchronous=FULL).",
            value=self._counts.transactions,
        )
        yield CounterMetricFamily(
            "commander_relay_write_requests",
            "Write requests committed; several overlapping requests share one transaction.",
            value=self._counts.requests,
        )
        yield GaugeMetricFamily(
            "commander_relay_ingest_queued",
            "Write requests waiting for the one writer right now.",
            value=self._queued(),
        )


class MetricsMiddleware:
    """Wraps the relay's WSGI app: counts and times requests, answers GET /metrics itself."""

    def __init__(
        self,
        app: WsgiApp,
        store: MessageStore,
        free_bytes: Callable[[], int],
        ingest: Ingest | None = None,
    ) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RelayCollector(store, free_bytes))
        if ingest is not None:
            self.registry.register(GroupCollector(ingest))
        self.requests = Counter(
            "commander_relay_requests",
            "HTTP responses by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "commander_relay_request_seconds",
            "Time to answer a request.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingested = Counter(
            "htpc_write_throughput_bytes", "Bytes of messages ingested.", registry=self.registry
        )
        self.stored = Counter(
            "commander_relay_messages_ingested",
            "Messages newly stored by this relay (repeats of known msg_ids not counted).",
            registry=self.registry,
        )
        # process_cpu_seconds_total and resident memory: CPU per message is their ratio.
        ProcessCollector(registry=self.registry)
        self.refused = Counter(
            "commander_relay_writes_refused",
            "Writes refused, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in REFUSALS.values():
            self.refused.labels(reason)  # exported at 0 from the start, so increase() works
        self.logins = Counter(
            "commander_relay_logins",
            "Inbox login attempts by outcome (success, failure, throttled, busy).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in LOGIN_OUTCOMES:
            self.logins.labels(outcome)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Serve /metrics, or pass the request on and record how it went."""
        if environ.get("PATH_INFO", "") == "/metrics":
            return self._exposition(environ.get("REQUEST_METHOD", ""), start_response)
        started = time.perf_counter()
        seen: dict[str, int] = {}

        def recording_start(status: str, headers: Any, *exc: Any) -> Any:
            seen["status"] = int(status.split(" ", 1)[0])
            return start_response(status, headers, *exc)

        result = self.app(environ, recording_start)
        return self._finish(result, environ, seen, started)

    def _exposition(self, method: str, start_response: Callable[..., Any]) -> list[bytes]:
        """GET (or HEAD) /metrics; any other method is answered 405, as the app would."""
        if method not in ("GET", "HEAD"):
            headers = [("Content-Type", "application/json"), ("Allow", "GET, HEAD")]
            start_response("405 Method Not Allowed", headers)
            return [b'{"error":"Method not allowed."}']
        body = generate_latest(self.registry)
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")])
        return [body] if method == "GET" else []

    def _finish(
        self, result: Iterable[bytes], environ: dict[str, Any], seen: dict[str, int], started: float
    ) -> Iterator[bytes]:
        try:
            yield from result
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            self._record(environ, seen.get("status", 500), time.perf_counter() - started)

    def _record(self, environ: dict[str, Any], status: int, seconds: float) -> None:
        if environ.get(PARK_KEY) is not None:
            return  # a long poll parked (runtime.core.park): its answer comes in a later run
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        route = route_of(path)
        self.requests.labels(route, method_of(method), status_of(status)).inc()
        self.latency.labels(route).observe(seconds)
        if environ.get(LOGIN_OUTCOME_KEY) in LOGIN_OUTCOMES:  # set by the inbox's login route
            self.logins.labels(environ[LOGIN_OUTCOME_KEY]).inc()
        if route.startswith("/sync/message") and method == "POST":
            if 200 <= status < 300:
                self.ingested.inc(int(environ.get("CONTENT_LENGTH") or 0))
                self.stored.inc(environ.get(STORED_KEY, 0))
            elif status in REFUSALS:
                self.refused.labels(REFUSALS[status]).inc()
