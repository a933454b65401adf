"""Django's PostgreSQL backend, with a health check that costs no round trip.

With CONN_HEALTH_CHECKS, Django sends `SELECT 1` before the first query of every
request on a persistent connection: a round trip, and a tenth of a GET's CPU. A
connection the server has ended (a restart, `pg_terminate_backend`, an idle timeout)
has something to read, the server's last message or the end of the stream, while an
idle live one has nothing: so the socket is polled first, and only a connection with
something to read (or a broken one) gets Django's `SELECT 1`. A database host that
vanished without closing the socket is found by TCP keepalives, as before.
"""

import select

from django.db.backends.postgresql import base


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
