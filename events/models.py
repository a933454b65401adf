import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone


class EventType(models.TextChoices):
    """Every event the service announces (README, Events)."""

    PRODUCT_CREATED = "product.created"
    PRODUCT_UPDATED = "product.updated"
    PRODUCT_DELETED = "product.deleted"
    STOCK_CHANGED = "stock.changed"  # one per ledger movement
    STOCK_LOW = "stock.low"  # entered stock_quantity <= low_stock_threshold
    STOCK_RECOVERED = "stock.recovered"  # left it


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
