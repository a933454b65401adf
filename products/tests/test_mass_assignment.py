"""No endpoint lets a client write a field it does not own: ids, timestamps, the
version behind the ETag, computed fields, or stock outside the stock operations."""

from datetime import datetime

import pytest

from products.models import Product, StockMovement

from .conftest import make_product

pytestmark = pytest.mark.django_db

FORGED_ID = 987_654
LONG_AGO = "2000-01-01T00:00:00Z"
# Each read-only field with a value the server would never give it.
READ_ONLY = {
    "id": FORGED_ID,
    "created_at": LONG_AGO,
    "updated_at": LONG_AGO,
    "version": 9_999,
    "is_below_requirement": False,  # the products below are all below their threshold
}
STOCK_FIELDS = {**READ_ONLY, "stock_quantity": 5_000, "quantity_before": 5_000}


def low_product() -> Product:
    return make_product(stock_quantity=3, low_stock_threshold=5)


def assert_not_forged(product: Product) -> None:
    """The product's own fields hold the server's values, not the forged ones."""
    assert product.pk != FORGED_ID
    assert not Product.objects.filter(pk=FORGED_ID).exists()
    assert product.created_at > datetime.fromisoformat(LONG_AGO)
    assert product.updated_at > datetime.fromisoformat(LONG_AGO)
    assert product.version != READ_ONLY["version"]
    assert product.is_below_requirement


@pytest.mark.parametrize(("field", "value"), READ_ONLY.items())
def test_create_ignores_or_refuses_each_read_only_field(api_client, field, value):
    body = {"sku": "NEW-1", "name": "New", "stock_quantity": 3, "low_stock_threshold": 5}

    response = api_client.post("/api/products/", {**body, field: value}, format="json")

    assert response.status_code in (201, 400), response.json()
    for product in Product.objects.all():
        assert_not_forged(product)
    if response.status_code == 201:
        assert response.json()["is_below_requirement"] is True
        assert response.json()["id"] != FORGED_ID


@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize(("field", "value"), READ_ONLY.items())
def test_update_ignores_or_refuses_each_read_only_field(api_client, method, field, value):
    product = low_product()
    body = {"sku": product.sku, "name": "Renamed"}

    response = getattr(api_client, method)(
        f"/api/products/{product.pk}/", {**body, field: value}, format="json"
    )

    assert response.status_code in (200, 400), response.json()
    product.refresh_from_db()
    assert_not_forged(product)
    if response.status_code == 200:
        assert response.json()["id"] == product.pk
        assert response.json()["is_below_requirement"] is True


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("increment", {"quantity": 1}),
        ("decrement", {"quantity": 1}),
        ("count", {"counted_quantity": 3}),
    ],
)
@pytest.mark.parametrize(("field", "value"), STOCK_FIELDS.items())
def test_stock_actions_refuse_every_field_but_their_own(api_client, action, body, field, value):
    # A stock action changes stock by its rule only: `stock_quantity` in its body must
    # not become a second, unchecked way to set the stock.
    product = low_product()
    movements_before = StockMovement.objects.count()

    response = api_client.post(
        f"/api/products/{product.pk}/{action}/", {**body, field: value}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {field: ["Unknown field."]}
    product.refresh_from_db()
    assert product.stock_quantity == 3
    assert_not_forged(product)
    assert StockMovement.objects.count() == movements_before


@pytest.mark.parametrize("where", ["body", "line"])
@pytest.mark.parametrize(
    ("field", "value"), {**STOCK_FIELDS, "quantity_after": 5_000, "kind": "count"}.items()
)
def test_stock_adjustments_refuse_every_field_but_their_own(api_client, where, field, value):
    product = low_product()
    line = {"product": product.pk, "delta": 1}
    body = (
        {"lines": [{**line, field: value}]} if where == "line" else {"lines": [line], field: value}
    )
    movements_before = StockMovement.objects.count()

    response = api_client.post("/api/stock-adjustments/", body, format="json")

    assert response.status_code == 400
    product.refresh_from_db()
    assert product.stock_quantity == 3
    assert_not_forged(product)
    assert StockMovement.objects.count() == movements_before


def test_stock_set_through_patch_is_an_adjustment_on_the_ledger(api_client):
    # The one way to set stock outright (an inventory admin's PATCH) still goes through
    # the service: locked, checked (>= 0) and recorded.
    product = low_product()

    refused = api_client.patch(
        f"/api/products/{product.pk}/", {"stock_quantity": -1}, format="json"
    )
    accepted = api_client.patch(
        f"/api/products/{product.pk}/", {"stock_quantity": 7}, format="json"
    )

    assert refused.status_code == 400
    assert accepted.status_code == 200
    movement = StockMovement.objects.filter(product=product).latest("id")
    assert (movement.kind, movement.quantity_before, movement.quantity_after) == (
        "adjustment",
        3,
        7,
    )
