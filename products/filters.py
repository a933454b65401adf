from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from .models import StockMovement


@extend_schema_field(OpenApiTypes.INT64)
class IntegerFilter(django_filters.NumberFilter):
    """A 64-bit whole number ("1.5" or "1e5" is a 400, not a silent match on nothing)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", -(2**63))
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class UtcDateTimeField(IsoDateTimeField):
    def clean(self, value):
        if value == "":
            raise forms.ValidationError("Give a date-time, or leave the parameter out.")
        moment = super().clean(value)
        if moment is None:
            return None
        try:  # an offset such as +20:09 is valid ISO 8601 but not for the database
            return moment.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Out of range.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time, any offset, compared in UTC."""

    field_class = UtcDateTimeField


class StockMovementFilter(django_filters.FilterSet):
    product = IntegerFilter(field_name="product_id")
    sku = django_filters.CharFilter(field_name="sku", lookup_expr="iexact", max_length=64)
    kind = django_filters.ChoiceFilter(choices=StockMovement.Kind.choices)
    reason = django_filters.ChoiceFilter(choices=StockMovement.Reason.choices)
    source = django_filters.ChoiceFilter(choices=StockMovement.Source.choices)
    user = IntegerFilter(field_name="user_id", label="User id")
    created_after = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)"
    )
    created_before = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601)"
    )

    class Meta:
        model = StockMovement
        fields = []
