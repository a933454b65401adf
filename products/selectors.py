"""Read-side queries worth naming."""

from collections.abc import Iterable

from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Greatest, NullIf
from django.db.models.lookups import IContains
from django.utils import timezone

from core.statements import RowByKey
from reservations.models import Reservation

from .models import Product, StockMovement
from .text import normalize_sku

_PRODUCT_BY_ID = RowByKey(Product, lambda: Product.objects.all())


def product(product_id: int) -> Product:
    """The product with this id (`Product.DoesNotExist` if none): a GET by id's one
    query, compiled once."""
    return _PRODUCT_BY_ID.get(product_id)


def holds_of(product: Product) -> QuerySet[Reservation]:
    """A product's reservations holding units now, the soonest to expire first."""
    active = Reservation.in_state_at(Reservation.State.ACTIVE, timezone.now())
    return (
        product.reservations.filter(active)
        .select_related("created_by")
        .order_by("expires_at", "id")
    )


def below_requirement(queryset: QuerySet[Product] | None = None) -> QuerySet[Product]:
    """Products whose stock is at or below their low-stock threshold."""
    queryset = Product.objects.all() if queryset is None else queryset
    return queryset.filter(stock_quantity__lte=F("low_stock_threshold"))


def with_availability(queryset: QuerySet[Product] | None = None) -> QuerySet[Product]:
    """Products with `reserved_now` (the units their reservations hold at this instant)
    and `available_now` (on hand minus that, never below 0): for filters, exports and
    the admin. (The API's pages and single reads use settle_availability instead, which
    leaves their SQL as it is.)

    Exact without waiting for the expiry task: the stored counter while no hold has
    lapsed (`reservations_expire_at` is never later than the earliest expiry), else the
    sum of the holds still running, a subquery evaluated only for those rows.
    """
    queryset = Product.objects.all() if queryset is None else queryset
    if "reserved_now" in queryset.query.annotations:
        return queryset
    now = timezone.now()
    running = (
        Reservation.objects.filter(
            Reservation.in_state_at(Reservation.State.ACTIVE, now), product=OuterRef("pk")
        )
        .order_by()
        .values("product")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    reserved_now = Case(
        When(
            Q(reservations_expire_at__isnull=True) | Q(reservations_expire_at__gt=now),
            then=F("reserved_quantity"),
        ),
        default=Coalesce(Subquery(running), Value(0)),
        output_field=BigIntegerField(),
    )
    return queryset.annotate(reserved_now=reserved_now).annotate(
        available_now=Greatest(F("stock_quantity") - F("reserved_now"), Value(0))
    )


def settle_availability(products: Iterable[Product]) -> None:
    """Give the products whose earliest hold has lapsed (the expiry task not having
    tidied it yet) their exact `reserved_now`, in one query for all of them; the others,
    almost always all, keep their stored counter, which is exact, and cost nothing."""
    now = timezone.now()
    lapsed = {
        product.pk: product
        for product in products
        if product.reservations_expire_at is not None
        and product.reservations_expire_at <= now
        and "reserved_now" not in product.__dict__
    }
    if not lapsed:
        return
    running = dict(
        Reservation.objects.filter(
            Reservation.in_state_at(Reservation.State.ACTIVE, now), product_id__in=lapsed
        )
        .order_by()
        .values("product_id")
        .annotate(total=Sum("quantity"))
        .values_list("product_id", "total")
    )
    for pk, product in lapsed.items():
        product.reserved_now = running.get(pk, 0)


def with_sku(sku: str) -> QuerySet[Product]:
    """The product with this SKU (zero or one row), by its key: see normalize_sku."""
    return Product.objects.filter(sku_key=normalize_sku(sku))


def product_with_sku(sku: str, *, exclude_id: int | None = None) -> Product | None:
    """Another product that already has this SKU, if any."""
    queryset = with_sku(sku)
    if exclude_id is not None:
        queryset = queryset.exclude(pk=exclude_id)
    return queryset.only("pk", "sku").first()


def sku_problems(products: QuerySet) -> tuple[list[list[tuple[int, str]]], list[tuple[int, str]]]:
    """What stands in the way of the SKU rule: groups of `(id, sku)` of products whose
    SKUs are one SKU under normalize_sku, and products whose SKU has no identity at all
    (nothing visible).

    Reads only the id and SKU columns, so it works on a database whose products have no
    `sku_key` yet (migration 0009 and `manage.py sku_report` use it before it exists).
    """
    groups: dict[str, list[tuple[int, str]]] = {}
    rows = products.order_by("pk").values_list("pk", "sku").iterator(chunk_size=2000)
    for pk, sku in rows:
        groups.setdefault(normalize_sku(sku), []).append((pk, sku))
    blank = groups.pop("", [])
    return [group for group in groups.values() if len(group) > 1], blank


class UpperContains(IContains):
    """`icontains` against a column that holds its text in upper case already
    (`Product.search_text`): `column LIKE UPPER('%term%')` on PostgreSQL, the column as
    it is, which its trigram index serves (SQLite's LIKE ignores ASCII case, as for
    `icontains`)."""

    lookup_name = "upper_contains"

    def get_rhs_op(self, connection, rhs):
        return connection.operators[IContains.lookup_name] % rhs


def search(queryset: QuerySet[Product], terms: Iterable[str]) -> QuerySet[Product]:
    """Products whose SKU, name or description contain every term, ignoring case.

    `search_text LIKE UPPER('%term%')`: on PostgreSQL a trigram index scan, or a cheap
    filter on each row read in the page's order.
    """
    for term in terms:
        queryset = queryset.filter(UpperContains(F("search_text"), term))
    return queryset


def movements() -> QuerySet[StockMovement]:
    """The ledger, newest first, with each movement's user."""
    return StockMovement.objects.select_related("user").order_by("-id")


def most_urgent(limit: int) -> QuerySet[Product]:
    """Products at or below their threshold, most urgent first: out of stock, then the
    smallest share of the threshold left, then the largest shortfall."""
    share_left = ExpressionWrapper(
        Cast("stock_quantity", FloatField()) / NullIf("low_stock_threshold", 0),
        output_field=FloatField(),
    )
    out_of_stock = Case(When(stock_quantity=0, then=0), default=1)
    return below_requirement().order_by(
        out_of_stock.asc(),
        share_left.asc(nulls_first=True),
        (F("stock_quantity") - F("low_stock_threshold")).asc(),
        "id",
    )[:limit]


def flows_since(since) -> dict[str, int]:
    """Units in (positive changes) and out (negative) over the ledger since `since`,
    and how many movements."""
    totals = StockMovement.objects.filter(created_at__gte=since).aggregate(
        units_in=Coalesce(Sum("delta", filter=Q(delta__gt=0)), 0),
        units_out=Coalesce(-Sum("delta", filter=Q(delta__lt=0)), 0),
        movements=Count("id"),
    )
    return totals
