"""Recording events, publishing them in order to the feed and the webhooks, and the
webhook endpoints' and deliveries' rules.

`record` is the one function the products services call: it writes a product's events
in the caller's transaction, so a change and its events commit or roll back together.
`publish` runs after commit, from the worker (every second) or the feed: it gives
committed events their feed positions in the order they were written and, in the same
transaction, queues their webhook deliveries (events/webhooks.py).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection, transaction
from django.utils import timezone

from core.errors import DomainError
from core.statements import Insert

from . import webhooks
from .models import Delivery, DeliveryStatus, Event, EventType, WebhookEndpoint

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
RETURNING events_event.id
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
    _INSERT_EVENT.save_many(
        [
            Event(
                type=event.type,
                product_id=event.product_id,
                sequence=event.sequence,
                occurred_at=now,
                data=event.data,
            )
            for event in events
        ]
    )


_INSERT_EVENT = Insert(Event)


def publish(*, limit: int = PUBLISH_BATCH) -> int:
    """Give up to `limit` committed, unpublished events their feed positions, and queue
    their webhook deliveries; return how many events. Publishers take turns (an advisory
    lock), and each sees only committed events, so positions only grow and an event is
    never placed behind one a reader has already passed.

    Positions and deliveries commit together: an event is fanned out exactly when it is
    published, so a committed event is never lost and never fanned out twice.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PUBLISH_LOCK])
        newest = Event.objects.order_by("-position").values_list("position", flat=True)
        cursor.execute(STAMP, [newest.filter(position__isnull=False).first() or 0, limit])
        published = [event_id for (event_id,) in cursor.fetchall()]
        webhooks.fan_out(published)
        return len(published)


# Webhook endpoints and deliveries


class WebhookError(DomainError):
    """A webhook rule refused the request; nothing was written."""

    code = "webhook_error"


class DeliveriesNeedPostgresql(WebhookError):
    code = "deliveries_need_postgresql"
    status = 409

    def __init__(self) -> None:
        super().__init__(
            "Webhook deliveries need PostgreSQL (their queue lives there); this server "
            "runs on SQLite. Set DATABASE_URL to a PostgreSQL database."
        )


class WebhookUrlRefused(WebhookError):
    code = "webhook_url_refused"
    status = 422


class DeliveryInProgress(WebhookError):
    code = "delivery_in_progress"
    status = 409


class EndpointDisabled(WebhookError):
    code = "endpoint_disabled"
    status = 409


MAX_OVERLAP_SECONDS = 7 * 24 * 3600
_url_shape = URLValidator(schemes=["https", "http"])


def check_endpoint_url(url: str) -> str:
    """The URL, if an endpoint may have it (shape and the SSRF rule); else
    WebhookUrlRefused."""
    try:
        _url_shape(url)
        webhooks.check_url(url)
    except ValidationError as exc:
        raise WebhookUrlRefused(f"Not a valid URL: {' '.join(exc.messages)}") from None
    except webhooks.UrlRefused as exc:
        raise WebhookUrlRefused(str(exc)) from None
    return url


def require_deliveries() -> None:
    """Endpoints can be created or activated only where deliveries can be made."""
    if not webhooks.deliveries_supported():
        raise DeliveriesNeedPostgresql()


def create_endpoint(
    *,
    url: str,
    event_types: Iterable[str] = (),
    description: str = "",
    is_active: bool = True,
) -> WebhookEndpoint:
    """A new endpoint with a new signing secret (`endpoint.secret`: show it once)."""
    require_deliveries()
    endpoint = WebhookEndpoint(
        url=check_endpoint_url(url),
        event_types=list(dict.fromkeys(event_types)),
        description=description,
        is_active=is_active,
        secret=webhooks.new_secret(),
    )
    endpoint.save()
    return endpoint


def update_endpoint(*, endpoint_id: int, changes: dict[str, Any]) -> WebhookEndpoint:
    """Change an endpoint's url, event_types, description or is_active. Activating a
    disabled endpoint clears its disabled reason and failing streak."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        if "url" in changes and changes["url"] != endpoint.url:
            endpoint.url = check_endpoint_url(changes["url"])
        if "event_types" in changes:
            endpoint.event_types = list(dict.fromkeys(changes["event_types"]))
        if "description" in changes:
            endpoint.description = changes["description"]
        if "is_active" in changes:
            if changes["is_active"] and not endpoint.is_active:
                require_deliveries()
                endpoint.disabled_reason = ""
                endpoint.failing_since = None
            endpoint.is_active = changes["is_active"]
        endpoint.save()
    return endpoint


def delete_endpoint(*, endpoint_id: int) -> None:
    """Delete an endpoint and its deliveries (queued jobs find nothing and end)."""
    WebhookEndpoint.objects.get(pk=endpoint_id).delete()


def rotate_secret(*, endpoint_id: int, overlap_seconds: int) -> WebhookEndpoint:
    """A new signing secret (`endpoint.secret`: show it once); for `overlap_seconds`
    the old one signs too, so that receivers can switch without losing a delivery."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise WebhookError(f"overlap_seconds must be from 0 to {MAX_OVERLAP_SECONDS}.")
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        endpoint.previous_secret = endpoint.secret if overlap_seconds else ""
        endpoint.previous_secret_expires_at = (
            timezone.now() + timedelta(seconds=overlap_seconds) if overlap_seconds else None
        )
        endpoint.secret = webhooks.new_secret()
        endpoint.save()
    return endpoint


def redeliver(*, delivery_id: int) -> Delivery:
    """Send a failed (or succeeded) delivery again, with the same webhook-id."""
    require_deliveries()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("endpoint", "event")
            .get(pk=delivery_id)
        )
        if delivery.status == DeliveryStatus.PENDING:
            raise DeliveryInProgress("This delivery is queued or being retried already.")
        _check_active(delivery.endpoint)
        _requeue([delivery])
    delivery.refresh_from_db()
    return delivery


def redeliver_failed(*, endpoint_id: int) -> int:
    """Send every failed delivery of an endpoint again, in event order; how many."""
    require_deliveries()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
        _check_active(endpoint)
        failed = list(
            Delivery.objects.select_for_update(of=("self",))
            .select_related("event")
            .filter(endpoint=endpoint, status=DeliveryStatus.FAILED)
            .order_by("event__position", "id")
        )
        _requeue(failed)
    return len(failed)


def _check_active(endpoint: WebhookEndpoint) -> None:
    if not endpoint.is_active:
        raise EndpointDisabled(
            "The endpoint is disabled: activate it first (is_active).",
            disabled_reason=endpoint.disabled_reason,
        )


def _requeue(deliveries: list[Delivery]) -> None:
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(
        status=DeliveryStatus.PENDING,
        attempts_since_queued=0,
        next_attempt_at=None,
        updated_at=timezone.now(),
    )
    webhooks.queue_deliveries(deliveries)
