import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from .models import StockMovement


@extend_schema_field(OpenApiTypes.INT64)
class IntegerFilter(django_filters.NumberFilter):
    """A whole number ("1.5" or "1e5" is a 400, not a silent match on nothing)."""

    field_class = forms.IntegerField


class StockMovementFilter(django_filters.FilterSet):
    product = IntegerFilter(field_name="product_id")
    sku = django_filters.CharFilter(field_name="sku", lookup_expr="iexact", max_length=64)
    kind = django_filters.ChoiceFilter(choices=StockMovement.Kind.choices)
    reason = django_filters.ChoiceFilter(choices=StockMovement.Reason.choices)
    source = django_filters.ChoiceFilter(choices=StockMovement.Source.choices)
    user = IntegerFilter(field_name="user_id", label="User id")
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)"
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601)"
    )

    class Meta:
        model = StockMovement
        fields = []
