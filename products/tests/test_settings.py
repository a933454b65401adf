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
