"""Prometheus metrics, served at /metrics (docs/operations.md "Metrics and logs").

prometheus-client, and nothing between it and the code that counts: each metric is
defined here once and incremented where the thing happens (the request middleware, the
stock services, the exception handler, the webhook recorder). Under gunicorn every
worker process writes its values to files in PROMETHEUS_MULTIPROC_DIR (set up by
gunicorn.conf.py and scripts/with_worker.sh) and a scrape sums them, so the figures are
the whole server's, whichever worker answers; without that variable (tests, a lone
process) they are the process's own.

Routes are labelled by their URL pattern (`/api/products/{pk}/decrement/`), never the
path, so that the number of series stays bounded whatever clients send.
"""

import functools
import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, DataError, connection
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

PATH = "/metrics"
# No URL pattern: static files, unknown URLs (the /api/ catch-all has this as its name).
UNMATCHED = "unmatched"
# Paths answered by middleware before URL resolution, labelled as themselves.
MIDDLEWARE_PATHS = frozenset({"/healthz", "/readyz", PATH})
# Clients may send any method name: others are labelled `other`.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_DURATION = Histogram(
    "inventory_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (URL pattern), method and status; its "
    "_count is the number of requests.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STOCK_OPERATIONS = Counter(
    "inventory_stock_operations_total",
    "Stock operations run by the services (API, admin and commands), by kind "
    "(increment, decrement, count, adjustment) and outcome: ok, or the refusal's code "
    "(insufficient_stock, stock_changed, precondition_failed, ...).",
    ["kind", "outcome"],
)
DATABASE_ERRORS = Counter(
    "inventory_database_errors_total",
    "Requests that met a database error, by kind: unavailable (answered 503), "
    "invalid_value (400) or other (500).",
    ["kind"],
)
THROTTLED = Counter(
    "inventory_throttled_requests_total",
    "Requests refused with 429 by the throttles.",
)
WEBHOOK_DELIVERIES = Counter(
    "inventory_webhook_deliveries_total",
    "Webhook delivery attempts recorded by the workers, by outcome: succeeded, retrying "
    "(will be tried again) or failed (given up, or not sent).",
    ["outcome"],
)


# Requests


