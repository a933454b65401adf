"""OPTIONS describes the body each endpoint's methods take, not some other endpoint's."""

import pytest

from .conftest import make_user, token_client

pytestmark = pytest.mark.django_db

MOVEMENT_DETAILS = {"reason", "note", "reference", "expected_quantity"}
PRODUCT_FIELDS = {
    "id",
    "sku",
    "name",
    "description",
    "price",
    "stock_quantity",
    "low_stock_threshold",
    "is_below_requirement",
    "reserved_quantity",
    "available_quantity",
    "is_over_reserved",
    "created_at",
    "updated_at",
}


def described(client, path: str) -> dict[str, set[str]]:
    response = client.options(path)
    assert response.status_code == 200, response.content
    return {method: set(fields) for method, fields in response.json().get("actions", {}).items()}


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("increment", {"quantity"} | MOVEMENT_DETAILS),
        ("decrement", {"quantity"} | MOVEMENT_DETAILS),
        ("count", {"counted_quantity"} | MOVEMENT_DETAILS),
    ],
)
def test_options_on_a_stock_operation_describes_its_own_body(api_client, product, action, body):
    assert described(api_client, f"/api/products/{product.pk}/{action}/") == {"POST": body}


def test_options_on_the_stock_operations_says_which_fields_are_required(api_client, product):
    fields = api_client.options(f"/api/products/{product.pk}/count/").json()["actions"]["POST"]

    assert fields["counted_quantity"]["required"] is True
    assert fields["expected_quantity"]["required"] is False


def test_options_on_products_still_describes_a_product(api_client, product):
    assert described(api_client, "/api/products/") == {"POST": PRODUCT_FIELDS}
    assert described(api_client, f"/api/products/{product.pk}/") == {"PUT": PRODUCT_FIELDS}


def test_options_on_bulk_adjustments_and_the_token_describe_their_bodies(api_client):
    assert described(api_client, "/api/stock-adjustments/") == {
        "POST": {"lines", "reason", "note", "reference"}
    }
    token = api_client.options("/api/auth/token/").json()["actions"]["POST"]
    assert {name for name, field in token.items() if not field["read_only"]} == {
        "username",
        "password",
    }


def test_options_describes_only_what_the_role_may_send(product):
    staff = token_client(make_user("staff"))

    assert described(staff, f"/api/products/{product.pk}/increment/") == {
        "POST": {"quantity"} | MOVEMENT_DETAILS
    }
    assert staff.options(f"/api/products/{product.pk}/count/").status_code == 403  # admins only
