import django_filters
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from core.filters import FilterBackend, IntegerFilter
from core.permissions import HasPermission, ModelPermissions
from core.views import StrictQueryParamsMixin, ThrottleFirstMixin, example, positive_id

from . import services
from .models import Delivery, DeliveryStatus, Event, EventType, WebhookEndpoint
from .pagination import AfterPositionPagination
from .serializers import (
    DeliveryDetailSerializer,
    DeliverySerializer,
    EventSerializer,
    RedeliveredSerializer,
    RotateSecretSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
)


class EventFilter(django_filters.FilterSet):
    after = IntegerFilter(
        min_value=0,
        field_name="position",
        lookup_expr="gt",
        label="Only events after this position (the last one you read).",
    )
    type = django_filters.ChoiceFilter(choices=EventType.choices)
    product = IntegerFilter(min_value=1, field_name="product_id", label="Product id")

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
    filter_backends = [FilterBackend]
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


# Webhooks

NEED_POSTGRESQL = (
    "`deliveries_need_postgresql`: this server runs on SQLite, where webhooks cannot be "
    "delivered (set DATABASE_URL to PostgreSQL)."
)
URL_REFUSED = OpenApiResponse(
    description="`webhook_url_refused`: the URL may not be called: not https (unless "
    "allowed), credentials in it, a host that does not resolve, or one that resolves to a "
    "loopback, private, link-local or reserved address (the SSRF rule)."
)
ENDPOINT_CONFLICT = OpenApiResponse(
    description=f"{NEED_POSTGRESQL} Or `endpoint_disabled`: activate the endpoint first."
)
DELIVERY_CONFLICT = OpenApiResponse(
    description=f"`delivery_in_progress`: it is queued or waiting for a retry already; "
    f"`endpoint_disabled`: activate its endpoint first; or {NEED_POSTGRESQL}"
)


class CanChangeEndpoints(HasPermission):
    permission = "events.change_webhookendpoint"


class CanRedeliver(HasPermission):
    permission = "events.change_delivery"


def _endpoint_id(view) -> int:
    endpoint_id = positive_id(view.kwargs["pk"])
    if not WebhookEndpoint.objects.filter(pk=endpoint_id).exists():
        raise NotFound()
    return endpoint_id


SUBSCRIPTION = example(
    "Low-stock alerts to your service",
    {
        "url": "https://hooks.example.com/inventory",
        "event_types": ["stock.low", "stock.recovered"],
        "description": "Reorder alerts",
        "is_active": True,
    },
)


