from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from products.models import MAX_STOCK, Product, StockMovement
from products.text import ONE_LINE_RULES

# How long a hold may last: `expires_in`, in seconds (docs/api.md, Reservations).
MIN_EXPIRES_IN = 1
MAX_EXPIRES_IN = 30 * 24 * 3600
DEFAULT_EXPIRES_IN = 15 * 60


class Reservation(models.Model):
    """Units of one product held for an order until it ships, is cancelled or the hold
    expires: `active`, then exactly one of `fulfilled`, `released`, `expired`.

    Written only by the services, under the product's row lock, together with the
    product's `reserved_quantity` (the sum of its active holds).
    """

    class State(models.TextChoices):
        ACTIVE = "active"
        FULFILLED = "fulfilled"
        RELEASED = "released"
        EXPIRED = "expired"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reservations")
    quantity = models.BigIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_STOCK)]
    )
    fulfilled_quantity = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State, default=State.ACTIVE)
    reference = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=ONE_LINE_RULES,
        db_index=True,
        help_text="E.g. the order number the units are held for.",
    )
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    # The ledger's decrement that a fulfilment wrote.
    movement = models.OneToOneField(
        StockMovement,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reservation",
    )

    class Meta:
        permissions = [
            ("fulfil_reservation", "Can fulfil a reservation (take its units from stock)"),
            ("release_reservation", "Can release a reservation"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1, quantity__lte=MAX_STOCK),
                name="reservation_quantity_positive",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["active", "fulfilled", "released", "expired"]),
                name="reservation_state_valid",
            ),
            # Active exactly while it has not ended; fulfilled exactly when units left.
            models.CheckConstraint(
                condition=Q(state="active", ended_at__isnull=True)
                | (~Q(state="active") & Q(ended_at__isnull=False)),
                name="reservation_ended_unless_active",
            ),
            models.CheckConstraint(
                condition=Q(
                    state="fulfilled",
                    fulfilled_quantity__gte=1,
                    fulfilled_quantity__lte=F("quantity"),
                )
                | (~Q(state="fulfilled") & Q(fulfilled_quantity__isnull=True)),
                name="reservation_fulfilled_quantity",
            ),
        ]
        indexes = [
            # A product's active holds: the expiry and the reserved sum read only these.
            models.Index(
                fields=["product", "expires_at"],
                condition=Q(state="active"),
                name="reservation_active_by_product",
            ),
            models.Index(fields=["product", "-id"], name="reservation_product_newest"),
            models.Index(fields=["state", "-id"], name="reservation_state_newest"),
            models.Index(fields=["expires_at", "id"], name="reservation_expires_at"),
        ]

    def __str__(self) -> str:
        return f"Reservation {self.pk}: {self.quantity} × product {self.product_id} ({self.state})"

    def state_at(self, now) -> str:
        """The state at `now`: an active hold past its expiry has expired, tidied or not."""
        if self.state == self.State.ACTIVE and self.expires_at <= now:
            return self.State.EXPIRED
        return self.state

    @classmethod
    def in_state_at(cls, state: str, now) -> Q:
        """The reservations whose `state_at(now)` is `state`, as a query."""
        if state == cls.State.ACTIVE:
            return Q(state=cls.State.ACTIVE, expires_at__gt=now)
        if state == cls.State.EXPIRED:
            return Q(state=cls.State.EXPIRED) | Q(state=cls.State.ACTIVE, expires_at__lte=now)
        return Q(state=state)
