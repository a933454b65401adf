import pytest

from products import services
from products.models import MAX_STOCK, Product

from .conftest import make_product

pytestmark = pytest.mark.django_db


def stock_url(product_id, operation: str) -> str:
    return f"/api/products/{product_id}/{operation}/"


@pytest.mark.parametrize("method", ["post", "patch"])
def test_increment_adds_stock_and_returns_the_product(api_client, method):
    product = make_product(stock_quantity=10)

    response = getattr(api_client, method)(
        stock_url(product.pk, "increment"), {"quantity": 5}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["stock_quantity"] == 15
    assert response.json()["id"] == product.pk
    product.refresh_from_db()
    assert product.stock_quantity == 15


@pytest.mark.parametrize("method", ["post", "patch"])
def test_decrement_removes_stock_and_returns_the_product(api_client, method):
    product = make_product(stock_quantity=10, low_stock_threshold=3)

    response = getattr(api_client, method)(
        stock_url(product.pk, "decrement"), {"quantity": 7}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["stock_quantity"] == 3
    assert response.json()["is_below_requirement"] is True
    product.refresh_from_db()
    assert product.stock_quantity == 3


def test_decrement_to_exactly_zero_is_allowed(api_client):
    product = make_product(stock_quantity=4)

    response = api_client.post(stock_url(product.pk, "decrement"), {"quantity": 4}, format="json")

    assert response.status_code == 200
    assert response.json()["stock_quantity"] == 0


def test_decrement_past_stock_returns_409_and_changes_nothing(api_client):
    product = make_product(stock_quantity=3)

    response = api_client.post(stock_url(product.pk, "decrement"), {"quantity": 5}, format="json")

    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "insufficient_stock"
    assert body["available"] == 3
    assert body["requested"] == 5
    assert "only 3 available" in body["detail"]
    product.refresh_from_db()
    assert product.stock_quantity == 3


def test_increment_past_the_largest_storable_stock_is_409(api_client):
    product = make_product(stock_quantity=MAX_STOCK - 1)

    response = api_client.post(stock_url(product.pk, "increment"), {"quantity": 2}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "stock_limit_exceeded"
    product.refresh_from_db()
    assert product.stock_quantity == MAX_STOCK - 1


BAD_QUANTITY_BODIES = [
    {},
    {"quantity": None},
    {"quantity": 0},
    {"quantity": -1},
    {"quantity": 1.5},
    {"quantity": 2.0},
    {"quantity": "3"},
    {"quantity": "three"},
    {"quantity": True},
    {"quantity": [1]},
    {"quantity": {"n": 1}},
    {"quantity": MAX_STOCK + 1},
    {"quantity": 10**40},
    {"change": 5},
    {"quantity": 1, "extra": 1},
]


@pytest.mark.parametrize("operation", ["increment", "decrement"])
@pytest.mark.parametrize("body", BAD_QUANTITY_BODIES)
def test_bad_quantity_is_400_and_changes_nothing(api_client, operation, body):
    product = make_product(stock_quantity=10)

    response = api_client.post(stock_url(product.pk, operation), body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["errors"]
    product.refresh_from_db()
    assert product.stock_quantity == 10


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b'{"quantity": NaN}', b'{"quantity": Infinity}', b"", b"[]", b'"5"', b"5"],
)
def test_malformed_or_non_object_body_is_400(api_client, raw):
    product = make_product(stock_quantity=10)

    response = api_client.generic(
        "POST", stock_url(product.pk, "decrement"), raw, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] in {"parse_error", "validation_error"}
    product.refresh_from_db()
    assert product.stock_quantity == 10


def test_a_body_that_is_not_json_is_415(api_client, product):
    response = api_client.post(
        stock_url(product.pk, "increment"), "quantity=1", content_type="text/plain"
    )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize("product_id", ["999999", "abc", "9" * 30])
def test_stock_operation_on_unknown_product_is_404(api_client, product_id):
    response = api_client.post(stock_url(product_id, "increment"), {"quantity": 1}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_get_on_a_stock_operation_is_405(api_client, product):
    response = api_client.get(stock_url(product.pk, "increment"))

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("quantity", [0, -1, 1.0, "1", True, None, MAX_STOCK + 1])
def test_services_refuse_bad_quantities_whoever_calls_them(product, quantity):
    with pytest.raises(services.InvalidQuantity):
        services.increment_stock(product_id=product.pk, quantity=quantity)
    with pytest.raises(services.InvalidQuantity):
        services.decrement_stock(product_id=product.pk, quantity=quantity)
    product.refresh_from_db()
    assert product.stock_quantity == 10


def test_service_on_unknown_product_raises_does_not_exist(db):
    with pytest.raises(Product.DoesNotExist):
        services.decrement_stock(product_id=123456, quantity=1)


@pytest.mark.parametrize("reference", ["\u000bPO-1", "PO-1\n", "\tPO-1", "PO-1\u2028", "   "])
def test_a_reference_with_control_characters_at_its_ends_is_400_not_trimmed(api_client, reference):
    """The schema's pattern applies to the string as sent (make fuzz found `"\\u000bG"`
    accepted as `G`); plain spaces around a reference are still trimmed."""
    product = make_product(stock_quantity=5)
    url = stock_url(product.pk, "increment")

    response = api_client.post(url, {"quantity": 1, "reference": reference}, format="json")

    assert response.status_code == 400
    assert "reference" in response.json()["errors"]
    product.refresh_from_db()
    assert product.stock_quantity == 5
    ok = api_client.post(url, {"quantity": 1, "reference": "  PO-1  "}, format="json")
    assert ok.status_code == 200
    assert product.movements.latest("id").reference == "PO-1"