@extend_schema_view(
    list=extend_schema(summary="List webhook endpoints"),
    retrieve=extend_schema(summary="Get a webhook endpoint"),
    create=extend_schema(
        summary="Subscribe a URL to events",
        description="The answer carries the signing `secret`, this once.",
        examples=[SUBSCRIPTION],
        responses={
            201: WebhookEndpointWithSecretSerializer,
            409: OpenApiResponse(description=NEED_POSTGRESQL),
            422: URL_REFUSED,
        },
    ),
    update=extend_schema(
        summary="Replace a webhook endpoint's settings",
        examples=[SUBSCRIPTION],
        responses={200: WebhookEndpointSerializer, 409: ENDPOINT_CONFLICT, 422: URL_REFUSED},
    ),
    partial_update=extend_schema(
        summary="Change some of a webhook endpoint's settings",
        description="`is_active: true` re-enables a disabled endpoint (clearing its reason).",
        examples=[example("Re-enable it", {"is_active": True})],
        responses={200: WebhookEndpointSerializer, 409: ENDPOINT_CONFLICT, 422: URL_REFUSED},
    ),
    destroy=extend_schema(summary="Delete a webhook endpoint and its deliveries"),
)
class WebhookEndpointViewSet(ThrottleFirstMixin, StrictQueryParamsMixin, viewsets.ModelViewSet):
    """Webhook endpoints: inventory admins only."""

    queryset = WebhookEndpoint.objects.order_by("id")
    serializer_class = WebhookEndpointSerializer
    permission_classes = [ModelPermissions]
    filter_backends = []

    def get_serializer_class(self):
        return {
            "rotate_secret": RotateSecretSerializer,
            "redeliver_failed": None,
        }.get(self.action, WebhookEndpointSerializer) or WebhookEndpointSerializer

    def get_object(self):
        try:
            endpoint = self.get_queryset().get(pk=positive_id(self.kwargs["pk"]))
        except WebhookEndpoint.DoesNotExist:
            raise NotFound() from None
        self.check_object_permissions(self.request, endpoint)
        return endpoint

    def create(self, request, *args, **kwargs):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = services.create_endpoint(**body.validated_data)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data, status=201)

    def update(self, request, *args, **kwargs):
        endpoint = self.get_object()
        body = self.get_serializer(endpoint, data=request.data, partial=kwargs.get("partial"))
        body.is_valid(raise_exception=True)
        endpoint = services.update_endpoint(endpoint_id=endpoint.pk, changes=body.validated_data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    def destroy(self, request, *args, **kwargs):
        services.delete_endpoint(endpoint_id=positive_id(self.kwargs["pk"]))
        return Response(status=204)

    @extend_schema(
        summary="Rotate the signing secret",
        description="A new secret, in the answer this once. During `overlap_seconds` both "
        "secrets sign each delivery (two `v1,` signatures in `webhook-signature`).",
        request=RotateSecretSerializer,
        responses={200: WebhookEndpointWithSecretSerializer},
        examples=[example("Both secrets sign for a day", {"overlap_seconds": 86400})],
    )
    @action(
        detail=True, methods=["post"], url_path="rotate-secret",
        permission_classes=[CanChangeEndpoints],
    )  # fmt: skip
    def rotate_secret(self, request, pk=None):
        endpoint_id = _endpoint_id(self)
        body = RotateSecretSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint = services.rotate_secret(endpoint_id=endpoint_id, **body.validated_data)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)

    @extend_schema(
        summary="Redeliver every failed delivery of this endpoint",
        description="Queued again in event order, with their webhook-ids unchanged.",
        request=None,
        responses={202: RedeliveredSerializer, 409: ENDPOINT_CONFLICT},
    )
    @action(
        detail=True, methods=["post"], url_path="redeliver-failed",
        permission_classes=[CanRedeliver],
    )  # fmt: skip
    def redeliver_failed(self, request, pk=None):
        count = services.redeliver_failed(endpoint_id=_endpoint_id(self))
        return Response({"redelivered": count}, status=202)


class DeliveryFilter(django_filters.FilterSet):
    endpoint = IntegerFilter(min_value=1, field_name="endpoint_id", label="Endpoint id")
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    event_type = django_filters.ChoiceFilter(field_name="event__type", choices=EventType.choices)

    class Meta:
        model = Delivery
        fields = []


@extend_schema_view(
    list=extend_schema(
        summary="Webhook deliveries, newest first",
        description="Filter by `endpoint`, `status` (`failed`: given up; `pending`: queued "
        "or waiting for a retry, see `next_attempt_at`) and `event_type`.",
    ),
    retrieve=extend_schema(summary="One delivery, with every attempt"),
)
class DeliveryViewSet(ThrottleFirstMixin, StrictQueryParamsMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Delivery.objects.select_related("event").order_by("-id")
    serializer_class = DeliverySerializer
    permission_classes = [ModelPermissions]
    filter_backends = [FilterBackend]
    filterset_class = DeliveryFilter

    def get_serializer_class(self):
        return DeliveryDetailSerializer if self.action == "retrieve" else DeliverySerializer

    def get_object(self):
        try:
            delivery = (
                self.get_queryset()
                .prefetch_related("attempts_made")
                .get(pk=positive_id(self.kwargs["pk"]))
            )
        except Delivery.DoesNotExist:
            raise NotFound() from None
        self.check_object_permissions(self.request, delivery)
        return delivery

    @extend_schema(
        summary="Deliver again",
        description="Queues the delivery again (a failed one, or one that succeeded), with "
        "the same webhook-id: receivers de-duplicate on it.",
        request=None,
        responses={202: DeliverySerializer, 409: DELIVERY_CONFLICT},
    )
    @action(detail=True, methods=["post"], permission_classes=[CanRedeliver])
    def redeliver(self, request, pk=None):
        delivery_id = positive_id(pk)
        if not Delivery.objects.filter(pk=delivery_id).exists():
            raise NotFound()
        delivery = services.redeliver(delivery_id=delivery_id)
        return Response(DeliverySerializer(delivery).data, status=202)
