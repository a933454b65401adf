from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.functions import Upper
from django.utils import timezone

from .text import ONE_LINE_RULES, SKU_RULES, no_nul_characters, normalize_sku

# Stock and thresholds are 64-bit signed integers in every database we support.
MAX_STOCK = 2**63 - 1
MAX_DESCRIPTION_LENGTH = 5000
MAX_NOTE_LENGTH = 1000


class SkuKeyField(models.TextField):
    """A SKU's identity, `normalize_sku(sku)`, kept in step with the `sku` field on every
    save (bulk_create included), the way `auto_now` keeps a timestamp: unique on
    products, so "the same SKU" is decided by one function and one index."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def pre_save(self, model_instance, add):
        key = normalize_sku(model_instance.sku)
        setattr(model_instance, self.attname, key)
        return key


class SearchText(Func):
    """A product's SKU, name and description in one string: `sku || ' ' || name || ' ' ||
    description`, what `?search=` looks in."""

    template = "(%(expressions)s)"
    arg_joiner = " || ' ' || "
    output_field = models.TextField()

    def __init__(self):
        super().__init__(F("sku"), F("name"), F("description"))


class Product(models.Model):
    sku = models.CharField(
        "SKU",
        max_length=64,
        validators=SKU_RULES,
        help_text="Unique: SKUs that differ only in case, width or invisible characters "
        "are the same SKU.",
    )
    sku_key = SkuKeyField("SKU key")
    name = models.CharField(max_length=200, validators=ONE_LINE_RULES)
    description = models.TextField(
        blank=True,
        default="",
        max_length=MAX_DESCRIPTION_LENGTH,
        validators=[MaxLengthValidator(MAX_DESCRIPTION_LENGTH), no_nul_characters],
    )
    price = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    stock_quantity = models.BigIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(MAX_STOCK)]
    )
    low_stock_threshold = models.BigIntegerField(
        default=0, validators=[MinValueValidator(0), MaxValueValidator(MAX_STOCK)]
    )
    # Units held by active reservations (the reservations app), kept by the services
    # under the product's row lock; `reservations_expire_at` is the earliest expiry among
    # them (null: none), so that a write tidies lapsed holds only when one is due.
    reserved_quantity = models.BigIntegerField(default=0, editable=False)
    reservations_expire_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Bumped by every change: the ETag, for If-Match on PUT/PATCH.
    version = models.PositiveBigIntegerField(default=1, editable=False)
    # How many events this product has announced: the last one's `sequence`.
    event_sequence = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # What `?search=` matches, in upper case, kept by the database on every write (a
    # stored generated column) and trigram-indexed on PostgreSQL (migration 0014): a
    # search compares it as it is, rather than joining and upper-casing the three
    # columns of every row it reads (half the time of a search that reads many rows).
    search_text = models.GeneratedField(
        expression=Upper(SearchText()), output_field=models.TextField(), db_persist=True
    )

    class Meta:
        permissions = [
            ("adjust_stock", "Can increment and decrement stock"),
            ("count_stock", "Can set stock to a counted quantity"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["sku_key"],
                name="product_sku_key_unique",
                violation_error_message="A product with this SKU already exists.",
            ),
            models.CheckConstraint(condition=~Q(sku=""), name="product_sku_not_blank"),
            models.CheckConstraint(condition=~Q(sku_key=""), name="product_sku_key_not_blank"),
            models.CheckConstraint(
                condition=Q(stock_quantity__gte=0), name="product_stock_quantity_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(low_stock_threshold__gte=0),
                name="product_low_stock_threshold_gte_0",
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_gte_0"),
            models.CheckConstraint(
                condition=Q(reserved_quantity__gte=0), name="product_reserved_quantity_gte_0"
            ),
        ]
        indexes = [
            # The low-stock list compares two columns, which no plain index serves; a
            # partial index holds exactly the rows below requirement, in id order.
            models.Index(
                fields=["id"],
                condition=Q(stock_quantity__lte=F("low_stock_threshold")),
                name="product_below_requirement",
            ),
            # Range filters and ?ordering=: each an index scan in (field, id) order,
            # since the list always sorts by id last.
            *(
                models.Index(fields=[field, "id"], name=f"product_{field}_order")
                for field in ("sku", "name", "stock_quantity", "price", "updated_at")
            ),
            # The products whose holds the expiry task has to tidy (few rows).
            models.Index(
                fields=["reservations_expire_at"],
                condition=Q(reservations_expire_at__isnull=False),
                name="product_reservations_expire",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} — {self.name}"

    @property
    def is_below_requirement(self) -> bool:
        return self.stock_quantity <= self.low_stock_threshold

    @property
    def held_quantity(self) -> int:
        """Units held by reservations now: `reserved_now` where a read set it (selectors'
        with_availability and settle_availability: lapsed holds left out), else the stored
        counter (exact while no hold has lapsed, and under the row lock, which tidies)."""
        return self.__dict__.get("reserved_now", self.reserved_quantity)

    @property
    def available_quantity(self) -> int:
        """On hand minus held, never negative (a count may leave fewer than are held)."""
        return max(self.stock_quantity - self.held_quantity, 0)

    @property
    def is_over_reserved(self) -> bool:
        """Fewer units on hand than reservations hold: a count found them missing."""
        return self.held_quantity > self.stock_quantity


class StockMovement(models.Model):
    """One change of one product's stock: the append-only ledger.

    Written by the services in the same transaction as the change. The product's SKU
    and name are copied, so the history outlives the product.
    """

    class Kind(models.TextChoices):
        INITIAL = "initial"
        INCREMENT = "increment"
        DECREMENT = "decrement"
        COUNT = "count"
        ADJUSTMENT = "adjustment"

    class Reason(models.TextChoices):
        RECEIVED = "received"
        SHIPPED = "shipped"
        RETURNED = "returned"
        DAMAGED = "damaged"
        LOST = "lost"
        CORRECTION = "correction"
        COUNT = "count"
        OTHER = "other"

    class Source(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Admin"
        COMMAND = "command", "Command"

    product = models.ForeignKey(
        Product, null=True, on_delete=models.SET_NULL, related_name="movements"
    )
    sku = models.CharField("SKU", max_length=64)
    sku_key = SkuKeyField("SKU key")
    product_name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind)
    reason = models.CharField(max_length=16, choices=Reason)
    note = models.TextField(
        blank=True,
        default="",
        max_length=MAX_NOTE_LENGTH,
        validators=[MaxLengthValidator(MAX_NOTE_LENGTH), no_nul_characters],
    )
    reference = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=ONE_LINE_RULES,
        help_text="E.g. a purchase order or delivery number.",
    )
    delta = models.BigIntegerField()
    quantity_before = models.BigIntegerField()
    quantity_after = models.BigIntegerField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16, choices=Source)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["product", "-id"], name="movement_product_newest"),
            models.Index(fields=["sku_key", "-id"], name="movement_sku_newest"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity_after=F("quantity_before") + F("delta")),
                name="movement_after_is_before_plus_delta",
            ),
            models.CheckConstraint(
                condition=Q(quantity_before__gte=0, quantity_after__gte=0),
                name="movement_quantities_gte_0",
            ),
            models.CheckConstraint(
                condition=~Q(delta=0) | Q(kind="count"), name="movement_delta_not_0_unless_count"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.delta:+d} ({self.kind})"


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key and the response its first request got.

    `status_code` is null until that request has finished; the row lock taken while it
    runs is what tells a concurrent retry that it is still in progress.
    """

    scope = models.CharField(max_length=64)  # whose key: "user:<id>"
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of method, path and body
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"

    def is_expired(self, ttl: timedelta) -> bool:
        return self.created_at < timezone.now() - ttl
