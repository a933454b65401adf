import re
from collections.abc import Mapping

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed, NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings

from core.filters import FilterBackend
from core.permissions import ModelPermissions
from core.views import StrictQueryParamsMixin, ThrottleFirstMixin, example, positive_id

from . import exports, idempotency, selectors, services
from .filters import ProductFilter, ProductSearchFilter, StockMovementFilter, StrictOrderingFilter
from .models import Product
from .permissions import CanAdjustStock, CanCountStock, CanViewMovements
from .serializers import (
    ProductSerializer,
    StockAdjustmentResultSerializer,
    StockAdjustmentSerializer,
    StockChangeSerializer,
    StockCountSerializer,
    StockMovementSerializer,
    TokenRequestSerializer,
    represent_movements,
    represent_product,
    represent_products,
)

STOCK_CONFLICT = OpenApiResponse(
    description="Nothing changed, because: not enough stock (`insufficient_stock`, with "
    "`available`); the result would exceed the largest storable quantity "
    "(`stock_limit_exceeded`); stock is not the `expected_quantity` (`stock_changed`, with "
    "`current_quantity`); or a request with this Idempotency-Key is still running "
    "(`idempotency_request_in_progress`).",
)
SKU_CONFLICT = OpenApiResponse(
    description="`duplicate_sku`: another product has this SKU (ignoring case), or "
    "`idempotency_request_in_progress`. Nothing changed."
)
KEY_REUSED = OpenApiResponse(
    description="`idempotency_key_reused`: this Idempotency-Key was used with another request."
)
STALE_IF_MATCH = OpenApiResponse(
    description="`precondition_failed`: If-Match does not match the product's current ETag. "
    "Nothing changed."
)


NEW_PRODUCT = example(
    "A new product",
    {
        "sku": "BOLT-M8-40",
        "name": "Hex bolt M8 x 40 mm, zinc-plated",
        "description": "Box of 100.",
        "price": "12.50",
        "stock_quantity": 40,
        "low_stock_threshold": 10,
    },
)
# `*`, or a comma-separated list of entity tags (RFC 9110: OWS is spaces and tabs).
STOCK_OPERATION_RESPONSES = {
    200: ProductSerializer,
    409: STOCK_CONFLICT,
    412: STALE_IF_MATCH,
    422: KEY_REUSED,
}
IF_MATCH_PATTERN = r'^(\*|(W/)?"[0-9]{1,20}"([ \t]*,[ \t]*(W/)?"[0-9]{1,20}")*)$'
ENTITY_TAG = re.compile(r'(W/)?"([0-9]+)"')
IF_MATCH = OpenApiParameter(
    "If-Match",
    str,
    OpenApiParameter.HEADER,
    pattern=IF_MATCH_PATTERN,
    description='Optional. The ETag from your last read of the product (e.g. `"7"`), or `*`: '
    "refuse with 412 `precondition_failed`, changing nothing, if the product has changed "
    'since. Tags are compared strongly, character by character: `"07"` does not match '
    '`"7"`, and a weak tag (`W/"7"`) matches nothing.',
)


