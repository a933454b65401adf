import uuid

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from products.text import no_nul_characters


class EventType(models.TextChoices):
    """Every event the service announces (docs/api.md, Events)."""

    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    PRODUCT_DELETED = "product.deleted"
    STOCK_CHANGED = "stock.changed"  # one per ledger movement
    STOCK_LOW = "stock.low"  # entered stock_quantity <= low_stock_threshold
    STOCK_RECOVERED = "stock.recovered"  # left it
    STOCK_FULLY_RESERVED = "stock.fully_reserved"  # a reservation took available_quantity to 0


class Event(models.Model):
    """Something that happened to a product: the outbox, written in the same transaction
    as the change it announces.

    `sequence` counts one product's events, from 1, in the order they happened (the
    product's row lock orders them), so a consumer can order, de-duplicate and notice a
    gap. `position` orders all events for the feed; it is given after commit (see
    services.publish), so an event that commits late is placed after those already
    published instead of behind a reader's back.
    """

    uid = models.UUIDField("id", default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=32, choices=EventType)
    product_id = models.BigIntegerField()
    sequence = models.PositiveBigIntegerField()
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    position = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product_id", "sequence"], name="event_product_sequence_unique"
            ),
        ]
        indexes = [
            # The few events not yet published, in the order they were written.
            models.Index(
                fields=["id"], condition=Q(position__isnull=True), name="event_unpublished"
            ),
            models.Index(fields=["type", "position"], name="event_type_position"),
            models.Index(fields=["product_id", "position"], name="event_product_position"),
        ]

    def __str__(self) -> str:
        return f"{self.type} product {self.product_id} #{self.sequence}"


def validate_event_types(value) -> None:
    """A list of EventType values (empty: every type)."""
    if not isinstance(value, list) or any(item not in EventType.values for item in value):
        raise ValidationError(f"A list of event types, from: {', '.join(EventType.values)}.")


class WebhookEndpoint(models.Model):
    """A URL that receives the events it subscribes to, signed (Standard Webhooks)."""

    url = models.URLField(max_length=2000, validators=[URLValidator(schemes=["https", "http"])])
    event_types = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_event_types],
        help_text="Event types to send; empty: all of them.",
    )
    description = models.CharField(max_length=500, blank=True, validators=[no_nul_characters])
    is_active = models.BooleanField(default=True)
    secret = models.CharField(max_length=100, editable=False)
    # After a rotation, the old secret signs too until it expires (both signatures sent).
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=1000, blank=True)
    # Since when every attempt has failed (none succeeded in between); null when healthy.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url

    def subscribes_to(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # queued, in flight, or waiting for a retry
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # given up: see last_error; can be redelivered


class Delivery(models.Model):
    """One event to one endpoint: retried until it succeeds or is given up."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="deliveries")
    webhook_id = models.CharField(
        max_length=64, help_text="The `webhook-id` header: the same on every attempt."
    )
    status = models.CharField(max_length=16, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    attempts_since_queued = models.PositiveIntegerField(
        default=0,
        help_text="Attempts since it was last queued (published or redelivered): the "
        "backoff and WEBHOOK_MAX_ATTEMPTS count these.",
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="delivery_once_per_event"),
        ]
        indexes = [
            models.Index(fields=["endpoint", "status", "id"], name="delivery_endpoint_status"),
            models.Index(fields=["status", "id"], name="delivery_status"),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} to endpoint {self.endpoint_id}"


class DeliveryAttempt(models.Model):
    """One HTTP request of a delivery, and what came of it."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts_made")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    response_excerpt = models.CharField(max_length=1024, blank=True)
    error = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attempt at {self.at:%Y-%m-%d %H:%M:%S} ({self.status_code or self.error})"
