"""Our PostgreSQL backend (core/postgresql): the connection health check (a poll, and a
query only when needed) and the `timestamptz` loader (what Django's own would load)."""

import time
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import DataError, connection, connections
from django.db.backends.postgresql import base as django_postgresql
from django.db.backends.postgresql.psycopg_any import register_tzloader

from core.postgresql.base import TimestamptzLoader

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


TIMESTAMPS = [
    "2026-12-06 11:55:09.657240+00",
    "2026-12-06 11:55:09.6+00",
    "2026-12-06 11:55:09+00",
    "2026-12-06 16:25:09.5+04:30",  # another offset: Django's way
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
]


def load(values, *, django_loader: bool):
    with connection.cursor() as cursor:
        if django_loader:  # what Django registers when it needs to, for this cursor
            register_tzloader(connection.timezone, cursor.cursor)
        cursor.execute("SELECT v::timestamptz FROM unnest(%s::text[]) AS v", [values])
        return [row[0] for row in cursor.fetchall()]


def test_timestamps_load_as_djangos_loader_loads_them():
    connection.ensure_connection()
    oid = psycopg.adapters.types["timestamptz"].oid
    in_use = connection.connection.adapters.get_loader(oid, psycopg.pq.Format.TEXT)
    assert issubclass(in_use, TimestamptzLoader)
    ours = load(TIMESTAMPS, django_loader=False)
    assert ours == load(TIMESTAMPS, django_loader=True)
    assert [value.tzinfo for value in ours] == [connection.timezone] * len(TIMESTAMPS)
    assert ours[0] == datetime(2026, 12, 6, 11, 55, 9, 657240, tzinfo=UTC)


def test_in_a_session_of_another_time_zone_as_djangos_loader_loads_them():
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Kolkata'")
    try:
        inside_years = TIMESTAMPS[:-1]  # the last is in the year 10000 in Kolkata
        assert load(inside_years, django_loader=False) == load(inside_years, django_loader=True)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")


@pytest.mark.parametrize("value", ["infinity", "10000-01-01 00:00:00+00", "0044-03-15 BC"])
def test_a_timestamp_python_cannot_hold_fails_as_before(value):
    with pytest.raises((DataError, psycopg.DataError)):
        load([value], django_loader=False)