def validated_body(view, request) -> dict:
    """The request body, validated by the view's serializer: a 400 before anything else,
    an Idempotency-Key included (a refused body uses up no key)."""
    body = view.get_serializer(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


def audit_from(request, data: Mapping) -> services.Audit:
    """Who is changing stock through the API, and the reason they gave."""
    return services.Audit(
        user=request.user,
        source=services.Source.API,
        reason=data.get("reason", ""),
        note=data.get("note", ""),
        reference=data.get("reference", ""),
    )


@extend_schema_view(
    list=extend_schema(summary="List products"),
    create=extend_schema(
        summary="Create a product, with its initial stock",
        parameters=[idempotency.PARAMETER],
        examples=[NEW_PRODUCT],
        responses={201: ProductSerializer, 409: SKU_CONFLICT, 422: KEY_REUSED},
    ),
    retrieve=extend_schema(
        summary="Get a product",
        description="The response carries an `ETag`; send it back as `If-Match` on PUT/PATCH.",
    ),
    update=extend_schema(
        summary="Replace a product's fields (stock included)",
        parameters=[IF_MATCH],
        examples=[
            example(
                "Every field, replaced, of the seed's first product (SKU SEED-000000001)",
                {
                    "sku": "SEED-000000001",
                    "name": "Hex nut M8, zinc-plated",
                    "description": "Box of 100.",
                    "price": "4.20",
                    "stock_quantity": 120,
                    "low_stock_threshold": 20,
                },
            )
        ],
        responses={200: ProductSerializer, 409: SKU_CONFLICT, 412: STALE_IF_MATCH},
    ),
    partial_update=extend_schema(
        summary="Change some of a product's fields",
        parameters=[IF_MATCH],
        examples=[
            example("A new price and threshold", {"price": "13.90", "low_stock_threshold": 15})
        ],
        responses={200: ProductSerializer, 409: SKU_CONFLICT, 412: STALE_IF_MATCH},
    ),
    destroy=extend_schema(
        summary="Delete a product (its stock history is kept)",
        parameters=[IF_MATCH],
        responses={204: None, 412: STALE_IF_MATCH},
    ),
)
class ProductViewSet(
    exports.CsvListMixin, ThrottleFirstMixin, StrictQueryParamsMixin, viewsets.ModelViewSet
):
    # Stock changes go through `services`, which lock the product row and record a
    # movement: the initial stock on create, a direct set by PUT/PATCH, and the actions.
    queryset = Product.objects.order_by("id")
    serializer_class = ProductSerializer
    permission_classes = [ModelPermissions]
    paginated_actions = frozenset({"list", "below_requirement", "movements"})
    csv_actions = frozenset({"list", "movements"})
    filter_backends = [FilterBackend, ProductSearchFilter, StrictOrderingFilter]
    filterset_class = ProductFilter
    search_fields = ["sku", "name", "description"]
    ordering_fields = ["id", "sku", "name", "stock_quantity", "price", "updated_at"]
    ordering = ["id"]

    def get_serializer_class(self):
        # The stock actions take their own bodies (also the browsable API's forms).
        return {
            "increment": StockChangeSerializer,
            "decrement": StockChangeSerializer,
            "count": StockCountSerializer,
            "movements": StockMovementSerializer,
        }.get(self.action, ProductSerializer)

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None and queryset.model is Product:
            # Reserved and available as they are at this instant (lapsed holds left out).
            selectors.settle_availability(page)
        return page

    def get_object(self):
        """The product in the URL, in one query. A detail URL takes no filter parameters
        (StrictQueryParamsMixin refuses them), so the list's filter backends are skipped."""
        try:
            product = selectors.product(positive_id(self.kwargs["pk"]))
        except Product.DoesNotExist:
            raise NotFound() from None
        self.check_object_permissions(self.request, product)
        selectors.settle_availability([product])  # lapsed holds left out
        return product

    def list(self, request, *args, **kwargs):
        products = self.filter_queryset(self.get_queryset())
        if self.wants_csv(request):
            return exports.products_csv(products)
        return self.get_paginated_response(represent_products(self.paginate_queryset(products)))

    def retrieve(self, request, *args, **kwargs):
        return product_response(self.get_object())

    def create(self, request, *args, **kwargs):
        data = validated_body(self, request)

        def execute():
            product = services.create_product(**data, audit=audit_from(request, {}))
            return product_response(product, status=201)

        return idempotency.run_idempotently(self, request, execute)

    def update(self, request, *args, **kwargs):
        product = self.get_object()
        body = self.get_serializer(product, data=request.data, partial=kwargs.get("partial"))
        body.is_valid(raise_exception=True)
        product = services.update_product(
            product_id=product.pk,
            changes=body.validated_data,
            audit=audit_from(request, {}),
            expected_versions=parse_if_match(request),
        )
        return product_response(product)

    def destroy(self, request, *args, **kwargs):
        services.delete_product(
            product_id=positive_id(self.kwargs["pk"]), expected_versions=parse_if_match(request)
        )
        return Response(status=204)

    @extend_schema(
        summary="Add stock",
        parameters=[idempotency.PARAMETER, IF_MATCH],
        examples=[
            example("Goods received", {"quantity": 5, "reason": "received", "reference": "PO-2041"})
        ],
        responses=STOCK_OPERATION_RESPONSES,
    )
    @action(detail=True, methods=["post", "patch"], permission_classes=[CanAdjustStock])
    def increment(self, request, pk=None):
        return self._stock_operation(request, services.increment_stock, "quantity")

    @extend_schema(
        summary="Remove stock",
        description="Refused with 409 if it would take stock below zero.",
        parameters=[idempotency.PARAMETER, IF_MATCH],
        examples=[
            example(
                "An order shipped", {"quantity": 5, "reason": "shipped", "reference": "SO-1187"}
            )
        ],
        responses=STOCK_OPERATION_RESPONSES,
    )
    @action(detail=True, methods=["post", "patch"], permission_classes=[CanAdjustStock])
    def decrement(self, request, pk=None):
        return self._stock_operation(request, services.decrement_stock, "quantity")

    @extend_schema(
        summary="Set stock to a physical count",
        description="Records the difference as a `count` movement (even when it is 0).",
        parameters=[idempotency.PARAMETER, IF_MATCH],
        examples=[example("A cycle count", {"counted_quantity": 42, "note": "Aisle 4, shelf B"})],
        responses=STOCK_OPERATION_RESPONSES,
    )
    @action(detail=True, methods=["post"], permission_classes=[CanCountStock])
    def count(self, request, pk=None):
        return self._stock_operation(request, services.count_stock, "counted_quantity")

    @extend_schema(
        summary="A product's stock history, newest first",
        responses={200: StockMovementSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], permission_classes=[CanViewMovements], filter_backends=[])
    def movements(self, request, pk=None):
        product_id = positive_id(pk)
        if not Product.objects.filter(pk=product_id).exists():
            raise NotFound()
        movements = selectors.movements().filter(product_id=product_id)
        if self.wants_csv(request):
            return exports.movements_csv(movements)
        page = self.paginate_queryset(movements)
        return self.get_paginated_response(represent_movements(page))

    @extend_schema(
        summary="Products at or below their low-stock threshold",
        description="Products with `stock_quantity <= low_stock_threshold`, paginated.",
        responses={200: ProductSerializer(many=True)},
    )
    @action(detail=False, methods=["get"])
    def below_requirement(self, request):
        queryset = selectors.below_requirement(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(represent_products(self.paginate_queryset(queryset)))

    def _stock_operation(self, request, operation, quantity_field: str):
        """Validate the body, then let the service lock, check, write and record."""
        product_id = positive_id(self.kwargs["pk"])  # an impossible id is a 404 first
        data = validated_body(self, request)
        expected_versions = parse_if_match(request)  # a malformed one uses up no key either

        def execute():
            product = operation(
                product_id=product_id,
                audit=audit_from(request, data),
                expected_quantity=data.get("expected_quantity"),
                expected_versions=expected_versions,
                **{quantity_field: data[quantity_field]},
            )
            return product_response(product)

        return idempotency.run_idempotently(self, request, execute)


def product_response(product: Product, status: int = 200) -> Response:
    """A product, with its version as a strong ETag."""
    return Response(
        represent_product(product),
        status=status,
        headers={"ETag": etag_of_version(product.version)},
    )


def parse_if_match(request) -> set[int] | None:
    """The versions an If-Match header accepts; None when absent or `*`.

    RFC 9110's strong comparison: a tag matches only if it is exactly an ETag we send,
    `"7"` for version 7, so `"07"` and weak tags (`W/"7"`) match nothing. A header that
    is not `*` or a list of tags like ours is a 400.
    """
    header = request.headers.get("If-Match")
    if header is None:
        return None
    header = header.strip(" \t")  # OWS only: str.strip() would drop \xa0 and \v as well
    if header == "*":
        return None
    if not re.fullmatch(IF_MATCH_PATTERN, header):
        raise ValidationError({"If-Match": ['Must be "*" or ETags such as "7".']})
    return {
        int(opaque)
        for weak, opaque in ENTITY_TAG.findall(header)
        if not weak and f'"{opaque}"' == etag_of_version(int(opaque))
    }


def etag_of_version(version: int) -> str:
    """The strong ETag of a product at `version`."""
    return f'"{version}"'


@extend_schema_view(
    list=extend_schema(summary="Every stock movement, newest first"),
    retrieve=extend_schema(summary="One stock movement"),
)
class StockMovementViewSet(
    exports.CsvListMixin, ThrottleFirstMixin, StrictQueryParamsMixin, viewsets.ReadOnlyModelViewSet
):
    """The ledger, read-only: every stock change, with who made it, when, why, and the
    stock before and after."""

    queryset = selectors.movements()
    serializer_class = StockMovementSerializer
    permission_classes = [ModelPermissions]
    filter_backends = [FilterBackend]
    filterset_class = StockMovementFilter

    def list(self, request, *args, **kwargs):
        if self.wants_csv(request):
            return exports.movements_csv(self.filter_queryset(self.get_queryset()))
        return super().list(request, *args, **kwargs)

    def get_object(self):
        positive_id(self.kwargs["pk"])
        return super().get_object()


@extend_schema_view(
    create=extend_schema(
        summary="Apply several stock changes at once: all or none",
        parameters=[idempotency.PARAMETER],
        examples=[
            example(
                "A delivery of two products",
                {
                    "lines": [
                        {"sku": "SEED-000000001", "delta": 12},
                        {"sku": "SEED-000000002", "delta": 6},
                    ],
                    "reason": "received",
                    "reference": "PO-2042",
                },
            )
        ],
        responses={
            200: StockAdjustmentResultSerializer,
            409: OpenApiResponse(
                description="`insufficient_stock` (or `stock_limit_exceeded`): `lines` "
                "lists every line that would go below zero (or past the maximum), with "
                "the quantity `available` before it. Nothing changed."
            ),
            422: OpenApiResponse(
                description="`unknown_product`: `lines` lists every line naming a product "
                "or SKU that does not exist; or `idempotency_key_reused`. Nothing changed."
            ),
        },
    )
)
class StockAdjustmentViewSet(ThrottleFirstMixin, StrictQueryParamsMixin, viewsets.GenericViewSet):
    serializer_class = StockAdjustmentSerializer
    permission_classes = [CanAdjustStock]

    def create(self, request):
        data = validated_body(self, request)
        lines = [
            services.AdjustmentLine(
                delta=line["delta"], product_id=line.get("product"), sku=line.get("sku")
            )
            for line in data["lines"]
        ]

        def execute():
            movements = services.adjust_stock_bulk(lines=lines, audit=audit_from(request, data))
            return Response({"movements": represent_movements(movements)})

        return idempotency.run_idempotently(self, request, execute)


@extend_schema(
    summary="Exchange a username and password for the user's API token",
    description="Returns the user's token, creating it on first use. Send it as "
    "`Authorization: Bearer <key>` (or `Token <key>`). Throttled per client address.",
    examples=[example("Your username and password", {"username": "admin", "password": "…"})],
    responses={
        200: inline_serializer("AuthToken", {"token": serializers.CharField()}),
        401: OpenApiResponse(description="`authentication_failed`: wrong username or password."),
    },
)
class ObtainTokenView(ThrottleFirstMixin, StrictQueryParamsMixin, ObtainAuthToken):
    # DRF's token view, but throttled like every other endpoint (password guessing),
    # taking JSON like the rest of the API, and answering wrong credentials with 401.
    permission_classes = [AllowAny]
    throttle_classes = api_settings.DEFAULT_THROTTLE_CLASSES
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES
    serializer_class = TokenRequestSerializer

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            if _codes(serializer) == {"authorization"}:  # fields fine, credentials wrong
                raise AuthenticationFailed(str(serializer.errors["non_field_errors"][0]))
            raise ValidationError(serializer.errors)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


def _codes(serializer) -> set[str]:
    """The codes of a serializer's errors that are not about one field."""
    return {error.code for error in serializer.errors.get("non_field_errors", [])}
