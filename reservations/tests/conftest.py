# The products tests' factories and clients serve the reservations tests too.
from datetime import timedelta

from django.utils import timezone

from products.tests.conftest import (  # noqa: F401
    _fresh_throttle_counts,
    api_client,
    make_product,
    make_user,
    requires_postgres,
    run_together,
    token_client,
)
from reservations import services
from reservations.models import Reservation


def reserve(product, quantity=1, expires_in=900, reference="") -> Reservation:
    """A reservation made by the service, as the API would."""
    return services.reserve(
        product_id=product.pk, quantity=quantity, expires_in=expires_in, reference=reference
    )


def lapse(reservation: Reservation, seconds_ago: int = 1) -> None:
    """Make a hold's expiry a moment past, as if its time had come: the reservation and
    its product's earliest expiry, exactly as time passing would leave them (nothing
    tidied yet)."""
    moment = timezone.now() - timedelta(seconds=seconds_ago)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=moment)
    product = reservation.product
    product.refresh_from_db()
    earliest = product.reservations_expire_at
    type(product).objects.filter(pk=product.pk).update(
        reservations_expire_at=min(earliest, moment) if earliest else moment
    )
