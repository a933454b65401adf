"""Request ids, and logs as JSON lines (LOG_FORMAT=json; docs/operations.md "Metrics and logs").

Each request gets an id: the client's (or its proxy's) X-Request-ID when that is a sane
token, a new one otherwise. It is returned as X-Request-ID on every response, errors
included, and every log line written while the request runs carries it, so that one
request's lines can be found among all the workers'.
"""

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

HEADER = "X-Request-ID"
# Up to 128 characters that cannot break a log line or a header: a UUID, a hex or
# base64 id, a trace id with dots or colons.
SANE_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Take X-Request-ID if sane (else make one), keep it for the logs while the request
    runs, and return it on the response. First in MIDDLEWARE: every answer carries it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        current = given if SANE_ID.fullmatch(given) else new_request_id()
        request.request_id = current
        token = request_id.set(current)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response[HEADER] = current
        return response


class RequestIdFilter(logging.Filter):
    """Put the request's id on each record (as `request_id`), when there is one: the
    running request's, or that of the request a record names (Django logs each 4xx and
    5xx, with the request, after the middleware has returned)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = getattr(getattr(record, "request", None), "request_id", None)
        if current is None:
            current = request_id.get()
        if current is not None:
            record.request_id = current
        return True


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, then
    request_id in a request, exception (its traceback) if any, and a record's extras
    (e.g. Django's status_code)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault(
            "rename_fields",
            {"asctime": "time", "levelname": "level", "name": "logger", "exc_info": "exception"},
        )
        # Django puts the request object on some records: not something to print.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request"])
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds")


class GunicornAccessFilter(logging.Filter):
    """Gunicorn's access log line, for LOG_FORMAT=json: its parts as fields too, with
    the request id the response carried (gunicorn.conf.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args
        if isinstance(atoms, dict):
            record.request_id = atoms.get("{x-request-id}o", "-")
            record.method = atoms.get("m")
            record.path = atoms.get("U")
            record.status = atoms.get("s")
            record.duration_us = atoms.get("D")
            record.remote_addr = atoms.get("h")
        return True
