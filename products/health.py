"""Health checks for load balancers and orchestrators.

    GET /healthz  200 while the process can answer; never touches the database.
    GET /readyz   200 when the database answers and every migration is applied;
                  otherwise a 503 problem document with Retry-After.

A middleware at the top of the stack answers them, before host validation, HTTPS
redirects, sessions, authentication and throttling: a load balancer probes each
instance by its address, over plain HTTP, as often as it likes, and the answer says
nothing about anyone's data.
"""

import logging
from collections.abc import Callable
from http import HTTPStatus

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import (
    PROBLEM_CONTENT_TYPE,
    RETRY_AFTER_HEADERS,
    database_unavailable_problem,
    problem,
)

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


def liveness(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"}, headers=NO_STORE)


def readiness(request: HttpRequest) -> JsonResponse:
    """Ready when the database answers and no migration is waiting to be applied."""
    try:
        executor = MigrationExecutor(connection)  # two small queries
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        logger.warning("Not ready: the database is unavailable: %s", exc)
        return _not_ready(database_unavailable_problem(request.path))
    if pending:
        logger.warning("Not ready: %d migration(s) not applied", len(pending))
        return _not_ready(
            problem(
                503,
                "migrations_pending",
                "The database schema is not up to date: run `manage.py migrate`.",
                instance=request.path,
                pending_migrations=len(pending),
            )
        )
    return JsonResponse({"status": "ready"}, headers=NO_STORE)


def _not_ready(body: dict) -> JsonResponse:
    return JsonResponse(
        body,
        status=503,
        content_type=PROBLEM_CONTENT_TYPE,
        headers={**RETRY_AFTER_HEADERS, **NO_STORE},
    )


CHECKS: dict[str, Callable[[HttpRequest], JsonResponse]] = {
    "/healthz": liveness,
    "/readyz": readiness,
}


class HealthCheckMiddleware:
    """Answers /healthz and /readyz ahead of every other middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        check = CHECKS.get(request.path_info)
        if check is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            status = HTTPStatus.METHOD_NOT_ALLOWED
            body = problem(
                status,
                "method_not_allowed",
                f'Method "{request.method}" not allowed.',
                instance=request.path,
            )
            return JsonResponse(
                body,
                status=status,
                content_type=PROBLEM_CONTENT_TYPE,
                headers={"Allow": "GET, HEAD"},
            )
        return check(request)
