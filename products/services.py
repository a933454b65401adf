"""Every rule that changes a product or its stock.

The API, the admin and the management commands all call these functions; nothing
else writes `stock_quantity` or the ledger. Each function runs in one transaction
and, when it changes an existing product, holds that product's row lock
(`SELECT ... FOR UPDATE`) from the read to the commit, so concurrent changes queue
up instead of overwriting each other. Every change of stock writes one
`StockMovement` in the same transaction. The CHECK constraints on both tables back
these rules up.
"""

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import DomainError
from core.metrics import counted_stock_operation
from core.statements import Insert, RowByKey, Update
from events import services as events
from events.models import EventType
from reservations import holds

from . import selectors
from .models import MAX_STOCK, Product, StockMovement
from .serializers import represent_movement, represent_product
from .text import normalize_sku

Kind = StockMovement.Kind
Reason = StockMovement.Reason
Source = StockMovement.Source

EDITABLE_FIELDS = frozenset(
    {"sku", "name", "description", "price", "stock_quantity", "low_stock_threshold"}
)
DEFAULT_REASON = {
    Kind.INITIAL: Reason.RECEIVED,
    Kind.INCREMENT: Reason.RECEIVED,
    Kind.DECREMENT: Reason.SHIPPED,
    Kind.COUNT: Reason.COUNT,
    Kind.ADJUSTMENT: Reason.CORRECTION,
}


@dataclass(frozen=True)
class Audit:
    """Who changes stock, through what, and why: copied onto every movement.

    An empty `reason` means the kind's default (received for increments, shipped
    for decrements, count for counts, correction for adjustments).
    """

    user: Any = None
    source: str = Source.API
    reason: str = ""
    note: str = ""
    reference: str = ""


@dataclass(frozen=True)
class AdjustmentLine:
    """One line of a bulk adjustment: a product, by id or by SKU, and a signed delta."""

    delta: int
    product_id: int | None = None
    sku: str | None = None


class InventoryError(DomainError):
    """A stock or product rule refused the change; nothing was written."""

    code = "inventory_error"


class InvalidQuantity(InventoryError):
    code = "invalid_quantity"


class InsufficientStock(InventoryError):
    code = "insufficient_stock"
    status = HTTPStatus.CONFLICT

    def __init__(self, *, available: int, requested: int) -> None:
        super().__init__(
            f"Insufficient stock: {requested} requested but only {available} available.",
            available=available,
            requested=requested,
        )


class InsufficientAvailable(InventoryError):
    """Enough on hand, but some of it is held by reservations."""

    code = "insufficient_available"
    status = HTTPStatus.CONFLICT

    def __init__(self, *, available: int, requested: int, reserved: int) -> None:
        super().__init__(
            f"Insufficient available stock: {requested} requested but only {available} "
            f"available ({reserved} reserved).",
            available=available,
            requested=requested,
            reserved=reserved,
        )


class StockLimitExceeded(InventoryError):
    code = "stock_limit_exceeded"
    status = HTTPStatus.CONFLICT

    def __init__(self, *, current: int, requested: int) -> None:
        super().__init__(
            f"Stock cannot exceed {MAX_STOCK}: {current} in stock, {requested} more requested.",
            available=current,
            requested=requested,
        )


class StockChanged(InventoryError):
    """The caller's compare-and-set `expected_quantity` no longer holds."""

    code = "stock_changed"
    status = HTTPStatus.CONFLICT

    def __init__(self, *, current: int, expected: int) -> None:
        super().__init__(
            f"Stock is {current}, not the expected {expected}; nothing changed.",
            current_quantity=current,
            expected_quantity=expected,
        )


class VersionMismatch(InventoryError):
    """The caller's If-Match names a version of the product that is no longer current."""

    code = "precondition_failed"
    status = HTTPStatus.PRECONDITION_FAILED

    def __init__(self, *, current: int) -> None:
        super().__init__(
            "The product changed since you read it (If-Match does not match its ETag); "
            "fetch it again and reapply your change.",
            current_version=current,
        )


class DuplicateSku(InventoryError):
    code = "duplicate_sku"
    status = HTTPStatus.CONFLICT

    def __init__(self, sku: str, existing: Product | None = None) -> None:
        message, extra = f"A product with SKU {sku!r} already exists.", {}
        if existing is not None:
            extra["existing_product"] = existing.pk
            if existing.sku != sku:  # say which: the two may not look alike at first sight
                message = (
                    f"A product with this SKU already exists: {existing.sku!r} (product "
                    f"{existing.pk}); SKUs that differ only in case, width or invisible "
                    "characters are one SKU."
                )
        super().__init__(message, sku=sku, **extra)


