from drf_spectacular.utils import (
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

from . import selectors, services
from .models import Product
from .permissions import CanAdjustStock, ProductPermissions
from .serializers import ProductSerializer, StockChangeSerializer, TokenRequestSerializer

MAX_ID = 2**63 - 1  # the id column is a 64-bit integer

STOCK_CONFLICT = OpenApiResponse(
    description="Not enough stock (`insufficient_stock`, with `available`), or the "
    "result would exceed the largest storable quantity (`stock_limit_exceeded`). "
    "Nothing changed.",
)
SKU_CONFLICT = OpenApiResponse(
    description="`duplicate_sku`: another product has this SKU (ignoring case). Nothing changed."
)


class StrictQueryParamsMixin:
    """Answer unknown or repeated query parameters with a 400 instead of ignoring them.

    The parameters a view accepts are the ones it documents: its paginator's and its
    filter backends' for list-like GETs, and `format` everywhere.
    """

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if getattr(self, request.method.lower(), None) is None:
            return  # the method is not allowed: let dispatch answer 405
        allowed = self.allowed_query_params()
        errors = {}
        for name, values in request.query_params.lists():
            if name not in allowed:
                errors[name] = ["Unknown query parameter."]
            elif len(values) > 1:
                errors[name] = ["Give this parameter once."]
        if errors:
            raise ValidationError(errors)

    def allowed_query_params(self) -> set[str]:
        allowed = {"format"}
        if getattr(self, "detail", True) is False and self.request.method == "GET":
            sources = [backend() for backend in self.filter_backends]
            if self.paginator is not None:
                sources.append(self.paginator)
            for source in sources:
                allowed.update(p["name"] for p in source.get_schema_operation_parameters(self))
        return allowed


@extend_schema_view(
    list=extend_schema(summary="List products"),
    create=extend_schema(
        summary="Create a product, with its initial stock",
        responses={201: ProductSerializer, 409: SKU_CONFLICT},
    ),
    retrieve=extend_schema(summary="Get a product"),
    update=extend_schema(
        summary="Replace a product's fields (stock included)",
        responses={200: ProductSerializer, 409: SKU_CONFLICT},
    ),
    partial_update=extend_schema(
        summary="Change some of a product's fields",
        responses={200: ProductSerializer, 409: SKU_CONFLICT},
    ),
    destroy=extend_schema(summary="Delete a product"),
)
class ProductViewSet(StrictQueryParamsMixin, viewsets.ModelViewSet):
    # Stock changes go through `services`, which lock the product row: the initial
    # stock on create, a direct set by PUT/PATCH, and the increment/decrement actions.
    queryset = Product.objects.order_by("id")
    serializer_class = ProductSerializer
    permission_classes = [ProductPermissions]

    def get_object(self):
        self._product_id()  # a 404 for ids past the column's range, before any query
        return super().get_object()

    def perform_create(self, serializer):
        serializer.instance = services.create_product(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_product(
            product_id=serializer.instance.pk, changes=serializer.validated_data
        )

    def get_serializer_class(self):
        # The stock actions take a quantity (this is also the browsable API's form).
        if self.action in ("increment", "decrement"):
            return StockChangeSerializer
        return ProductSerializer

    @extend_schema(
        summary="Add stock",
        request=StockChangeSerializer,
        responses={200: ProductSerializer, 409: STOCK_CONFLICT},
    )
    @action(detail=True, methods=["post", "patch"], permission_classes=[CanAdjustStock])
    def increment(self, request, pk=None):
        return self._change_stock(request, services.increment_stock)

    @extend_schema(
        summary="Remove stock",
        description="Refused with 409 if it would take stock below zero.",
        request=StockChangeSerializer,
        responses={200: ProductSerializer, 409: STOCK_CONFLICT},
    )
    @action(detail=True, methods=["post", "patch"], permission_classes=[CanAdjustStock])
    def decrement(self, request, pk=None):
        return self._change_stock(request, services.decrement_stock)

    @extend_schema(
        summary="Products at or below their low-stock threshold",
        description="Products with `stock_quantity <= low_stock_threshold`, paginated.",
        responses={200: ProductSerializer(many=True)},
    )
    @action(detail=False, methods=["get"])
    def below_requirement(self, request):
        queryset = selectors.below_requirement(self.filter_queryset(self.get_queryset()))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def _change_stock(self, request, operation):
        """Validate the body, then let the service lock, check and write the row."""
        product_id = self._product_id()  # an impossible id is a 404 whatever the body
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        product = operation(product_id=product_id, quantity=body.validated_data["quantity"])
        return Response(ProductSerializer(product).data)

    def _product_id(self) -> int:
        """The product id from the URL; a 404 for anything no product can have."""
        pk = self.kwargs["pk"]
        if not (pk.isascii() and pk.isdigit() and len(pk) <= len(str(MAX_ID))):
            raise NotFound()
        if not 1 <= int(pk) <= MAX_ID:
            raise NotFound()
        return int(pk)


@extend_schema(
    summary="Exchange a username and password for the user's API token",
    description="Returns the user's token, creating it on first use. Send it as "
    "`Authorization: Token <key>`. Throttled per client address.",
    responses={
        200: inline_serializer("AuthToken", {"token": serializers.CharField()}),
        401: OpenApiResponse(description="`authentication_failed`: wrong username or password."),
    },
)
class ObtainTokenView(StrictQueryParamsMixin, ObtainAuthToken):
    # DRF's token view, but throttled like every other endpoint (password guessing),
    # taking JSON like the rest of the API, and answering wrong credentials with 401.
    permission_classes = [AllowAny]
    throttle_classes = api_settings.DEFAULT_THROTTLE_CLASSES
    parser_classes = api_settings.DEFAULT_PARSER_CLASSES
    serializer_class = TokenRequestSerializer

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            if "non_field_errors" in serializer.errors:  # fields fine, credentials wrong
                raise AuthenticationFailed(str(serializer.errors["non_field_errors"][0]))
            raise ValidationError(serializer.errors)
        token, _ = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})
