"""The one piece of the reservations that the products services call: ending a locked
product's lapsed holds (products.services._expire_due, under that product's row lock)."""

from datetime import datetime

from django.db.models import F, Min, Sum
from django.db.models.functions import Coalesce

from .models import Reservation

ACTIVE = Reservation.State.ACTIVE


def expire_due(*, product_id: int, now: datetime) -> tuple[int, int, datetime | None]:
    """Mark the product's active holds that expire at or before `now` expired (ended at
    their `expires_at`, the instant they stopped holding anything); return how many, and
    the units its remaining active holds hold and their earliest expiry."""
    ended = Reservation.objects.filter(
        product_id=product_id, state=ACTIVE, expires_at__lte=now
    ).update(state=Reservation.State.EXPIRED, ended_at=F("expires_at"))
    totals = Reservation.objects.filter(product_id=product_id, state=ACTIVE).aggregate(
        reserved=Coalesce(Sum("quantity"), 0), earliest=Min("expires_at")
    )
    return ended, totals["reserved"], totals["earliest"]
