"""Behind PgBouncer in transaction pooling mode (DATABASE_POOLING=transaction): the
connections carry no session state, and the settings refuse what would need it.

`make test-pgbouncer` runs this file, with the concurrency and idempotency tests,
through a real PgBouncer; `make test` runs it on the direct connection.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from .conftest import requires_postgres

ROOT = Path(__file__).resolve().parents[2]
POOLED = os.environ.get("DATABASE_POOLING") == "transaction"


def database_settings(**env) -> subprocess.CompletedProcess:
    """Print DATABASES["default"] and DIRECT_DATABASE as settings.py builds them."""
    environment = {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_POOLING", "DIRECT_DATABASE_URL")
        },
        "SECRET_KEY": "x" * 50,
        "DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "inventory_project.settings",
        **env,
    }
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps([settings.DATABASES['default'], settings.DIRECT_DATABASE]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def pooled_settings(**env) -> tuple[dict, dict | None]:
    result = database_settings(DATABASE_POOLING="transaction", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_transaction_pooling_sends_no_startup_options_and_uses_no_server_side_cursors():
    database, _ = pooled_settings(DATABASE_URL="postgres://u@127.0.0.1:6432/db")

    assert "options" not in database["OPTIONS"]  # PgBouncer refuses them
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert database["OPTIONS"].get("prepare_threshold") is None  # Django's default: none
    assert database["OPTIONS"]["connect_timeout"] == 5


def test_session_pooling_is_the_default_and_keeps_the_timeouts_and_cursors():
    result = database_settings(DATABASE_URL="postgres://u@127.0.0.1:5432/db")
    database, direct = json.loads(result.stdout)

    assert database["OPTIONS"]["options"].startswith("-c statement_timeout=30000")
    assert database["DISABLE_SERVER_SIDE_CURSORS"] is False
    assert direct is None


@pytest.mark.parametrize(
    "query",
    ["options=-c%20statement_timeout%3D5s", "server_side_binding=true", "prepare_threshold=5"],
)
def test_transaction_pooling_refuses_what_needs_a_session_in_the_database_url(query):
    result = database_settings(
        DATABASE_URL=f"postgres://u@127.0.0.1:6432/db?{query}", DATABASE_POOLING="transaction"
    )

    assert result.returncode != 0
    assert f"DATABASE_POOLING=transaction: `{query.split('=')[0]}`" in result.stderr


def test_transaction_pooling_accepts_what_turns_them_off():
    database, _ = pooled_settings(
        DATABASE_URL="postgres://u@127.0.0.1:6432/db?server_side_binding=false"
    )

    assert database["OPTIONS"]["server_side_binding"] == "false"


def test_an_unknown_pooling_mode_is_refused():
    result = database_settings(DATABASE_POOLING="statement")

    assert result.returncode != 0
    assert "DATABASE_POOLING must be `session` or `transaction`" in result.stderr


def test_the_direct_connection_for_the_worker_keeps_the_session_timeouts():
    database, direct = pooled_settings(
        DATABASE_URL="postgres://u@pgbouncer:6432/db",
        DIRECT_DATABASE_URL="postgres://u@db:5432/db",
        DB_STATEMENT_TIMEOUT="2",
    )

    assert (direct["HOST"], direct["PORT"]) == ("db", 5432)
    assert direct["OPTIONS"]["options"].startswith("-c statement_timeout=2000")
    assert direct["DISABLE_SERVER_SIDE_CURSORS"] is False
    assert (database["HOST"], "options" in database["OPTIONS"]) == ("pgbouncer", False)


@requires_postgres
@pytest.mark.django_db
def test_the_connection_goes_through_a_pooler_exactly_when_database_pooling_says_so():
    """Behind a pooler the server sees the pooler's socket, not ours; the timeouts then
    come from PgBouncer's database entry (connect_query), not from startup options."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inet_client_port(), current_setting('statement_timeout'),"
            " current_setting('idle_in_transaction_session_timeout')"
        )
        server_sees_port, statement_timeout, idle_timeout = cursor.fetchone()
    if server_sees_port is None:
        pytest.skip("a Unix-socket connection: no port to compare")
    with socket.socket(fileno=os.dup(connection.connection.pgconn.socket)) as ours:
        our_port = ours.getsockname()[1]

    assert (our_port != server_sees_port) == POOLED
    assert statement_timeout != "0"
    assert idle_timeout != "0"
