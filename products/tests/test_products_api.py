from decimal import Decimal

import pytest

from products.models import MAX_STOCK, Product

from .conftest import make_product

pytestmark = pytest.mark.django_db

LIST_URL = "/api/products/"


def detail_url(product_id) -> str:
    return f"/api/products/{product_id}/"


def valid_body(**overrides) -> dict:
    body = {
        "sku": "ABC-1",
        "name": "Pallet jack",
        "description": "Manual, 2.5 t",
        "price": "349.90",
        "stock_quantity": 5,
        "low_stock_threshold": 2,
    }
    body.update(overrides)
    return body


def test_create_returns_201_with_the_product(api_client):
    response = api_client.post(LIST_URL, valid_body(), format="json")

    assert response.status_code == 201
    data = response.json()
    product = Product.objects.get(pk=data["id"])
    assert product.sku == "ABC-1"
    assert product.stock_quantity == 5
    assert data["price"] == "349.90"
    assert data["is_below_requirement"] is False
    assert {"created_at", "updated_at"} <= data.keys()


def test_create_with_only_required_fields_uses_defaults(api_client):
    response = api_client.post(LIST_URL, {"sku": "X", "name": "Thing"}, format="json")

    assert response.status_code == 201
    data = response.json()
    assert data["stock_quantity"] == 0
    assert data["low_stock_threshold"] == 0
    assert data["price"] == "0.00"
    assert data["description"] == ""
    assert data["is_below_requirement"] is True


def test_sku_is_trimmed(api_client):
    response = api_client.post(LIST_URL, valid_body(sku="  ABC-9  "), format="json")

    assert response.status_code == 201
    assert response.json()["sku"] == "ABC-9"


