import django_filters
from django.utils import timezone

from core.filters import IntegerFilter, UtcDateTimeFilter, text_filter

from .models import Reservation

State = Reservation.State


class ReservationFilter(django_filters.FilterSet):
    product = IntegerFilter(field_name="product_id", min_value=1)
    state = django_filters.ChoiceFilter(
        choices=State.choices,
        method="filter_state",
        label="State at this instant (an active hold past its expiry is expired)",
    )
    reference = text_filter(100, field_name="reference", label="Reference, exactly")
    expires_before = UtcDateTimeFilter(
        field_name="expires_at", lookup_expr="lt", label="Expires before (ISO 8601)"
    )
    expires_after = UtcDateTimeFilter(
        field_name="expires_at", lookup_expr="gte", label="Expires at or after (ISO 8601)"
    )

    class Meta:
        model = Reservation
        fields = []

    def filter_state(self, queryset, name, value):
        return queryset.filter(Reservation.in_state_at(value, timezone.now()))
