"""Request ids, and logs as JSON lines (LOG_FORMAT=json; docs/operations.md "Metrics and logs").

Each request gets an id: the client's (or its proxy's) X-Request-ID when that is a sane
token, a new one otherwise. It is returned as X-Request-ID on every response, errors
included, and every log line written while the request runs carries it, so that one
request's lines can be found among all the workers'.
"""

import logging
import os
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache

from django.http import HttpRequest, HttpResponse
from gunicorn import glogging
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


# Gunicorn's access log, for less: `logger_class` in gunicorn.conf.py.

BRACED_ATOM = re.compile(r"%\((\{[^}]*\}[ioe])\)", re.IGNORECASE)
ALWAYS_BRACED = ("{x-request-id}o",)  # GunicornAccessFilter's request id


class GunicornLogger(glogging.Logger):
    """Gunicorn's logger, writing the same access lines from fewer atoms.

    Gunicorn turns every request header, response header and environ variable into an
    atom (`{name}i`, `{name}o`, `{name}e`) for every request, whatever its format names,
    then escapes them all: 9 % of a GET's server CPU under load. Here the fixed atoms
    are made as gunicorn makes them, and of the others only those the format names
    (and the request id, for LOG_FORMAT=json). An atom the line does not name is never
    written, so the line is the same (products/tests/test_request_id.py compares).
    """

    def atoms(self, resp, req, environ, request_time):
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        atoms = {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": self._get_user(environ) or "-",
            "t": self.now(),
            "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
            "s": status,
            "m": environ.get("REQUEST_METHOD"),
            "U": environ.get("PATH_INFO"),
            "q": environ.get("QUERY_STRING"),
            "H": environ.get("SERVER_PROTOCOL"),
            "b": (sent is not None and str(sent)) or "-",
            "B": sent,
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "T": request_time.seconds,
            "D": (request_time.seconds * 1000000) + request_time.microseconds,
            "M": (request_time.seconds * 1000) + int(request_time.microseconds / 1000),
            "L": f"{request_time.seconds}.{request_time.microseconds:06d}",
            "p": f"<{os.getpid()}>",
        }
        wanted = self._braced_atoms(self.cfg.access_log_format)
        if wanted:
            headers = getattr(req, "headers", req)
            sources = {
                "i": headers.items() if hasattr(headers, "items") else headers,
                "o": resp.headers.items() if hasattr(resp.headers, "items") else resp.headers,
                "e": environ.items(),
            }
            for kind, names in wanted.items():
                for name, value in sources[kind]:
                    if name.lower() in names:
                        atoms[f"{{{name.lower()}}}{kind}"] = value  # the last, as gunicorn
        return atoms

    @staticmethod
    @cache
    def _braced_atoms(access_log_format: str) -> dict[str, frozenset[str]]:
        """The header and environ names the format's braced atoms name, by kind."""
        wanted: dict[str, set[str]] = {}
        for atom in [*BRACED_ATOM.findall(access_log_format), *ALWAYS_BRACED]:
            name, kind = atom[1:-2].lower(), atom[-1].lower()
            wanted.setdefault(kind, set()).add(name)
        return {kind: frozenset(names) for kind, names in wanted.items()}
