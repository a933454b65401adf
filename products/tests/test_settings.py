import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env) -> subprocess.CompletedProcess:
    # Set both explicitly (empty = unset), so that a developer's .env cannot fill them in.
    environment = {**os.environ, "SECRET_KEY": "", "DEBUG": "false"}
    environment.update(env, DJANGO_SETTINGS_MODULE="inventory_project.settings")
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "env",
    [
        {"DEBUG": "false"},
        {"DEBUG": "false", "SECRET_KEY": ""},
        {
            "DEBUG": "false",
            "SECRET_KEY": "django-insecure-development-only-key-do-not-use-in-production",
        },
        {},
    ],
)
def test_refuses_to_start_with_debug_off_and_no_real_secret_key(env):
    result = load_settings(**env)

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_starts_with_debug_on_and_no_secret_key():
    result = load_settings(DEBUG="true")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize(
    "env",
    [
        {"THROTTLE_USER": "abc"},
        {"THROTTLE_ANON": "10/fortnight"},
        {"PAGE_SIZE": "1000"},
        {"PAGE_SIZE": "0"},
        {"STOCK_ADJUSTMENT_MAX_LINES": "0"},
    ],
)
def test_refuses_to_start_on_a_malformed_or_out_of_range_setting(env):
    name = next(iter(env))

    result = load_settings(DEBUG="true", **env)

    assert result.returncode != 0
    assert f"{name} is out of range or malformed" in result.stderr


def test_an_empty_database_url_means_the_sqlite_fallback():
    code = "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    environment = {**os.environ, "DEBUG": "true", "DATABASE_URL": ""}
    environment["DJANGO_SETTINGS_MODULE"] = "inventory_project.settings"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )

    assert result.stdout.strip() == "django.db.backends.sqlite3", result.stderr


def response_headers(path: str, request_headers: dict[str, str], **env) -> dict:
    """Status and headers of a real request to the app, configured by `env` as a server
    would be (settings are read at start-up, so each configuration is a new process).
    The paths used here answer without touching the database."""
    environment = {**os.environ, "DEBUG": "false", "SECRET_KEY": "x" * 50}
    environment.update(env, DJANGO_SETTINGS_MODULE="inventory_project.settings")
    code = (
        "import json, sys, django; django.setup()\n"
        "from django.test import Client\n"
        "path, headers = json.loads(sys.argv[1])\n"
        "response = Client(HTTP_HOST='localhost', **headers).get(path)\n"
        "print(json.dumps([response.status_code, dict(response.headers)]))\n"
    )
    argument = json.dumps([path, request_headers])
    result = subprocess.run(
        [sys.executable, "-c", code, argument],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    status, headers = json.loads(result.stdout.strip().splitlines()[-1])
    return {"status": status, **{name.lower(): value for name, value in headers.items()}}


PRODUCTION = {
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
}


@pytest.mark.parametrize("path", ["/api/schema/", "/api/products/", "/api/no-such-thing/"])
def test_production_responses_carry_the_security_headers(path):
    headers = response_headers(path, {"HTTP_X_FORWARDED_PROTO": "https"}, **PRODUCTION)

    assert headers["status"] in (200, 401, 404)
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"


def test_no_hsts_unless_configured():
    headers = response_headers("/api/schema/", {"HTTP_X_FORWARDED_PROTO": "https"})

    assert "strict-transport-security" not in headers
    assert headers["x-frame-options"] == "DENY"


def test_cors_is_off_by_default():
    headers = response_headers("/api/schema/", {"HTTP_ORIGIN": "https://elsewhere.example"})

    assert headers["status"] == 200
    assert not any(name.startswith("access-control-") for name in headers)


def test_cors_allows_only_the_configured_origins():
    allowed = "https://scanner.example.com"

    to_allowed = response_headers(
        "/api/schema/", {"HTTP_ORIGIN": allowed}, CORS_ALLOWED_ORIGINS=allowed
    )
    to_other = response_headers(
        "/api/schema/", {"HTTP_ORIGIN": "https://evil.example"}, CORS_ALLOWED_ORIGINS=allowed
    )

    assert to_allowed["access-control-allow-origin"] == allowed
    assert "ETag" in to_allowed["access-control-expose-headers"]
    assert "access-control-allow-origin" not in to_other
