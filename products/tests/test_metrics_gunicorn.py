"""/metrics and JSON logs under `make serve`'s gunicorn (gunicorn.conf.py): the figures
are every worker process's summed, whichever worker answers the scrape, and each access
line is a JSON object carrying the request id that the response returned."""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from .conftest import requires_postgres
from .test_http_server import BIN, Server, serve

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

WORKERS = 2
REQUESTS = 30


@pytest.fixture(scope="module")
def json_gunicorn(django_db_setup, tmp_path_factory) -> Iterator[Server]:
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    yield from serve(
        [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py"],
        tmp_path_factory.mktemp("gunicorn-json") / "server.log",
        WEB_CONCURRENCY=str(WORKERS),
        GUNICORN_THREADS="1",
        ACCESS_LOG="-",
        LOG_FORMAT="json",
        GUNICORN_CONTROL_SOCKET="",
    )


def get(server: Server, path: str, **headers: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def health_checks_counted(server: Server) -> float:
    _, _, body = get(server, "/metrics")
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "inventory_http_request_duration_seconds_count" and sample.labels == {
                "route": "/healthz",
                "method": "GET",
                "status": "200",
            }:
                return sample.value
    return 0.0


def test_every_workers_requests_are_counted_whichever_worker_answers_the_scrape(json_gunicorn):
    for _ in range(REQUESTS):
        assert get(json_gunicorn, "/healthz")[0] == 200  # a new connection each time

    # Each scrape is answered by one worker or the other: every one sees them all.
    assert [health_checks_counted(json_gunicorn) for _ in range(6)] == [REQUESTS] * 6


def test_access_lines_are_json_with_the_request_id_the_response_returned(json_gunicorn):
    status, headers, _ = get(json_gunicorn, "/api/products/", **{"X-Request-ID": "edge-77"})
    _, generated, _ = get(json_gunicorn, "/api/no-such-thing/")

    assert status == 401
    assert headers["X-Request-ID"] == "edge-77"
    wanted = {"edge-77", generated["X-Request-ID"]}
    deadline = time.monotonic() + 10  # an access line is written just after its response
    while True:
        text = json_gunicorn.log_text()
        lines = [json.loads(line) for line in text.splitlines() if line]  # nothing but JSON
        access = {
            line["request_id"]: line for line in lines if line.get("logger") == "gunicorn.access"
        }
        if wanted <= access.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert access["edge-77"]["status"] == "401"
    assert access["edge-77"]["path"] == "/api/products/"
    assert access[generated["X-Request-ID"]]["status"] == "404"
    warnings = [line for line in lines if line.get("logger") == "django.request"]
    assert {"edge-77", generated["X-Request-ID"]} <= {line["request_id"] for line in warnings}
