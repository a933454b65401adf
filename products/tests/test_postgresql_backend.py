"""Our PostgreSQL backend (core/postgresql): its `timestamptz` loader loads what Django's
own would."""

from datetime import UTC, datetime

import psycopg
import pytest
from django.db import DataError, connection
from django.db.backends.postgresql.psycopg_any import register_tzloader

from core.postgresql.base import TimestamptzLoader

from .conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


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