class UnknownProducts(InventoryError):
    """Well-formed, but naming products that do not exist: it cannot be carried out."""

    code = "unknown_product"
    status = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(self, lines: list[dict]) -> None:
        super().__init__("Some lines name no existing product; nothing changed.", lines=lines)


class LinesRefused(InventoryError):
    """Bulk adjustment lines that would take stock below 0 (or past the maximum)."""

    status = HTTPStatus.CONFLICT

    def __init__(self, code: str, lines: list[dict]) -> None:
        self.code = code
        what = {
            InsufficientStock.code: "below zero",
            InsufficientAvailable.code: "into units held by reservations",
        }.get(code, f"past {MAX_STOCK}")
        super().__init__(
            f"{len(lines)} line(s) would take stock {what}; nothing changed.", lines=lines
        )


# Products


def create_product(
    *,
    sku: str,
    name: str,
    description: str = "",
    price: Decimal = Decimal("0.00"),
    stock_quantity: int = 0,
    low_stock_threshold: int = 0,
    audit: Audit = Audit(),
) -> Product:
    """Create a product; an initial stock is recorded as an `initial` movement.

    The model fields' rules are checked first (django.core.exceptions.ValidationError),
    whoever calls: the API and the admin have checked them already, other callers have not.
    """
    _check_quantity_value(stock_quantity, field="stock_quantity")
    product = Product(
        sku=sku,
        name=name,
        description=description,
        price=price,
        stock_quantity=stock_quantity,
        low_stock_threshold=low_stock_threshold,
    )
    product.clean_fields(exclude={"sku_key"})
    check_sku_free(sku)
    try:
        with transaction.atomic():
            product.save(force_insert=True)
            movement = None
            if stock_quantity:
                movement = _record(product, Kind.INITIAL, before=0, audit=audit)
            events.record(creation_events(product, movement))
            Product.objects.filter(pk=product.pk).update(event_sequence=product.event_sequence)
    except IntegrityError as exc:
        if _is_sku_conflict(exc):
            raise DuplicateSku(sku) from exc
        raise
    return product


def creation_events(product: Product, movement: StockMovement | None) -> list[events.NewEvent]:
    """A new product's events, numbered from its `event_sequence` (0): created, its
    initial stock's movement if any, and low stock if it starts at or below its threshold.
    The one definition, for create_product and for bulk creation (seed_products)."""
    announcement = _Announcement()
    announcement.add(product, EventType.PRODUCT_CREATED)
    if movement is not None:
        announcement.stock_changed(product, movement, was_low=None)
    announcement.crossing(product, was_low=False)  # created low: that is news
    return announcement.events


