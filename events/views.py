import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets

from core.filters import IntegerFilter
from core.permissions import ModelPermissions
from core.views import StrictQueryParamsMixin, ThrottleFirstMixin

from . import services
from .models import Event, EventType
from .pagination import AfterPositionPagination
from .serializers import EventSerializer


class EventFilter(django_filters.FilterSet):
    after = IntegerFilter(
        field_name="position",
        lookup_expr="gt",
        min_value=0,
        label="Only events after this position (the last one you read).",
    )
    type = django_filters.ChoiceFilter(choices=EventType.choices)
    product = IntegerFilter(field_name="product_id", min_value=1, label="Product id")

    class Meta:
        model = Event
        fields = []


@extend_schema_view(
    list=extend_schema(
        summary="The event feed, oldest first",
        description="Every event, in the order it was published: walk it with `after` "
        "(the `position` of the last event you processed) to reconcile what webhooks "
        "delivered, or instead of them. Inventory admins only.",
    )
)
class EventViewSet(
    ThrottleFirstMixin, StrictQueryParamsMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    queryset = Event.objects.filter(position__isnull=False).order_by("position")
    serializer_class = EventSerializer
    permission_classes = [ModelPermissions]
    filter_backends = [DjangoFilterBackend]
    filterset_class = EventFilter
    pagination_class = AfterPositionPagination

    @property
    def paginator(self):
        # Always `after`: the mixin's switch to an id cursor (for ?cursor=) is for lists
        # walked in id order, not for the feed.
        if not hasattr(self, "_paginator"):
            self._paginator = self.pagination_class()
        return self._paginator

    def list(self, request, *args, **kwargs):
        events = self.filter_queryset(self.get_queryset())  # a bad filter is a 400 first
        # Publish what has committed since the worker last did, so that the feed is
        # complete without one (the embedded SQLite default has none).
        services.publish()
        page = self.paginate_queryset(events)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)
