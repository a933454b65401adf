"""Django's PostgreSQL backend, with a health check that costs no round trip and a
faster loader of `timestamptz` values.

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before the first query of every
request on a persistent connection: a round trip, and a tenth of a GET's CPU. A
connection the server has ended (a restart, `pg_terminate_backend`, an idle timeout)
has something to read, the server's last message or the end of the stream, while an
idle live one has nothing: so the socket is polled first, and only a connection with
something to read (or a broken one) gets Django's `SELECT 1`. A database host that
vanished without closing the socket is found by TCP keepalives, as before.

Django reads every `timestamptz` through a loader of its own (psycopg's Python one,
then its time zone put on): a third of the CPU of reading a page of products. The
session's time zone is UTC (Django sets it), so a value arrives as
`2026-12-06 11:55:09.657240+00`, which `datetime.fromisoformat` reads in C; anything
else (another offset, a year past 9999, BC, infinity) goes to Django's loader as before.
"""

import select
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import BaseTzLoader, get_adapters_template
from psycopg.adapt import AdaptersMap


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self):
        connection = self.connection
        if connection is None or connection.closed or getattr(connection, "broken", False):
            return False
        poller = select.poll()
        try:
            poller.register(connection.fileno(), select.POLLIN)
            if not poller.poll(0):
                return True  # nothing to read: the server has not ended it
        except (OSError, ValueError):
            return False
        return super().is_usable()

    def get_connection_params(self):
        params = super().get_connection_params()
        params["context"] = adapters(settings.USE_TZ, self.timezone)
        return params


class TimestamptzLoader(BaseTzLoader):
    """Django's loader (a subclass names its `timezone`), reading UTC values itself."""

    def load(self, data):
        text = bytes(data)
        if text.endswith(b"+00"):
            try:
                return datetime.fromisoformat(text[:-3].decode()).replace(tzinfo=self.timezone)
            except ValueError:
                pass
        return super().load(data)


@cache
def adapters(use_tz: bool, timezone) -> AdaptersMap:
    """Django's adapters for these settings, with the loader above in place of its own."""
    context = AdaptersMap(get_adapters_template(use_tz, timezone))
    loader = type("SpecificTimestamptzLoader", (TimestamptzLoader,), {"timezone": timezone})
    context.register_loader("timestamptz", loader)
    return context