def update_product(
    *,
    product_id: int,
    changes: Mapping[str, Any],
    audit: Audit = Audit(),
    expected_versions: Collection[int] | None = None,
) -> Product:
    """Change a product's fields under its row lock; a new stock_quantity is recorded
    as an `adjustment`. With `expected_versions` (from If-Match), refuse unless the
    product is still at one of them."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"Not editable: {', '.join(sorted(unknown))}")
    if "stock_quantity" in changes:
        _check_quantity_value(changes["stock_quantity"], field="stock_quantity")
    # The changed fields' rules, as on create; fields left alone are not judged again.
    Product(**changes).clean_fields(exclude=EDITABLE_FIELDS.difference(changes) | {"sku_key"})
    if "sku" in changes:
        check_sku_free(changes["sku"], product_id=product_id)
    try:
        with transaction.atomic():
            product = _lock(product_id)
            _expire_due(product)
            _check_version(product, expected_versions)
            changed = {
                field for field, value in changes.items() if getattr(product, field) != value
            }
            if not changed:
                return product  # nothing to change: same version, no new ETag
            before, was_low = product.stock_quantity, product.is_below_requirement
            for field, value in changes.items():
                setattr(product, field, value)
            product.version += 1
            product.save()
            # The movement first, then the product's other changes, then the crossing
            # they made together: each event's snapshot is the product after all of it.
            announcement = _Announcement()
            if product.stock_quantity != before:
                movement = _record(product, Kind.ADJUSTMENT, before=before, audit=audit)
                announcement.stock_changed(product, movement, was_low=None)
            if changed - {"stock_quantity"}:
                announcement.add(product, EventType.PRODUCT_UPDATED)
            announcement.crossing(product, was_low=was_low)
            announcement.write()
            Product.objects.filter(pk=product.pk).update(event_sequence=product.event_sequence)
    except IntegrityError as exc:
        if _is_sku_conflict(exc):
            raise DuplicateSku(changes["sku"]) from exc
        raise
    return product


def check_sku_free(sku: str, *, product_id: int | None = None) -> None:
    """Refuse with DuplicateSku if a product other than `product_id` has this SKU, under
    the SKU rule (normalize_sku). The unique index on `sku_key` settles races."""
    if existing := selectors.product_with_sku(sku, exclude_id=product_id):
        raise DuplicateSku(sku, existing)


def delete_product(*, product_id: int, expected_versions: Collection[int] | None = None) -> None:
    """Delete a product; its movements keep their SKU and name snapshots. With
    `expected_versions` (from If-Match), refuse unless the product is still at one."""
    with transaction.atomic():
        product = _lock(product_id)
        _check_version(product, expected_versions)
        announcement = _Announcement()
        announcement.add(product, EventType.PRODUCT_DELETED)
        announcement.write()
        product.delete()


# Stock operations


@counted_stock_operation(Kind.INCREMENT)
def increment_stock(
    *,
    product_id: int,
    quantity: int,
    audit: Audit = Audit(),
    expected_quantity: int | None = None,
    expected_versions: Collection[int] | None = None,
) -> Product:
    """Add `quantity` (≥ 1) units to a product's stock."""
    _check_operation_quantity(quantity)
    return _change_stock(
        product_id,
        delta=quantity,
        kind=Kind.INCREMENT,
        audit=audit,
        expected=expected_quantity,
        versions=expected_versions,
    )


@counted_stock_operation(Kind.DECREMENT)
def decrement_stock(
    *,
    product_id: int,
    quantity: int,
    audit: Audit = Audit(),
    expected_quantity: int | None = None,
    expected_versions: Collection[int] | None = None,
) -> Product:
    """Remove `quantity` (≥ 1) units; refuse with InsufficientStock rather than go below 0."""
    _check_operation_quantity(quantity)
    return _change_stock(
        product_id,
        delta=-quantity,
        kind=Kind.DECREMENT,
        audit=audit,
        expected=expected_quantity,
        versions=expected_versions,
    )


@counted_stock_operation(Kind.COUNT)
def count_stock(
    *,
    product_id: int,
    counted_quantity: int,
    audit: Audit = Audit(),
    expected_quantity: int | None = None,
    expected_versions: Collection[int] | None = None,
) -> Product:
    """Set stock to a physical count; the difference (possibly 0) is recorded as a `count`.
    With `expected_versions` (from If-Match), refuse unless the product is still at one."""
    _check_quantity_value(counted_quantity, field="counted_quantity")

    def check(product: Product) -> None:
        _check_version(product, expected_versions)
        _check_expected(product, expected_quantity)

    return _under_lock(
        product_id,
        check,
        lambda product: _write_stock(product, counted_quantity, Kind.COUNT, audit),
    )


