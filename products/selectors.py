"""Read-side queries worth naming."""

from collections.abc import Iterable

from django.db.models import F, Func, QuerySet, TextField, Value
from django.db.models.functions import Lower

from .models import Product, StockMovement


def below_requirement(queryset: QuerySet[Product] | None = None) -> QuerySet[Product]:
    """Products whose stock is at or below their low-stock threshold."""
    queryset = Product.objects.all() if queryset is None else queryset
    return queryset.filter(stock_quantity__lte=F("low_stock_threshold"))


def with_sku(sku: str) -> QuerySet[Product]:
    """The product with this SKU, ignoring case (zero or one row).

    Compares LOWER(sku) so the lookup can use the unique index on that expression.
    """
    return Product.objects.alias(sku_lower=Lower("sku")).filter(sku_lower=Lower(Value(sku)))


def sku_taken(sku: str, *, exclude_id: int | None = None) -> bool:
    """Whether another product already uses this SKU, ignoring case."""
    queryset = with_sku(sku)
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    return queryset.exists()


class SearchText(Func):
    """A product's SKU, name and description in one string: `sku || ' ' || name || ' ' ||
    description`, the very expression that the `product_search_trgm` index holds (see
    migration 0008), so one trigram index answers a search over all three."""

    template = "(%(expressions)s)"
    arg_joiner = " || ' ' || "
    output_field = TextField()

    def __init__(self):
        super().__init__(F("sku"), F("name"), F("description"))


def search(queryset: QuerySet[Product], terms: Iterable[str]) -> QuerySet[Product]:
    """Products whose SKU, name or description contain every term, ignoring case.

    `UPPER(search text) LIKE UPPER('%term%')`: on PostgreSQL a trigram index scan.
    """
    queryset = queryset.alias(search_text=SearchText())
    for term in terms:
        queryset = queryset.filter(search_text__icontains=term)
    return queryset


def movements() -> QuerySet[StockMovement]:
    """The ledger, newest first, with each movement's user."""
    return StockMovement.objects.select_related("user").order_by("-id")
