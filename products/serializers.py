"""Request and response shapes. Field validation only: stock rules live in services."""

from collections.abc import Mapping
from decimal import Decimal

from django.core.validators import RegexValidator
from rest_framework import serializers

from . import selectors
from .models import MAX_STOCK, Product

no_control_characters = RegexValidator(
    r"^[^\x00-\x1f\x7f]*\Z", "Control characters are not allowed."
)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer. Strings, floats (even 2.0) and booleans are refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string. Numbers are refused rather than turned into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is a 400 rather than silently ignored."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)


class ProductSerializer(StrictSerializer, serializers.ModelSerializer):
    """A product and its stock."""

    sku = StrictCharField(
        max_length=64,
        validators=[no_control_characters],
        help_text="Stock-keeping unit: 1–64 characters, unique ignoring case.",
    )
    name = StrictCharField(max_length=200, validators=[no_control_characters])
    description = StrictCharField(max_length=5000, required=False, allow_blank=True)
    price = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0"),
        required=False,
    )
    stock_quantity = StrictIntegerField(
        min_value=0,
        max_value=MAX_STOCK,
        required=False,
        help_text="Units in stock. Set on create (initial stock) or by PUT/PATCH; "
        "use increment/decrement for movements.",
    )
    low_stock_threshold = StrictIntegerField(min_value=0, max_value=MAX_STOCK, required=False)
    is_below_requirement = serializers.BooleanField(
        read_only=True, help_text="stock_quantity <= low_stock_threshold"
    )

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "name",
            "description",
            "price",
            "stock_quantity",
            "low_stock_threshold",
            "is_below_requirement",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_sku(self, value: str) -> str:
        exclude_id = self.instance.pk if self.instance is not None else None
        if selectors.sku_taken(value, exclude_id=exclude_id):
            raise serializers.ValidationError(
                "A product with this SKU already exists.", code="unique"
            )
        return value


class StockChangeSerializer(StrictSerializer):
    """How many units to add or remove."""

    quantity = StrictIntegerField(
        min_value=1, max_value=MAX_STOCK, help_text="Units to add or remove (≥ 1)."
    )
