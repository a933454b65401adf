"""One spelling for every number in a URL: decimal digits without a leading zero.

`01` is refused wherever a number names a row or a page, as the schema says: in a query
parameter it is a 400, in a path a 404 (like any id no row can have).
"""

import pytest

from core.limits import MAX_ID
from products.models import StockMovement

from .conftest import make_product

pytestmark = pytest.mark.django_db

LISTS = [
    "/api/products/",
    "/api/products/below_requirement/",
    "/api/movements/",
    "/api/products/{id}/movements/",
]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("parameter", "value"),
    [("page", "01"), ("page", "001"), ("page_size", "01"), ("page_size", "050")],
)
def test_a_page_number_or_size_with_a_leading_zero_is_400(api_client, path, parameter, value):
    product = make_product(stock_quantity=0, low_stock_threshold=1)

    response = api_client.get(path.format(id=product.pk), {parameter: value})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [parameter]


@pytest.mark.parametrize("path", LISTS)
def test_the_same_numbers_without_the_zero_are_fine(api_client, path):
    product = make_product(stock_quantity=0, low_stock_threshold=1)

    response = api_client.get(path.format(id=product.pk), {"page": "1", "page_size": "50"})

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("patch", "", {"name": "x"}),
        ("put", "", {"sku": "S", "name": "x"}),
        ("delete", "", None),
        ("post", "increment/", {"quantity": 1}),
        ("post", "decrement/", {"quantity": 1}),
        ("post", "count/", {"counted_quantity": 1}),
        ("get", "movements/", None),
    ],
)
def test_a_product_id_with_a_leading_zero_is_404_and_changes_nothing(
    api_client, method, suffix, body
):
    product = make_product(stock_quantity=5, name="Before")
    padded = f"0{product.pk}"

    response = getattr(api_client, method)(f"/api/products/{padded}/{suffix}", body, format="json")

    assert response.status_code == 404
    product.refresh_from_db()
    assert (product.stock_quantity, product.version, product.name) == (5, 1, "Before")
    assert api_client.get(f"/api/products/{product.pk}/{suffix}").status_code in (200, 405)


def test_a_movement_id_with_a_leading_zero_is_404(api_client):
    make_product(stock_quantity=5)
    movement = StockMovement.objects.get()

    assert api_client.get(f"/api/movements/{movement.pk}/").status_code == 200
    assert api_client.get(f"/api/movements/0{movement.pk}/").status_code == 404
    assert api_client.get(f"/api/movements/00{movement.pk}/").status_code == 404


def test_the_schema_says_so(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    for path in ("/api/products/{id}/", "/api/movements/{id}/", "/api/products/{id}/count/"):
        for operation in schema["paths"][path].values():
            (id_,) = [p for p in operation["parameters"] if p["in"] == "path"]
            assert id_["schema"] == {
                "type": "integer",
                "format": "int64",
                "minimum": 1,
                "maximum": MAX_ID,
            }
            assert "without a leading zero" in id_["description"]
    for parameter in schema["paths"]["/api/products/"]["get"]["parameters"]:
        if parameter["name"] in ("page", "page_size"):
            assert parameter["schema"]["minimum"] == 1
            assert "without a leading zero" in parameter["description"]


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/api/movements/", {"product": "01"}),
        ("/api/movements/", {"user": "007"}),
        ("/api/products/", {"stock_quantity__gte": "05"}),
        ("/api/products/", {"stock_quantity__lte": "-01"}),
        ("/api/events/", {"after": "00"}),
    ],
)
def test_integer_filters_refuse_leading_zeros_too(api_client, url, params):
    response = api_client.get(url, params)

    assert response.status_code == 400
    assert list(params) == list(response.json()["errors"])


def test_integer_filters_take_zero_and_negative_numbers_as_written(api_client):
    assert api_client.get("/api/products/", {"stock_quantity__gte": "0"}).status_code == 200
    assert api_client.get("/api/products/", {"stock_quantity__lte": "-5"}).status_code == 200
    assert api_client.get("/api/events/", {"after": "0"}).status_code == 200
