from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from core.filters import FilterBackend
from core.permissions import ModelPermissions
from core.views import StrictQueryParamsMixin, ThrottleFirstMixin, example, positive_id
from products import idempotency
from products.models import Product
from products.views import KEY_REUSED, audit_from, validated_body

from . import services
from .filters import ReservationFilter
from .models import Reservation
from .permissions import CanFulfil, CanRelease
from .serializers import (
    FulfilSerializer,
    ReleaseSerializer,
    ReservationSerializer,
    ReserveSerializer,
    represent_reservation,
    represent_reservations,
)

NOT_ACTIVE = OpenApiResponse(
    description="Nothing changed, because: the reservation has ended already "
    "(`reservation_not_active`, with its `state`: fulfilled, released or expired); for a "
    "fulfilment, more units than it holds (`quantity_exceeds_reservation`, with "
    "`reserved`) or fewer units on hand than it ships, a count having found them missing "
    "(`insufficient_stock`, with `available`); or a request with this Idempotency-Key is "
    "still running (`idempotency_request_in_progress`)."
)
RESERVE_CONFLICT = OpenApiResponse(
    description="Nothing held, because: fewer units are available than asked for "
    "(`insufficient_available`, with `available`, `requested` and `reserved`), or a "
    "request with this Idempotency-Key is still running (`idempotency_request_in_progress`)."
)


def reservation_response(reservation: Reservation, status: int = 200) -> Response:
    return Response(represent_reservation(reservation), status=status)


class ReservationViewMixin(ThrottleFirstMixin, StrictQueryParamsMixin):
    queryset = Reservation.objects.select_related("created_by").order_by("-id")
    serializer_class = ReservationSerializer
    permission_classes = [ModelPermissions]
    filter_backends = [FilterBackend]
    filterset_class = ReservationFilter

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(represent_reservations(page))

    def retrieve(self, request, *args, **kwargs):
        return reservation_response(self.get_object())


@extend_schema_view(
    list=extend_schema(
        summary="Reservations, newest first",
        description="Filter by `product`, `state` (as at this instant: a hold past its "
        "`expires_at` is `expired`), `reference` and `expires_before`.",
    ),
    retrieve=extend_schema(summary="One reservation"),
)
class ReservationViewSet(ReservationViewMixin, viewsets.ReadOnlyModelViewSet):
    """Holds of units for orders: active until fulfilled, released or expired."""

    def get_serializer_class(self):
        return {"fulfil": FulfilSerializer, "release": ReleaseSerializer}.get(
            self.action, ReservationSerializer
        )

    def get_object(self):
        try:
            reservation = self.get_queryset().get(pk=positive_id(self.kwargs["pk"]))
        except Reservation.DoesNotExist:
            raise NotFound() from None
        self.check_object_permissions(self.request, reservation)
        return reservation

    @extend_schema(
        summary="Fulfil a reservation: take its units from stock",
        description="Removes the units from stock and ends the hold in one transaction, "
        "writing the ledger's `decrement` (reference `reservation:<id>`). Give a smaller "
        "`quantity` to ship fewer; the rest are freed.",
        parameters=[idempotency.PARAMETER],
        examples=[
            example("Ship every held unit", {}),
            example("Ship fewer than were held", {"quantity": 1}),
        ],
        responses={200: ReservationSerializer, 409: NOT_ACTIVE, 422: KEY_REUSED},
    )
    @action(detail=True, methods=["post"], permission_classes=[CanFulfil])
    def fulfil(self, request, pk=None):
        reservation_id = positive_id(pk)
        data = validated_body(self, request)

        def execute():
            reservation = services.fulfil(
                reservation_id=reservation_id,
                quantity=data.get("quantity"),
                audit=audit_from(request, {}),
            )
            return reservation_response(reservation)

        return idempotency.run_idempotently(self, request, execute)

    @extend_schema(
        summary="Release a reservation: free its units without moving stock",
        parameters=[idempotency.PARAMETER],
        request=None,
        responses={200: ReservationSerializer, 409: NOT_ACTIVE, 422: KEY_REUSED},
    )
    @action(detail=True, methods=["post"], permission_classes=[CanRelease])
    def release(self, request, pk=None):
        reservation_id = positive_id(pk)
        validated_body(self, request)  # nothing, or an empty object

        def execute():
            return reservation_response(services.release(reservation_id=reservation_id))

        return idempotency.run_idempotently(self, request, execute)


class ProductReservationFilter(ReservationFilter):
    product = None  # the URL names it


@extend_schema_view(
    list=extend_schema(summary="A product's reservations, newest first"),
    create=extend_schema(
        summary="Reserve units of a product",
        description="Holds `quantity` units for `expires_in` seconds (1 to 2592000, 30 "
        "days; 900 by default). Only available units can be held: "
        "`available_quantity = stock_quantity − reserved_quantity`.",
        parameters=[idempotency.PARAMETER],
        examples=[
            example(
                "Hold two units for an order, for 15 minutes",
                {"quantity": 2, "expires_in": 900, "reference": "SO-1187"},
            )
        ],
        responses={201: ReservationSerializer, 409: RESERVE_CONFLICT, 422: KEY_REUSED},
    ),
)
class ProductReservationViewSet(
    ReservationViewMixin, mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    filterset_class = ProductReservationFilter

    def get_serializer_class(self):
        return ReserveSerializer if self.action == "create" else ReservationSerializer

    def get_queryset(self):
        return super().get_queryset().filter(product_id=positive_id(self.kwargs["pk"]))

    def list(self, request, *args, **kwargs):
        if not Product.objects.filter(pk=positive_id(self.kwargs["pk"])).exists():
            raise NotFound()  # rather than an empty list
        return super().list(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        product_id = positive_id(self.kwargs["pk"])  # an impossible id is a 404 first
        data = validated_body(self, request)

        def execute():
            reservation = services.reserve(
                product_id=product_id,
                quantity=data["quantity"],
                expires_in=data["expires_in"],
                reference=data.get("reference", ""),
                user=request.user,
            )
            return reservation_response(reservation, status=201)

        return idempotency.run_idempotently(self, request, execute)
