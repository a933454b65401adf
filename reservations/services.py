"""Reservations: holding units for an order, then fulfilling, releasing or letting the
hold expire.

Every function here changes a reservation and its product's reserved counter together,
under the product's row lock (products.services.under_lock, which first ends the
product's lapsed holds), so reservations, fulfilments, releases, expiries and plain
decrements of one product queue up. The stock side (the counter, the "available" rule,
the ledger's decrement of a fulfilment) is products.services'; the API, the admin and
the commands all call these functions.
"""

from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from django.utils import timezone

from core.errors import DomainError
from core.metrics import counted_stock_operation
from core.statements import Insert, Update
from products import services as stock
from products.models import MAX_STOCK, Product

from .models import MAX_EXPIRES_IN, MIN_EXPIRES_IN, Reservation
from .serializers import represent_reservation

State = Reservation.State
TIDY_BATCH = 500
API = stock.Audit()


class ReservationNotActive(DomainError):
    """The reservation has already ended: fulfilled, released or expired."""

    code = "reservation_not_active"
    status = HTTPStatus.CONFLICT

    def __init__(self, reservation: Reservation, now: datetime) -> None:
        state = reservation.state_at(now)
        super().__init__(
            f"Reservation {reservation.pk} is {state}, not active; nothing changed.",
            state=state,
        )


class QuantityExceedsReservation(DomainError):
    """A fulfilment of more units than the reservation holds."""

    code = "quantity_exceeds_reservation"
    status = HTTPStatus.CONFLICT

    def __init__(self, *, reserved: int, requested: int) -> None:
        super().__init__(
            f"The reservation holds {reserved} unit(s); {requested} cannot ship from it. "
            "Nothing changed.",
            reserved=reserved,
            requested=requested,
        )


@counted_stock_operation("reserve")
def reserve(
    *,
    product_id: int,
    quantity: int,
    expires_in: int,
    reference: str = "",
    user: Any = None,
) -> Reservation:
    """Hold `quantity` units of a product for `expires_in` seconds; refuse with
    InsufficientAvailable (naming what is available) rather than hold units that are
    on hand but held already."""
    _check_whole_number(quantity, "quantity", 1, MAX_STOCK)
    _check_whole_number(expires_in, "expires_in", MIN_EXPIRES_IN, MAX_EXPIRES_IN)

    def check(product: Product) -> Reservation:
        stock.check_available(product, quantity)
        now = timezone.now()
        reservation = Reservation(
            product=product,
            quantity=quantity,
            reference=reference,
            expires_at=now + timedelta(seconds=expires_in),
            created_by=user if getattr(user, "is_authenticated", False) else None,
            created_at=now,
        )
        reservation.clean_fields(exclude={"product", "created_by", "movement"})
        return reservation

    def write(product: Product, reservation: Reservation) -> Reservation:
        _INSERT.save(reservation)
        stock.hold_stock(
            product,
            quantity=quantity,
            expires_at=reservation.expires_at,
            reservation=represent_reservation(reservation),
        )
        return reservation

    return stock.under_lock(product_id, check, write)


@counted_stock_operation("fulfil")
def fulfil(
    *, reservation_id: int, quantity: int | None = None, audit: stock.Audit = API
) -> Reservation:
    """Ship a reservation: take `quantity` units (all it holds by default, or fewer)
    from stock and end the hold, in one transaction, writing the ledger's `decrement`
    (its reference `reservation:<id>`). The units it held but did not ship are free."""
    if quantity is not None:
        _check_whole_number(quantity, "quantity", 1, MAX_STOCK)
    product_id = _product_of(reservation_id)

    def check(product: Product) -> Reservation:
        reservation = _active(reservation_id)
        shipped = reservation.quantity if quantity is None else quantity
        if shipped > reservation.quantity:
            raise QuantityExceedsReservation(reserved=reservation.quantity, requested=shipped)
        stock.check_on_hand(product, shipped)  # a count may have found fewer
        reservation.fulfilled_quantity = shipped
        return reservation

    def write(product: Product, reservation: Reservation) -> Reservation:
        movement_audit = stock.Audit(
            user=audit.user,
            source=audit.source,
            reason=audit.reason,
            note=audit.note or reservation.reference,
            reference=f"reservation:{reservation.pk}",
        )
        reservation.movement = stock.fulfil_hold(
            product,
            held=reservation.quantity,
            quantity=reservation.fulfilled_quantity,
            audit=movement_audit,
        )
        _end(reservation, State.FULFILLED, _UPDATE_FULFILLED)
        return reservation

    return stock.under_lock(product_id, check, write)


@counted_stock_operation("release")
def release(*, reservation_id: int) -> Reservation:
    """End a reservation without moving stock: its units are available again."""
    product_id = _product_of(reservation_id)

    def write(product: Product, reservation: Reservation) -> Reservation:
        stock.release_hold(product, quantity=reservation.quantity)
        _end(reservation, State.RELEASED, _UPDATE_ENDED)
        return reservation

    return stock.under_lock(product_id, lambda product: _active(reservation_id), write)


def expire_lapsed(*, now: datetime | None = None, batch: int = TIDY_BATCH) -> int:
    """Mark every hold whose time has come expired (the periodic tidy-up; availability
    was right at the instant already): product by product, each under its lock, as
    any write of that product would. How many holds ended."""
    now = now or timezone.now()
    ended = 0
    while True:
        due = list(
            Product.objects.filter(reservations_expire_at__lte=now)
            .order_by("reservations_expire_at", "pk")
            .values_list("pk", flat=True)[:batch]
        )
        for product_id in due:
            try:
                ended += stock.expire_reservations(product_id=product_id, now=now)
            except Product.DoesNotExist:  # deleted meanwhile, its reservations with it
                continue
        if len(due) < batch:
            return ended


def _product_of(reservation_id: int) -> int:
    """The reservation's product (which never changes), read before taking its lock:
    the product's row lock comes first, as for every write of that product."""
    return Reservation.objects.values_list("product_id", flat=True).get(pk=reservation_id)


def _active(reservation_id: int) -> Reservation:
    """The reservation, under its product's lock; refused unless still active (a hold
    past its expiry has been marked expired by the lock's tidy-up already)."""
    reservation = (
        Reservation.objects.select_for_update(of=("self",))
        .select_related("created_by")
        .get(pk=reservation_id)
    )
    now = timezone.now()
    if reservation.state_at(now) != State.ACTIVE:
        raise ReservationNotActive(reservation, now)
    return reservation


# A reservation's writes, compiled once (core/statements.py).
_INSERT = Insert(Reservation)
_UPDATE_ENDED = Update(Reservation, ["state", "ended_at"])
_UPDATE_FULFILLED = Update(Reservation, ["state", "ended_at", "fulfilled_quantity", "movement"])


def _end(reservation: Reservation, state: str, update: Update) -> None:
    reservation.state = state
    reservation.ended_at = timezone.now()
    update.save(reservation)


def _check_whole_number(value: Any, field: str, minimum: int, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise stock.InvalidQuantity(f"{field} must be a whole number.")
    if not minimum <= value <= maximum:
        raise stock.InvalidQuantity(f"{field} must be between {minimum} and {maximum}.")
