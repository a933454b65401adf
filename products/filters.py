import django_filters

from .models import StockMovement


class StockMovementFilter(django_filters.FilterSet):
    product = django_filters.NumberFilter(field_name="product_id", min_value=1)
    sku = django_filters.CharFilter(field_name="sku", lookup_expr="iexact", max_length=64)
    kind = django_filters.ChoiceFilter(choices=StockMovement.Kind.choices)
    reason = django_filters.ChoiceFilter(choices=StockMovement.Reason.choices)
    source = django_filters.ChoiceFilter(choices=StockMovement.Source.choices)
    user = django_filters.NumberFilter(field_name="user_id", min_value=1, label="User id")
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created at or after (ISO 8601)"
    )
    created_before = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created before (ISO 8601)"
    )

    class Meta:
        model = StockMovement
        fields = []
