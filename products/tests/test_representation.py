"""The Representer writes what DRF's serializers write, field for field."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from products import services
from products.models import Product, StockMovement
from products.serializers import (
    ProductSerializer,
    StockMovementSerializer,
    represent_movement,
    represent_movements,
    represent_product,
    represent_products,
)

from .conftest import make_product

pytestmark = pytest.mark.django_db


def varied_products() -> list[Product]:
    products = [
        make_product(price=Decimal("0.5"), description=""),
        make_product(price=Decimal("12.50"), stock_quantity=0, low_stock_threshold=0),
        make_product(price=Decimal("9999999999.99"), stock_quantity=10**12, description="é\n"),
    ]
    # A time with microseconds, and one without (isoformat writes them differently).
    Product.objects.filter(pk=products[0].pk).update(
        updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    return list(Product.objects.filter(pk__in=[p.pk for p in products]).order_by("id"))


def test_products_are_written_as_the_serializer_writes_them():
    products = varied_products()
    expected = [dict(ProductSerializer(product).data) for product in products]
    assert represent_products(products) == expected
    assert [represent_product(product) for product in products] == expected
    assert expected[0]["updated_at"] == "2026-01-02T03:04:05Z"


def test_in_another_time_zone_as_the_serializer_writes_them():
    products = varied_products()
    with timezone.override("Asia/Kolkata"):
        expected = [dict(ProductSerializer(product).data) for product in products]
        assert represent_products(products) == expected
    assert expected[0]["updated_at"] == "2026-01-02T08:34:05+05:30"


def test_movements_with_and_without_a_user_are_written_as_the_serializer_writes_them():
    product = make_product()
    user = get_user_model().objects.create_user("picker")
    services.decrement_stock(
        product_id=product.pk, quantity=1, audit=services.Audit(user=user, reference="SO-1")
    )
    movements = list(StockMovement.objects.filter(product=product).order_by("id"))
    assert {movement.user_id for movement in movements} == {None, user.pk}
    expected = [dict(StockMovementSerializer(movement).data) for movement in movements]
    assert represent_movements(movements) == expected
    assert [represent_movement(movement) for movement in movements] == expected


@pytest.mark.parametrize(
    "values",
    [
        {"price": Decimal("1.5")},  # fewer places than the field's
        {"price": Decimal("2E+1")},
        {"price": Decimal("12.345")},  # more (DRF rounds)
        {"name": 123, "stock_quantity": True, "low_stock_threshold": 7.0},  # not int / str
        {"updated_at": datetime(2026, 1, 2, 3, 4, 5)},  # naive
        {"price": "12.50", "updated_at": "2026-01-02T03:04:05Z"},  # strings, as set
    ],
)
def test_values_of_unusual_types_are_written_as_the_serializer_writes_them(values):
    product = Product(
        id=1, sku="A-1", name="Bolt", description="", price=Decimal("1.00"), stock_quantity=1,
        low_stock_threshold=0, created_at=datetime(2026, 1, 2, tzinfo=UTC),
        updated_at=datetime(2026, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    for name, value in values.items():
        setattr(product, name, value)
    assert represent_product(product) == dict(ProductSerializer(product).data)


def test_a_date_time_out_of_range_in_the_time_zone_fails_as_drf_fails():
    product = make_product()
    product.updated_at = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    with timezone.override("Asia/Kolkata"):
        with pytest.raises(ValidationError):
            ProductSerializer(product).data  # noqa: B018
        with pytest.raises(ValidationError):
            represent_product(product)


def test_drf_s_settings_apply_as_they_change():
    product = make_product()
    represent_product(product)  # built
    changed = {"DATETIME_FORMAT": "%Y", "COERCE_DECIMAL_TO_STRING": False}
    with override_settings(REST_FRAMEWORK=changed):
        assert represent_product(product) == dict(ProductSerializer(product).data)
    assert represent_product(product) == dict(ProductSerializer(product).data)
