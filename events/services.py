"""Recording events and publishing them, in order, to the feed (and, later, webhooks).

`record` is the one function the products services call: it writes a product's events
in the caller's transaction, so a change and its events commit or roll back together.
`publish` runs after commit, from the worker or the feed: it gives committed events
their feed positions in the order they were written.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .models import Event, EventType

PUBLISH_LOCK = 0x1E7E47  # pg_advisory_xact_lock key: one publisher at a time
PUBLISH_BATCH = 1000

# Number the oldest unpublished events after the newest position, in id order (the
# order they were written; for one product, the order of its row lock).
STAMP = """
UPDATE events_event SET position = numbered.position
FROM (
    SELECT id, %s + ROW_NUMBER() OVER (ORDER BY id) AS position
    FROM events_event WHERE position IS NULL ORDER BY id LIMIT %s
) AS numbered
WHERE events_event.id = numbered.id
"""


@dataclass(frozen=True)
class NewEvent:
    """An event to record: its product's `sequence` is given by the caller, which holds
    that product's row lock."""

    type: EventType
    product_id: int
    sequence: int
    data: dict[str, Any]


def record(events: Iterable[NewEvent]) -> None:
    """Write events in the caller's transaction: they commit, or roll back, with the
    change they announce. One INSERT, whatever their number."""
    now = timezone.now()
    Event.objects.bulk_create(
        Event(
            type=event.type,
            product_id=event.product_id,
            sequence=event.sequence,
            occurred_at=now,
            data=event.data,
        )
        for event in events
    )


def publish(*, limit: int = PUBLISH_BATCH) -> int:
    """Give up to `limit` committed, unpublished events their feed positions; return
    how many. Publishers take turns (an advisory lock), and each sees only committed
    events, so positions only grow and an event is never placed behind one a reader
    has already passed."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PUBLISH_LOCK])
        newest = Event.objects.order_by("-position").values_list("position", flat=True)
        cursor.execute(STAMP, [newest.filter(position__isnull=False).first() or 0, limit])
        return cursor.rowcount
