"""With DEBUG off, the admin's and the API docs' static files are served by WhiteNoise
from STATIC_ROOT, as `make serve` collects them: through the whole WSGI app."""

import io

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command

SIDECAR = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"


@pytest.fixture
def collected(settings, tmp_path):
    """collectstatic into a fresh STATIC_ROOT, then a WSGI app that serves from it."""
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    return WSGIHandler()  # WhiteNoise indexes STATIC_ROOT when the app is built


def get(app, path: str, **headers) -> tuple[str, dict, bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        **headers,
    }
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(response_headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


@pytest.mark.django_db
def test_admin_css_is_served_with_debug_off(collected):
    assert settings.DEBUG is False
    status, headers, body = get(collected, "/static/admin/css/base.css")

    assert status == "200 OK"
    assert headers["Content-Type"].startswith("text/css")
    assert b"body" in body
    assert "max-age" in headers["Cache-Control"]


@pytest.mark.django_db
def test_the_swagger_ui_asset_is_served_and_the_docs_page_points_at_it(collected):
    status, _, page = get(collected, "/api/docs/")
    assert status == "200 OK"
    assert f"/static/{SIDECAR}".encode() in page

    status, headers, body = get(collected, f"/static/{SIDECAR}")

    assert status == "200 OK"
    assert "javascript" in headers["Content-Type"]
    assert len(body) > 100_000


@pytest.mark.django_db
def test_a_compressed_copy_is_served_to_clients_that_accept_gzip(collected):
    status, headers, _ = get(collected, "/static/admin/css/base.css", HTTP_ACCEPT_ENCODING="gzip")

    assert status == "200 OK"
    assert headers.get("Content-Encoding") == "gzip"


@pytest.mark.django_db
def test_an_unknown_static_file_is_a_404(collected):
    status, _, _ = get(collected, "/static/admin/css/no-such-file.css")

    assert status.startswith("404")