@counted_stock_operation(Kind.ADJUSTMENT)
def adjust_stock_bulk(
    *, lines: Sequence[AdjustmentLine], audit: Audit = Audit()
) -> list[StockMovement]:
    """Apply every line or none: one `adjustment` movement per line, in line order.

    The products, named by id or by SKU, are read and locked by one query in id order,
    whatever the order of the lines, so that two bulk adjustments over the same
    products cannot deadlock each other.
    """
    for line in lines:
        _check_delta(line.delta)
    ids = {line.product_id for line in lines if line.product_id is not None}
    keys = {normalize_sku(line.sku) for line in lines if line.product_id is None}
    with transaction.atomic():
        locked = list(
            Product.objects.select_for_update()
            .filter(Q(pk__in=ids) | Q(sku_key__in=keys))
            .order_by("pk")
        )
        by_id = {product.pk: product for product in locked}
        by_key = {product.sku_key: product for product in locked}
        products = [
            by_id.get(line.product_id)
            if line.product_id is not None
            else by_key.get(normalize_sku(line.sku))
            for line in lines
        ]
        missing = [
            _describe(index, line)
            for index, (line, product) in enumerate(zip(lines, products, strict=True))
            if product is None
        ]
        if missing:
            raise UnknownProducts(missing)

        now = timezone.now()
        for product in locked:
            _expire_due(product, now)
        quantities = {product.pk: product.stock_quantity for product in locked}
        plan, below_zero, unavailable, too_high = [], [], [], []
        for index, (line, product) in enumerate(zip(lines, products, strict=True)):
            before = quantities[product.pk]
            after = before + line.delta
            refused = {**_describe(index, line, product.pk), "available": before}
            if after < 0:
                below_zero.append(refused)
            elif line.delta < 0 and after < product.reserved_quantity:  # as a decrement
                refused["available"] = max(before - product.reserved_quantity, 0)
                unavailable.append(refused)
            elif after > MAX_STOCK:
                too_high.append(refused)
            else:  # a refused line changes nothing for the lines after it
                quantities[product.pk] = after
                plan.append((product, before, after))
        if below_zero:
            raise LinesRefused(InsufficientStock.code, below_zero)
        if unavailable:
            raise LinesRefused(InsufficientAvailable.code, unavailable)
        if too_high:
            raise LinesRefused(StockLimitExceeded.code, too_high)

        changed = {product.pk: product for product, _, _ in plan}.values()
        was_low = {product.pk: product.is_below_requirement for product in changed}
        for product in changed:
            product.version += 1
            product.updated_at = now
        movements = [
            _movement(product, Kind.ADJUSTMENT, before, after, audit)
            for product, before, after in plan
        ]
        _INSERT_MOVEMENT.save_many(movements, returning=True)
        # Each line's events show its product as that line left it.
        announcement = _Announcement()
        for (product, _, after), movement in zip(plan, movements, strict=True):
            product.stock_quantity = after
            announcement.stock_changed(product, movement, was_low=was_low[product.pk])
            was_low[product.pk] = product.is_below_requirement
        announcement.write()
        _UPDATE_STOCK.save_many(list(changed))
        return movements


def _change_stock(
    product_id: int,
    *,
    delta: int,
    kind: str,
    audit: Audit,
    expected: int | None,
    versions: Collection[int] | None = None,
) -> Product:
    def check(product: Product) -> None:
        _check_version(product, versions)
        _check_expected(product, expected)
        new_quantity = product.stock_quantity + delta
        if delta < 0 and product.reserved_quantity:
            check_available(product, -delta)  # a plain decrement takes no held units
        if new_quantity < 0:
            raise InsufficientStock(available=product.stock_quantity, requested=-delta)
        if new_quantity > MAX_STOCK:
            raise StockLimitExceeded(current=product.stock_quantity, requested=delta)

    return _under_lock(
        product_id,
        check,
        lambda product: _write_stock(product, product.stock_quantity + delta, kind, audit),
    )


def _under_lock(
    product_id: int, check: Callable[[Product], None], write: Callable[[Product], None]
) -> Product:
    """Lock the product, `check` it (which raises a refusal), `write` if it passed."""

    def write_product(product: Product, _) -> Product:
        write(product)
        return product

    return under_lock(product_id, check, write_product)


Plan = TypeVar("Plan")
Result = TypeVar("Result")


def under_lock(
    product_id: int,
    check: Callable[[Product], Plan],
    write: Callable[[Product, Plan], Result],
) -> Result:
    """Lock the product, end its lapsed reservations, `check` it (which returns a plan or
    raises a refusal), and `write(product, plan)` if it passed; return what `write` does.

    Inside another transaction (an Idempotency-Key's) this joins it without a
    savepoint: a refusal or a missing row is decided before anything is written (the
    expiry of lapsed holds aside, which stands either way) and raised after the block,
    so the caller's transaction stays usable to record the answer. Only a database
    error propagates from inside (and breaks it). The reservations services use it too.
    """
    refusal = None
    with transaction.atomic(savepoint=False):
        try:
            product = _lock(product_id)
            _expire_due(product)
            plan = check(product)
        except (ObjectDoesNotExist, DomainError) as exc:
            refusal = exc
        else:
            result = write(product, plan)
    if refusal is not None:
        raise refusal
    return result


# The stock path's statements, compiled once (core/statements.py).
_LOCKED_PRODUCT = RowByKey(Product, lambda: Product.objects.select_for_update())
_INSERT_MOVEMENT = Insert(StockMovement)
_UPDATE_STOCK = Update(Product, ["stock_quantity", "version", "updated_at", "event_sequence"])
_HOLDS = ["reserved_quantity", "reservations_expire_at"]
_UPDATE_EXPIRED_HOLDS = Update(Product, _HOLDS)
_UPDATE_HOLDS = Update(Product, [*_HOLDS, "version", "updated_at", "event_sequence"])
_UPDATE_FULFILMENT = Update(
    Product, ["stock_quantity", *_HOLDS, "version", "updated_at", "event_sequence"]
)