def test_sku_uniqueness_ignores_case(api_client):
    make_product(sku="abc-1")

    response = api_client.post(LIST_URL, valid_body(sku="ABC-1"), format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_sku"
    assert response.json()["detail"].startswith(
        "A product with this SKU already exists: 'abc-1' (product "
    )
    assert response.json()["existing_product"] == Product.objects.get().pk
    assert Product.objects.count() == 1


def test_update_may_keep_its_own_sku_in_another_case(api_client):
    product = make_product(sku="abc-1")

    response = api_client.patch(detail_url(product.pk), {"sku": "ABC-1"}, format="json")

    assert response.status_code == 200
    assert response.json()["sku"] == "ABC-1"


def test_update_to_another_products_sku_is_refused(api_client):
    make_product(sku="taken")
    product = make_product(sku="mine")

    response = api_client.patch(detail_url(product.pk), {"sku": "TAKEN"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "duplicate_sku"
    product.refresh_from_db()
    assert product.sku == "mine"


def test_list_is_paginated_in_id_order(api_client):
    products = [make_product() for _ in range(3)]

    response = api_client.get(LIST_URL, {"page_size": 2})

    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 3
    assert [p["id"] for p in data["results"]] == [products[0].pk, products[1].pk]
    assert data["next"].endswith("page=2&page_size=2")
    assert data["previous"] is None
    second = api_client.get(LIST_URL, {"page_size": 2, "page": 2}).json()
    assert [p["id"] for p in second["results"]] == [products[2].pk]


def test_list_page_size_has_a_hard_maximum(api_client):
    response = api_client.get(LIST_URL, {"page_size": 501})

    assert response.status_code == 400
    assert "page_size" in response.json()["errors"]
    assert api_client.get(LIST_URL, {"page_size": 500}).status_code == 200


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("page_size", "0"),
        ("page_size", "-1"),
        ("page_size", "abc"),
        ("page_size", "1" * 5000),
        ("page", "0"),
        ("page", "abc"),
        ("page", "1.5"),
    ],
)
def test_bad_pagination_parameters_are_400(api_client, param, value):
    response = api_client.get(LIST_URL, {param: value})

    assert response.status_code == 400
    assert param in response.json()["errors"]


def test_page_past_the_end_is_404(api_client):
    make_product()

    response = api_client.get(LIST_URL, {"page": 2})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_unknown_query_parameter_is_400(api_client):
    response = api_client.get(LIST_URL, {"colour": "red"})

    assert response.status_code == 400
    assert response.json()["errors"] == {"colour": ["Unknown query parameter."]}


def test_repeated_query_parameter_is_400(api_client):
    response = api_client.get(f"{LIST_URL}?page=1&page=2")

    assert response.status_code == 400
    assert "page" in response.json()["errors"]


def test_retrieve_returns_the_product(api_client, product):
    response = api_client.get(detail_url(product.pk))

    assert response.status_code == 200
    assert response.json()["sku"] == product.sku


@pytest.mark.parametrize("product_id", ["999999", "9" * 19, "9" * 40, "abc", "-1", "1.0"])
def test_unknown_or_non_numeric_id_is_404(api_client, product_id):
    for method in ("get", "put", "patch", "delete"):
        response = getattr(api_client, method)(detail_url(product_id), {}, format="json")

        assert response.status_code == 404, (method, product_id)
        assert response.json()["code"] == "not_found"


def test_put_replaces_the_editable_fields(api_client, product):
    body = valid_body(sku="NEW-1", name="Renamed", stock_quantity=42, low_stock_threshold=50)

    response = api_client.put(detail_url(product.pk), body, format="json")

    assert response.status_code == 200
    product.refresh_from_db()
    assert (product.sku, product.name, product.stock_quantity) == ("NEW-1", "Renamed", 42)
    assert response.json()["is_below_requirement"] is True


def test_put_without_stock_keeps_the_stock(api_client):
    product = make_product(stock_quantity=7)

    response = api_client.put(detail_url(product.pk), {"sku": "S", "name": "N"}, format="json")

    assert response.status_code == 200
    product.refresh_from_db()
    assert product.stock_quantity == 7


def test_put_missing_required_fields_is_400(api_client, product):
    response = api_client.put(detail_url(product.pk), {"name": "Only a name"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["sku"] == ["This field is required."]


def test_patch_changes_only_the_given_fields(api_client):
    product = make_product(name="Old", stock_quantity=3)

    response = api_client.patch(detail_url(product.pk), {"low_stock_threshold": 9}, format="json")

    assert response.status_code == 200
    product.refresh_from_db()
    assert (product.name, product.stock_quantity, product.low_stock_threshold) == ("Old", 3, 9)


def test_patch_sets_stock_directly(api_client):
    product = make_product(stock_quantity=3)

    response = api_client.patch(detail_url(product.pk), {"stock_quantity": 0}, format="json")

    assert response.status_code == 200
    assert response.json()["stock_quantity"] == 0
    product.refresh_from_db()
    assert product.stock_quantity == 0


def test_read_only_fields_are_ignored_on_write(api_client, product):
    body = {"id": 12345, "created_at": "2000-01-01T00:00:00Z", "is_below_requirement": True}

    response = api_client.patch(detail_url(product.pk), body, format="json")

    assert response.status_code == 200
    assert response.json()["id"] == product.pk
    assert response.json()["created_at"] != "2000-01-01T00:00:00Z"


def test_unknown_body_field_is_400(api_client, product):
    response = api_client.patch(detail_url(product.pk), {"stock": 5}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"stock": ["Unknown field."]}


def test_delete_returns_204_and_removes_the_product(api_client, product):
    response = api_client.delete(detail_url(product.pk))

    assert response.status_code == 204
    assert not Product.objects.filter(pk=product.pk).exists()
    assert api_client.get(detail_url(product.pk)).status_code == 404


def test_below_requirement_lists_products_at_or_below_threshold(api_client):
    at = make_product(stock_quantity=5, low_stock_threshold=5)
    below = make_product(stock_quantity=0, low_stock_threshold=1)
    make_product(stock_quantity=6, low_stock_threshold=5)

    response = api_client.get(f"{LIST_URL}below_requirement/")

    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 2
    assert [p["id"] for p in data["results"]] == [at.pk, below.pk]
    assert all(p["is_below_requirement"] for p in data["results"])


def test_below_requirement_is_paginated(api_client):
    for _ in range(3):
        make_product(stock_quantity=0, low_stock_threshold=1)

    response = api_client.get(f"{LIST_URL}below_requirement/", {"page_size": 2})

    data = response.json()
    assert data["count"] == 3
    assert len(data["results"]) == 2
    assert data["next"] is not None


INVALID_FIELDS = [
    ("sku", ""),
    ("sku", "   "),
    ("sku", "x" * 65),
    ("sku", None),
    ("sku", 123),
    ("sku", ["a"]),
    ("sku", "bad\x00sku"),
    ("sku", "tab\tsku"),
    ("sku", "c1\x85control"),
    ("sku", "\u200b\u200b"),  # nothing visible
    ("sku", "two\u2028lines"),
    ("name", "\ufeff \u200d"),
    ("sku", " " * 10 + "x" * 60),
    ("name", ""),
    ("name", "n" * 201),
    ("name", None),
    ("name", 1.5),
    ("name", "nul\x00"),
    ("description", "d" * 5001),
    ("description", 5),
    ("description", "nul\x00"),
    ("price", "-0.01"),
    ("price", -1),
    ("price", "abc"),
    ("price", "NaN"),
    ("price", "Infinity"),
    ("price", "-Infinity"),
    ("price", "1.005"),
    ("price", "12345678901.00"),
    ("price", True),
    ("price", 0),
    ("price", 12.5),
    ("price", ""),
    ("price", "-0"),
    ("price", "+1"),
    ("price", "1_000"),
    ("price", "\u0661\u0662"),
    ("price", "1e2"),
    ("price", " 1.5 "),
    ("price", "1."),
    ("price", None),
    ("price", {"amount": 1}),
    ("stock_quantity", -1),
    ("stock_quantity", 1.5),
    ("stock_quantity", 2.0),
    ("stock_quantity", "5"),
    ("stock_quantity", True),
    ("stock_quantity", None),
    ("stock_quantity", MAX_STOCK + 1),
    ("stock_quantity", 10**30),
    ("low_stock_threshold", -1),
    ("low_stock_threshold", "x"),
    ("low_stock_threshold", MAX_STOCK + 1),
]


@pytest.mark.parametrize(("field", "value"), INVALID_FIELDS)
def test_create_with_invalid_field_is_400_and_writes_nothing(api_client, field, value):
    response = api_client.post(LIST_URL, valid_body(**{field: value}), format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["errors"]
    assert Product.objects.count() == 0


@pytest.mark.parametrize(("field", "value"), INVALID_FIELDS)
def test_patch_with_invalid_field_is_400_and_changes_nothing(api_client, field, value):
    product = make_product(sku="KEEP", stock_quantity=4)

    response = api_client.patch(detail_url(product.pk), {field: value}, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]
    product.refresh_from_db()
    assert (product.sku, product.stock_quantity, product.price) == ("KEEP", 4, Decimal("9.99"))


def test_largest_stock_value_is_accepted(api_client):
    response = api_client.post(LIST_URL, valid_body(stock_quantity=MAX_STOCK), format="json")

    assert response.status_code == 201
    assert Product.objects.get().stock_quantity == MAX_STOCK


@pytest.mark.parametrize(("sent", "stored"), [("12.5", "12.50"), ("3", "3.00"), ("0.07", "0.07")])
def test_price_is_a_decimal_string(api_client, sent, stored):
    response = api_client.post(LIST_URL, valid_body(price=sent), format="json")

    assert response.status_code == 201
    assert response.json()["price"] == stored
    assert str(Product.objects.get().price) == stored


def test_unknown_fields_are_reported_at_most_twenty_at_a_time(api_client):
    body = {f"field{i:03d}": i for i in range(500)}

    response = api_client.post(LIST_URL, body, format="json")

    assert response.status_code == 400
    assert len(response.json()["errors"]) == 20


def test_a_sku_with_invisible_characters_among_visible_ones_is_refused(api_client):
    """They would make two labels that print the same look different (README, SKUs)."""
    response = api_client.post(
        "/api/products/", {"sku": "AB\u200bC-1", "name": "Zero-width inside"}, format="json"
    )

    assert response.status_code == 400
    assert "invisible" in response.json()["errors"]["sku"][0]
    assert not Product.objects.exists()


def test_the_api_root_links_every_collection(api_client):
    response = api_client.get("/api/")

    assert response.status_code == 200
    links = {name: url.removeprefix("http://testserver") for name, url in response.json().items()}
    assert links == {
        "products": "/api/products/",
        "movements": "/api/movements/",
        "stock-adjustments": "/api/stock-adjustments/",
        "reservations": "/api/reservations/",
        "events": "/api/events/",
        "webhook-endpoints": "/api/webhook-endpoints/",
        "webhook-deliveries": "/api/webhook-deliveries/",
    }
