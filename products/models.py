from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

# Stock and thresholds are 64-bit signed integers in every database we support.
MAX_STOCK = 2**63 - 1


class Product(models.Model):
    sku = models.CharField("SKU", max_length=64, help_text="Unique, case-insensitive.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("adjust_stock", "Can increment and decrement stock")]
        constraints = [
            models.UniqueConstraint(
                Lower("sku"),
                name="product_sku_ci_unique",
                violation_error_message="A product with this SKU already exists.",
            ),
            models.CheckConstraint(condition=~Q(sku=""), name="product_sku_not_blank"),
            models.CheckConstraint(
                condition=Q(stock_quantity__gte=0), name="product_stock_quantity_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(low_stock_threshold__gte=0),
                name="product_low_stock_threshold_gte_0",
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="product_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} — {self.name}"

    @property
    def is_below_requirement(self) -> bool:
        return self.stock_quantity <= self.low_stock_threshold