def _lock(product_id: int) -> Product:
    """Read a product and hold its row lock until the surrounding transaction ends."""
    return _LOCKED_PRODUCT.get(product_id)


# Reservations: the reserved counter, under the product's row lock (reservations/services.py
# holds the workflows and the reservation rows).


def _expire_due(product: Product, now: datetime | None = None) -> int:
    """End a locked product's holds whose time has come, and bring its reserved counter
    and earliest expiry up to date; how many ended. Free (no query) unless one is due:
    `reservations_expire_at` is never later than the earliest active hold's expiry."""
    due = product.reservations_expire_at
    if due is None:
        return 0
    now = now or timezone.now()
    if due > now:
        return 0
    ended, reserved, earliest = holds.expire_due(product_id=product.pk, now=now)
    product.reserved_quantity, product.reservations_expire_at = reserved, earliest
    _UPDATE_EXPIRED_HOLDS.save(product)
    return ended


def expire_reservations(*, product_id: int, now: datetime | None = None) -> int:
    """End a product's lapsed holds now (the periodic tidy-up); how many ended."""
    with transaction.atomic():
        return _expire_due(_lock(product_id), now)


def check_available(product: Product, quantity: int) -> None:
    """Refuse with InsufficientAvailable unless `quantity` units are free of holds."""
    available = product.available_quantity
    if quantity > available:
        raise InsufficientAvailable(
            available=available, requested=quantity, reserved=product.reserved_quantity
        )


def check_on_hand(product: Product, quantity: int) -> None:
    """Refuse with InsufficientStock unless `quantity` units are on hand."""
    if quantity > product.stock_quantity:
        raise InsufficientStock(available=product.stock_quantity, requested=quantity)


def hold_stock(product: Product, *, quantity: int, expires_at: datetime, reservation: dict) -> None:
    """Add a hold of `quantity` units to a locked, checked product; a hold that leaves
    nothing available announces `stock.fully_reserved` (with the `reservation`)."""
    was_available = product.available_quantity
    product.reserved_quantity += quantity
    due = product.reservations_expire_at
    product.reservations_expire_at = expires_at if due is None else min(due, expires_at)
    _touch(product)
    announcement = _Announcement()
    if was_available and not product.available_quantity:
        announcement.add(product, EventType.STOCK_FULLY_RESERVED, reservation=reservation)
    _write_reservations(product, announcement)


def release_hold(product: Product, *, quantity: int) -> None:
    """End a locked product's hold of `quantity` units without moving stock."""
    product.reserved_quantity -= quantity
    _touch(product)
    _write_reservations(product, _Announcement())


def fulfil_hold(product: Product, *, held: int, quantity: int, audit: Audit) -> StockMovement:
    """End a locked product's hold of `held` units and take `quantity` (≤ held, checked
    on hand) from stock: one `decrement` movement with its events, in one UPDATE."""
    before, was_low = product.stock_quantity, product.is_below_requirement
    product.stock_quantity -= quantity
    product.reserved_quantity -= held
    _touch(product)
    movement = _record(product, Kind.DECREMENT, before=before, audit=audit)
    announcement = _Announcement()
    announcement.stock_changed(product, movement, was_low=was_low)
    announcement.write()
    _UPDATE_FULFILMENT.save(product)
    return movement


def _touch(product: Product) -> None:
    """A locked product whose holds changed: a new version (what it shows has changed).
    Its earliest expiry stays a lower bound when a hold ends early (the next tidy-up
    recomputes it); with no hold left it is cleared."""
    if not product.reserved_quantity:
        product.reservations_expire_at = None
    product.version += 1
    product.updated_at = timezone.now()


def _write_reservations(product: Product, announcement: "_Announcement") -> None:
    """Write a locked, touched product's reserved counter, with its events."""
    if announcement.events:
        announcement.write()
    _UPDATE_HOLDS.save(product)


