"""X-Request-ID on every response, and logs as JSON lines carrying it (LOG_FORMAT=json)."""

import io
import json
import logging
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client

from core.logs import JsonFormatter, RequestIdFilter

from .conftest import make_product

pytestmark = pytest.mark.django_db

GENERATED = re.compile(r"[0-9a-f]{32}")


def test_an_incoming_request_id_is_echoed(api_client):
    response = api_client.get("/api/products/", HTTP_X_REQUEST_ID="lb-7f3a.42:abc")

    assert response.status_code == 200
    assert response["X-Request-ID"] == "lb-7f3a.42:abc"


@pytest.mark.parametrize(
    "given", ["", "x" * 129, "two words", "bad\tvalue", "ünïcode", "a;b", '"quoted"']
)
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(api_client, given):
    response = api_client.get("/api/products/", HTTP_X_REQUEST_ID=given)

    assert GENERATED.fullmatch(response["X-Request-ID"])


def test_each_request_gets_its_own_id(api_client):
    first = api_client.get("/api/products/")["X-Request-ID"]
    second = api_client.get("/api/products/")["X-Request-ID"]

    assert first != second


@pytest.mark.parametrize(
    ("method", "path", "extra", "status"),
    [
        ("get", "/api/no-such-thing/", {}, 404),
        ("get", "/api/products/", {"HTTP_AUTHORIZATION": "Token wrong"}, 401),
        ("post", "/api/products/", {"HTTP_TRANSFER_ENCODING": "chunked"}, 411),
        ("get", "/healthz", {}, 200),
        ("get", "/metrics", {"REMOTE_ADDR": "203.0.113.9"}, 403),
        ("get", "/api/products/", {"HTTP_HOST": "evil.example"}, 400),
    ],
)
def test_error_and_early_answers_carry_the_request_id_too(method, path, extra, status):
    response = getattr(Client(), method)(path, HTTP_X_REQUEST_ID="req-1", **extra)

    assert response.status_code == status
    assert response["X-Request-ID"] == "req-1"


@pytest.fixture
def json_log():
    """The lines of django.request (which logs 4xx and 5xx once the middleware has
    returned) and core.errors (which logs while the request runs), formatted as
    LOG_FORMAT=json formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    loggers = [logging.getLogger("django.request"), logging.getLogger("core.errors")]
    for logger in loggers:
        logger.addHandler(handler)
    yield stream
    for logger in loggers:
        logger.removeHandler(handler)


def test_log_lines_are_json_with_the_request_id_the_response_returned(api_client, json_log):
    product = make_product(stock_quantity=1)

    response = api_client.post(
        f"/api/products/{product.pk}/decrement/", {"quantity": 5}, format="json"
    )

    assert response.status_code == 409
    [line] = json_log.getvalue().splitlines()
    record = json.loads(line)
    assert record["request_id"] == response["X-Request-ID"]
    assert record["level"] == "WARNING"
    assert record["logger"] == "django.request"
    assert record["message"] == f"Conflict: /api/products/{product.pk}/decrement/"
    assert record["status_code"] == 409
    assert {"time", "level", "logger", "message", "request_id"} <= record.keys()


def test_a_line_logged_while_the_request_runs_carries_its_id(api_client, json_log):
    query = "&".join(f"k{i}=1" for i in range(1001))  # logged as a suspicious request

    response = api_client.get(f"/api/products/?{query}", HTTP_X_REQUEST_ID="trace-42")

    assert response.status_code == 400
    records = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert {record["logger"] for record in records} == {"core.errors", "django.request"}
    assert {record["request_id"] for record in records} == {"trace-42"}


def test_log_format_json_configures_every_log_line_as_json():
    """The settings' LOGGING, in a process of its own: a line outside any request has no
    request_id, and an exception's traceback is in `exception`."""
    script = (
        "import django, logging; django.setup()\n"
        "logging.getLogger('inventory.check').warning('plain %s', 'words')\n"
        "try:\n    1 / 0\n"
        "except ZeroDivisionError:\n    logging.getLogger('inventory.check').exception('boom')\n"
    )
    env = {
        **os.environ,
        "LOG_FORMAT": "json",
        "DJANGO_SETTINGS_MODULE": "inventory_project.settings",
        "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    warning, error = (json.loads(line) for line in result.stderr.splitlines())
    assert warning["message"] == "plain words"
    assert warning["level"] == "WARNING"
    assert warning["logger"] == "inventory.check"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", warning["time"])
    assert "request_id" not in warning
    assert "ZeroDivisionError" in error["exception"]


def test_web_pages_of_allowed_origins_may_read_the_request_id(settings, api_client):
    settings.CORS_ALLOWED_ORIGINS = ["https://scanner.example.com"]

    response = api_client.get("/api/products/", HTTP_ORIGIN="https://scanner.example.com")

    assert "X-Request-ID" in response["Access-Control-Expose-Headers"]


def _configured_access_format() -> str:
    """gunicorn.conf.py's access_log_format (read, not run: the file sets up metrics)."""
    from pathlib import Path

    text = (Path(settings.BASE_DIR) / "gunicorn.conf.py").read_text()
    return re.search(r"^access_log_format = '(.*)'$", text, re.MULTILINE)[1]


ACCESS_FORMATS = [
    _configured_access_format(),
    '%(h)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(B)s %(m)s %(U)s %(q)s %(H)s %(T)s %(M)s %(L)s',
    "%({X-Forwarded-For}i)s %({x-request-id}o)s %({content-type}O)s %({wsgi.url_scheme}e)s "
    "%({missing}i)s %(p)s",
]


@pytest.mark.parametrize("access_log_format", ACCESS_FORMATS)
def test_the_access_line_is_gunicorns_own(access_log_format):
    from datetime import timedelta
    from types import SimpleNamespace

    from gunicorn import glogging
    from gunicorn.config import Config

    from core.logs import GunicornLogger

    config = Config()
    config.set("access_log_format", access_log_format)
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": "/api/products/?page=2", "PATH_INFO": "/api/products/",
        "QUERY_STRING": "page=2", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": 'curl/8 "quoted"', "HTTP_AUTHORIZATION": "Basic dXNlcjpwdw==",
        "wsgi.url_scheme": "https",
    }  # fmt: skip
    request = SimpleNamespace(
        headers=[("X-FORWARDED-FOR", "1.1.1.1"), ("X-FORWARDED-FOR", "2.2.2.2"), ("HOST", "h")]
    )
    response = SimpleNamespace(
        status="200 OK", sent=1234,
        headers=[("Content-Type", "application/json"), ("X-Request-ID", "abc123")],
    )  # fmt: skip
    took = timedelta(seconds=1, microseconds=2345)
    lines, request_ids = [], []
    for logger_class in (glogging.Logger, GunicornLogger):
        logger = logger_class(config)
        logger.now = lambda: "[06/Dec/2026:12:00:00 +0000]"
        atoms = glogging.SafeAtoms(logger.atoms(response, request, environ, took))
        lines.append(access_log_format % atoms)
        request_ids.append(atoms["{x-request-id}o"])  # what LOG_FORMAT=json reads
    assert lines[0] == lines[1]
    assert request_ids == ["abc123", "abc123"]
