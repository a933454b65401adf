"""Every rule that changes a product or its stock.

The API, the admin and the management commands all call these functions; nothing
else writes `stock_quantity`. Each one runs in its own transaction and, when it
changes an existing product, holds that product's row lock (`SELECT ... FOR UPDATE`)
from the read to the commit, so concurrent changes queue up instead of overwriting
each other. The CHECK constraints on the table back these rules up.
"""

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from . import selectors
from .models import MAX_STOCK, Product

EDITABLE_FIELDS = frozenset(
    {"sku", "name", "description", "price", "stock_quantity", "low_stock_threshold"}
)


class InventoryError(Exception):
    """A business rule refused the change; nothing was written."""

    code = "inventory_error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidQuantity(InventoryError):
    code = "invalid_quantity"


class InsufficientStock(InventoryError):
    code = "insufficient_stock"

    def __init__(self, *, available: int, requested: int) -> None:
        super().__init__(
            f"Insufficient stock: {requested} requested but only {available} available.",
            available=available,
            requested=requested,
        )


class StockLimitExceeded(InventoryError):
    code = "stock_limit_exceeded"

    def __init__(self, *, current: int, requested: int) -> None:
        super().__init__(
            f"Stock cannot exceed {MAX_STOCK}: {current} in stock, {requested} more requested.",
            available=current,
            requested=requested,
        )


class DuplicateSku(InventoryError):
    code = "duplicate_sku"

    def __init__(self, sku: str) -> None:
        super().__init__(f"A product with SKU {sku!r} already exists.", sku=sku)


def create_product(
    *,
    sku: str,
    name: str,
    description: str = "",
    price: Decimal = Decimal("0.00"),
    stock_quantity: int = 0,
    low_stock_threshold: int = 0,
) -> Product:
    """Create a product, with its initial stock."""
    _check_quantity_value(stock_quantity, field="stock_quantity")
    if selectors.sku_taken(sku):
        raise DuplicateSku(sku)
    try:
        with transaction.atomic():
            return Product.objects.create(
                sku=sku,
                name=name,
                description=description,
                price=price,
                stock_quantity=stock_quantity,
                low_stock_threshold=low_stock_threshold,
            )
    except IntegrityError as exc:
        if _is_sku_conflict(exc):
            raise DuplicateSku(sku) from exc
        raise


def update_product(*, product_id: int, changes: Mapping[str, Any]) -> Product:
    """Change a product's fields, including a direct set of its stock, under its row lock."""
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"Not editable: {', '.join(sorted(unknown))}")
    if "stock_quantity" in changes:
        _check_quantity_value(changes["stock_quantity"], field="stock_quantity")
    if "sku" in changes and selectors.sku_taken(changes["sku"], exclude_id=product_id):
        raise DuplicateSku(changes["sku"])
    try:
        with transaction.atomic():
            product = _lock(product_id)
            for field, value in changes.items():
                setattr(product, field, value)
            product.save()
    except IntegrityError as exc:
        if _is_sku_conflict(exc):
            raise DuplicateSku(changes["sku"]) from exc
        raise
    return product


def increment_stock(*, product_id: int, quantity: int) -> Product:
    """Add `quantity` (≥ 1) units to a product's stock."""
    _check_operation_quantity(quantity)
    return _change_stock(product_id=product_id, delta=quantity)


def decrement_stock(*, product_id: int, quantity: int) -> Product:
    """Remove `quantity` (≥ 1) units; refuse with InsufficientStock rather than go below 0."""
    _check_operation_quantity(quantity)
    return _change_stock(product_id=product_id, delta=-quantity)


def _change_stock(*, product_id: int, delta: int) -> Product:
    with transaction.atomic():
        product = _lock(product_id)
        new_quantity = product.stock_quantity + delta
        if new_quantity < 0:
            raise InsufficientStock(available=product.stock_quantity, requested=-delta)
        if new_quantity > MAX_STOCK:
            raise StockLimitExceeded(current=product.stock_quantity, requested=delta)
        product.stock_quantity = new_quantity
        product.save(update_fields=["stock_quantity", "updated_at"])
    return product


def _lock(product_id: int) -> Product:
    """Read a product and hold its row lock until the surrounding transaction ends."""
    return Product.objects.select_for_update().get(pk=product_id)


def _check_operation_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidQuantity("Quantity must be a whole number.")
    if not 1 <= quantity <= MAX_STOCK:
        raise InvalidQuantity(f"Quantity must be between 1 and {MAX_STOCK}.")


def _check_quantity_value(quantity: int, *, field: str) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidQuantity(f"{field} must be a whole number.")
    if not 0 <= quantity <= MAX_STOCK:
        raise InvalidQuantity(f"{field} must be between 0 and {MAX_STOCK}.")


def _is_sku_conflict(exc: IntegrityError) -> bool:
    """A unique-SKU violation: a race that the up-front check lost."""
    return "product_sku_ci_unique" in str(exc)