def _write_stock(product: Product, new_quantity: int, kind: str, audit: Audit) -> None:
    """Write a locked product's movement, its events and its new stock: two INSERTs and
    one UPDATE, compiled once (the models have no signals for `save()` to send)."""
    before, was_low = product.stock_quantity, product.is_below_requirement
    product.stock_quantity = new_quantity
    product.version += 1
    product.updated_at = timezone.now()
    movement = _record(product, kind, before=before, audit=audit)
    announcement = _Announcement()
    announcement.stock_changed(product, movement, was_low=was_low)
    announcement.write()
    _UPDATE_STOCK.save(product)


class _Announcement:
    """The events of one change, numbered per product from its `event_sequence` (which
    the caller then writes with the product, under the same row lock)."""

    def __init__(self) -> None:
        self.events: list[events.NewEvent] = []

    def add(
        self,
        product: Product,
        event_type: EventType,
        snapshot: dict | None = None,
        movement: dict | None = None,
        reservation: dict | None = None,
    ) -> None:
        product.event_sequence += 1
        data = {"product": snapshot or represent_product(product)}
        if movement is not None:
            data["movement"] = movement
        if reservation is not None:
            data["reservation"] = reservation
        self.events.append(events.NewEvent(event_type, product.pk, product.event_sequence, data))

    def stock_changed(
        self, product: Product, movement: StockMovement, *, was_low: bool | None
    ) -> None:
        """A movement's event, then the threshold crossing it made, if any (edge-
        triggered: staying low through ten decrements is one `stock.low`)."""
        snapshot = represent_product(product)
        self.add(product, EventType.STOCK_CHANGED, snapshot, represent_movement(movement))
        self.crossing(product, was_low=was_low, snapshot=snapshot)

    def crossing(
        self, product: Product, *, was_low: bool | None, snapshot: dict | None = None
    ) -> None:
        low = product.is_below_requirement
        if was_low is not None and low != was_low:
            self.add(product, EventType.STOCK_LOW if low else EventType.STOCK_RECOVERED, snapshot)

    def write(self) -> None:
        events.record(self.events)


def _record(product: Product, kind: str, *, before: int, audit: Audit) -> StockMovement:
    movement = _movement(product, kind, before, product.stock_quantity, audit)
    _INSERT_MOVEMENT.save(movement)
    return movement


def _movement(product: Product, kind: str, before: int, after: int, audit: Audit) -> StockMovement:
    user = audit.user if getattr(audit.user, "is_authenticated", False) else None
    return StockMovement(
        product=product,
        sku=product.sku,
        product_name=product.name,
        kind=kind,
        reason=audit.reason or DEFAULT_REASON[kind],
        note=audit.note,
        reference=audit.reference,
        delta=after - before,
        quantity_before=before,
        quantity_after=after,
        user=user,
        source=audit.source,
    )


def _describe(index: int, line: AdjustmentLine, product_id: int | None = None) -> dict:
    described = {"line": index, "delta": line.delta}
    if line.product_id is not None or product_id is not None:
        described["product"] = line.product_id or product_id
    if line.sku is not None:
        described["sku"] = line.sku
    return described


def _check_version(product: Product, expected_versions: Collection[int] | None) -> None:
    """If-Match: refuse unless the locked product is still at one of `expected_versions`."""
    if expected_versions is not None and product.version not in expected_versions:
        raise VersionMismatch(current=product.version)


def _check_expected(product: Product, expected: int | None) -> None:
    if expected is not None and product.stock_quantity != expected:
        raise StockChanged(current=product.stock_quantity, expected=expected)


def _check_whole_number(
    value: Any, *, field: str, minimum: int, maximum: int = MAX_STOCK, nonzero: bool = False
) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidQuantity(f"{field} must be a whole number.")
    if not minimum <= value <= maximum or (nonzero and value == 0):
        zero = ", not 0" if nonzero else ""
        raise InvalidQuantity(f"{field} must be between {minimum} and {maximum}{zero}.")


def _check_operation_quantity(quantity: int) -> None:
    _check_whole_number(quantity, field="quantity", minimum=1)


def _check_quantity_value(quantity: int, *, field: str) -> None:
    _check_whole_number(quantity, field=field, minimum=0)


def _check_delta(delta: int) -> None:
    _check_whole_number(delta, field="delta", minimum=-MAX_STOCK, nonzero=True)


def _is_sku_conflict(exc: IntegrityError) -> bool:
    """A unique-SKU violation: a race that the up-front check lost."""
    message = str(exc)  # PostgreSQL names the index, SQLite the column
    return "product_sku_key_unique" in message or "products_product.sku_key" in message
