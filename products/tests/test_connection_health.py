"""The connection health check (core/postgresql): a poll, and a query only when needed."""

import time

import pytest
from django.db import connection, connections
from django.db.backends.postgresql import base as django_postgresql

from .conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


def server_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_a_live_idle_connection_is_usable_without_a_round_trip(monkeypatch):
    server_pid()  # connected, idle
    monkeypatch.setattr(
        django_postgresql.DatabaseWrapper, "is_usable", lambda self: pytest.fail("queried")
    )
    assert connection.is_usable()


def test_a_connection_the_server_ended_is_not_usable_and_is_replaced():
    pid = server_pid()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while connection.is_usable() and time.monotonic() < deadline:
        time.sleep(0.05)  # the server's goodbye is on its way
    assert not connection.is_usable()

    # Django's check at the start of a request closes it; the next query reconnects.
    connection.health_check_done = False
    connection.close_if_health_check_failed()
    assert server_pid() != pid


def test_a_closed_connection_is_not_usable():
    server_pid()
    connection.connection.close()
    assert not connection.is_usable()
    connection.close()
