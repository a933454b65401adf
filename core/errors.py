"""Every error as an RFC 9457 problem document, mapped from exceptions in one place.

    {"type": "urn:inventory:problem:insufficient_stock", "title": "Conflict",
     "status": 409, "detail": "Insufficient stock: 5 requested but only 3 available.",
     "code": "insufficient_stock", "instance": "/api/products/7/decrement/",
     "available": 3, "requested": 5}

`code` is the stable, machine-readable name of the problem; validation errors add
`errors`, a map of field name to messages.
"""

import json
import logging
import sys
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import (
    ObjectDoesNotExist,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, DataError, InterfaceError, OperationalError, connection
from django.http import Http404, HttpRequest, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from . import metrics

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
DATABASE_RETRY_AFTER_SECONDS = 5


class DomainError(Exception):
    """A business rule refused the request; nothing was written.

    Raised by an app's services, answered here as a problem document: `code` names
    it, `status` is its HTTP status (400 unless a subclass says otherwise), and the
    keyword arguments become extra members of the problem document.
    """

    code = "domain_error"
    status = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class RequestTooLarge(exceptions.APIException):
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"
    default_detail = (
        f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes."
    )


def problem(
    status: int, code: str, detail: str, *, instance: str = "", **extra: Any
) -> dict[str, Any]:
    """The body of a problem response."""
    body = {
        "type": f"urn:inventory:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem_bytes(status: int, code: str, detail: str, *, instance: str = "") -> bytes:
    """A problem body, serialised, for code that answers outside Django's responses."""
    return json.dumps(problem(status, code, detail, instance=instance)).encode()


def problem_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's EXCEPTION_HANDLER: turn any exception into a problem response."""
    request = context.get("request")
    instance = request.path if request is not None else ""
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, DjangoValidationError):  # a model field's rule, from a service
        exc = exceptions.ValidationError(_django_errors(exc))
    elif isinstance(exc, SuspiciousOperation):  # e.g. more than 1,000 query parameters
        logger.warning("Refused a suspicious request: %s", exc)
        exc = exceptions.ValidationError({"non_field_errors": [str(exc)]}, code="bad_request")

    if isinstance(exc, DomainError):
        status = exc.status
        body = problem(status, exc.code, exc.message, instance=instance, **exc.extra)
        response = Response(body, status=status)
    elif isinstance(exc, DataError):  # a value the database cannot hold: bad input
        metrics.count_database_error(exc, unavailable=False)
        logger.warning("Database refused a value on %s", instance, exc_info=exc)
        body = problem(
            400, "invalid_value", "A value is out of range for the database.", instance=instance
        )
        response = Response(body, status=400)
    elif is_database_unavailable(exc):
        metrics.count_database_error(exc, unavailable=True)
        logger.warning("Database unavailable on %s: %s", instance, exc, exc_info=exc)
        response = _database_unavailable(instance)
    else:
        response = drf_exception_handler(exc, context)
        if response is None:
            metrics.count_database_error(exc, unavailable=False)
            logger.error("Unhandled error on %s", instance, exc_info=exc)
            response = Response(_server_error(instance), status=500)
        else:
            if isinstance(exc, exceptions.Throttled):
                metrics.THROTTLED.inc()
            response.data = _problem_from_api_exception(exc, response.status_code, instance)

    if _wants_json(request):
        response.content_type = PROBLEM_CONTENT_TYPE
    return response


def _problem_from_api_exception(
    exc: exceptions.APIException, status: int, instance: str
) -> dict[str, Any]:
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return problem(
            status,
            "validation_error",
            "The request is invalid: see `errors` for each field.",
            instance=instance,
            errors=errors,
        )
    code = exc.get_codes()
    code = code if isinstance(code, str) else exc.default_code
    extra = {"retry_after": exc.wait} if isinstance(exc, exceptions.Throttled) else {}
    return problem(status, code, str(exc.detail), instance=instance, **extra)


def _django_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return {"non_field_errors": exc.messages}


def _server_error(instance: str) -> dict[str, Any]:
    return problem(
        500,
        "server_error",
        "An unexpected error occurred; it has been logged.",
        instance=instance,
    )


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot serve us right now, rather than that a
    query or a value is wrong: it is unreachable, it dropped or killed the connection,
    or a statement ran past its timeout (all OperationalError or InterfaceError), or any
    other database error raised on a connection that is no longer open (psycopg2 raises
    a bare DatabaseError for some ways a connection breaks)."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DatabaseError):
        # psycopg 3 raises InternalError for a session the server ended (e.g. its
        # idle-in-transaction timeout, SQLSTATE 25P03) and marks the connection broken.
        state = getattr(exc.__cause__, "sqlstate", None) or getattr(exc.__cause__, "pgcode", None)
        if state in SESSION_ENDED_STATES:
            return True
        raw = connection.connection
        return raw is None or bool(getattr(raw, "closed", 0) or getattr(raw, "broken", False))
    return False


# idle_in_transaction_session_timeout, admin_shutdown, crash_shutdown, cannot_connect_now
SESSION_ENDED_STATES = {"25P03", "57P01", "57P02", "57P03"}


def database_unavailable_problem(instance: str) -> dict[str, Any]:
    return problem(
        503,
        "database_unavailable",
        "The database is unavailable; retry shortly.",
        instance=instance,
    )


RETRY_AFTER_HEADERS = {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)}


def _database_unavailable(instance: str) -> Response:
    return Response(database_unavailable_problem(instance), status=503, headers=RETRY_AFTER_HEADERS)


def _wants_json(request) -> bool:
    renderer = getattr(request, "accepted_renderer", None)
    return renderer is None or renderer.format == "json"


# Django-level handlers, for URLs no DRF view answers.


def _problem_response(request: HttpRequest, status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse(
        problem(status, code, detail, instance=request.path),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )


@csrf_exempt  # any method on an unknown URL is a 404, not a CSRF failure
def api_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Unknown URLs under /api/: a JSON 404, even with DEBUG on."""
    return _problem_response(request, 404, "not_found", "No endpoint matches this URL.")


def _is_admin(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/")


def handler400(request: HttpRequest, exception=None):
    if _is_admin(request):
        return defaults.bad_request(request, exception)
    return _problem_response(request, 400, "bad_request", "The request could not be understood.")


def handler404(request: HttpRequest, exception=None):
    if _is_admin(request):
        return defaults.page_not_found(request, exception)
    return api_not_found(request)


def handler500(request: HttpRequest):
    # Django calls this while handling the exception, wherever it was raised: a view,
    # or a middleware such as the session or authentication one (the admin, say).
    exc = sys.exc_info()[1]
    if exc is not None:
        metrics.count_database_error(exc, unavailable=is_database_unavailable(exc))
    if exc is not None and is_database_unavailable(exc):
        logger.warning("Database unavailable on %s: %s", request.path, exc)
        return JsonResponse(
            database_unavailable_problem(request.path),
            status=503,
            content_type=PROBLEM_CONTENT_TYPE,
            headers=RETRY_AFTER_HEADERS,
        )
    if _is_admin(request):
        return defaults.server_error(request)
    return JsonResponse(_server_error(request.path), status=500, content_type=PROBLEM_CONTENT_TYPE)
