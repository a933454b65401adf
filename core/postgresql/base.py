"""Django's PostgreSQL backend, with a faster loader of `timestamptz` values.

Django reads every `timestamptz` through a loader of its own (psycopg's Python one,
then its time zone put on): a third of the CPU of reading a page of products. The
session's time zone is UTC (Django sets it), so a value arrives as
`2026-12-06 11:55:09.657240+00`, which `datetime.fromisoformat` reads in C; anything
else (another offset, a year past 9999, BC, infinity) goes to Django's loader as before.

(A health check that polled the socket instead of Django's `SELECT 1` was tried and
dropped: a connection killed a moment before a request, or left in a failed
transaction, looked usable to it. Django's check stays.)
"""

from datetime import datetime
from functools import cache

from django.conf import settings
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import BaseTzLoader, get_adapters_template
from psycopg.adapt import AdaptersMap


class DatabaseWrapper(base.DatabaseWrapper):
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