@functools.lru_cache(maxsize=512)
def route_label(route: str) -> str:
    """A URL pattern as a label: `api/^products/(?P<pk>[^/.]+)/$` -> `/api/products/{pk}/`."""
    label = re.sub(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>", r"{\1\2}", route)
    label = label.replace("^", "").replace("$", "").replace("\\", "").replace("/?", "")
    return "/" + label


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None or match.url_name == UNMATCHED:
        return request.path if request.path in MIDDLEWARE_PATHS else UNMATCHED
    return route_label(match.route)


class MetricsMiddleware:
    """Time and count every request, and answer GET /metrics to those allowed.

    It sits near the top of the stack, so that it sees every answer (a 411, a 503 from
    the health check, the problem responses); /metrics is answered here, like the
    health checks, before host validation, sessions and authentication: it has its own
    protection (METRICS_ALLOWED_IPS, METRICS_TOKEN).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = metrics_view(request) if request.path == PATH else self.get_response(request)
        method = request.method if request.method in METHODS else "other"
        labels = (route_of(request), method, str(response.status_code))
        REQUEST_DURATION.labels(*labels).observe(time.perf_counter() - started)
        return response


def count_database_error(exc: BaseException, *, unavailable: bool) -> None:
    """Count a request's database error (core.errors calls this as it answers one)."""
    if unavailable:
        DATABASE_ERRORS.labels("unavailable").inc()
    elif isinstance(exc, DatabaseError):
        DATABASE_ERRORS.labels("invalid_value" if isinstance(exc, DataError) else "other").inc()


# Stock operations


def counted_stock_operation(kind: str) -> Callable:
    """Count each call of a stock service by outcome: `ok`, or the refusal's `code`."""

    def decorate(operation: Callable) -> Callable:
        @functools.wraps(operation)
        def counted(*args, **kwargs):
            try:
                result = operation(*args, **kwargs)
            except Exception as exc:
                STOCK_OPERATIONS.labels(kind, outcome_of(exc)).inc()
                raise
            STOCK_OPERATIONS.labels(kind, "ok").inc()
            return result

        return counted

    return decorate


def outcome_of(exc: Exception) -> str:
    if code := getattr(exc, "code", None):  # a DomainError
        return code if isinstance(code, str) else "error"
    if isinstance(exc, ObjectDoesNotExist):
        return "not_found"
    if isinstance(exc, DatabaseError):
        return "database_error"
    return "error"


# The scrape


class QueueDepthCollector(Collector):
    """Webhook deliveries waiting, and the job queue's jobs by queue and status, read at
    scrape time: two counts over what is queued (indexed: deliveries by status, the jobs
    waiting or running), never the history. PostgreSQL only (the queue lives there)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not settings.ON_POSTGRESQL:
            return
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM events_delivery WHERE status = 'pending'")
                (pending,) = cursor.fetchone()
                cursor.execute(
                    "SELECT queue_name, status, count(*) FROM procrastinate_jobs "
                    "WHERE status IN ('todo', 'doing') GROUP BY queue_name, status"
                )
                jobs = cursor.fetchall()
        except DatabaseError as exc:
            logger.warning("Metrics: could not read the queue depth: %s", exc)
            return
        deliveries = GaugeMetricFamily(
            "inventory_webhook_deliveries_pending",
            "Webhook deliveries not yet settled (waiting for their first attempt or a retry).",
        )
        deliveries.add_metric([], pending)
        yield deliveries
        by_status = GaugeMetricFamily(
            "inventory_queue_jobs",
            "Jobs in the worker queue (procrastinate), by queue and status: todo (waiting, "
            "retries included) or doing (running).",
            labels=["queue", "status"],
        )
        counts = {(queue, status): count for queue, status, count in jobs}
        for queue in sorted({queue for queue, _ in counts} | {"webhooks", "relay"}):
            for status in ("todo", "doing"):
                by_status.add_metric([queue, status], counts.get((queue, status), 0))
        yield by_status


_QUEUE_REGISTRY = CollectorRegistry(auto_describe=False)
_QUEUE_REGISTRY.register(QueueDepthCollector())


def exposition() -> bytes:
    """Every metric, in the Prometheus text format: all worker processes' values summed
    in multiprocess mode, this process's otherwise; then the queue depth."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(_QUEUE_REGISTRY)


# Protection


@functools.lru_cache(maxsize=1)
def _allowed_networks(addresses: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(address, strict=False) for address in addresses)


def may_scrape(request: HttpRequest) -> bool:
    """With METRICS_TOKEN as a Bearer token, or from an address (or network) of
    METRICS_ALLOWED_IPS, unless a proxy relayed the request (X-Forwarded-For or
    Forwarded): behind a proxy on the same host every request comes from 127.0.0.1."""
    token = settings.METRICS_TOKEN
    if token:
        words = request.META.get("HTTP_AUTHORIZATION", "").split()
        if (
            len(words) == 2
            and words[0].lower() == "bearer"
            and hmac.compare_digest(words[1].encode(), token.encode())
        ):
            return True
    if any(name in request.META for name in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")):
        return False  # relayed by a proxy: its address says nothing of the client's
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "").split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _allowed_networks(settings.METRICS_ALLOWED_IPS))


def metrics_view(request: HttpRequest) -> HttpResponse:
    from core.errors import PROBLEM_CONTENT_TYPE, problem_bytes

    if not may_scrape(request):
        body = problem_bytes(
            403,
            "permission_denied",
            "Metrics are served only to METRICS_ALLOWED_IPS or with the METRICS_TOKEN "
            "(Authorization: Bearer).",
            instance=request.path,
        )
        return HttpResponse(body, status=403, content_type=PROBLEM_CONTENT_TYPE)
    if request.method not in ("GET", "HEAD"):
        body = problem_bytes(405, "method_not_allowed", "Only GET and HEAD.", instance=request.path)
        return HttpResponse(
            body, status=405, content_type=PROBLEM_CONTENT_TYPE, headers={"Allow": "GET, HEAD"}
        )
    return HttpResponse(
        exposition(), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
    )
