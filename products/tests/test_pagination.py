"""Page numbers with a capped count, and cursors that walk the whole catalogue."""

import base64

import pytest

from products import pagination
from products.models import StockMovement

from .conftest import make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_cap(monkeypatch):
    monkeypatch.setattr(pagination, "COUNT_CAP", 5)


def test_count_is_exact_below_the_cap(api_client, small_cap):
    for _ in range(5):
        make_product()

    data = api_client.get("/api/products/", {"page_size": 2}).json()

    assert (data["count"], data["count_is_exact"]) == (5, True)


def test_past_the_cap_count_stops_there_and_says_so(api_client, small_cap):
    for _ in range(8):
        make_product()

    data = api_client.get("/api/products/", {"page_size": 2}).json()
    last = api_client.get("/api/products/", {"page_size": 2, "page": 3}).json()

    assert (data["count"], data["count_is_exact"]) == (5, False)
    assert last["next"] is None  # the pages stop at the cap: use a cursor to go further
    assert api_client.get("/api/products/", {"page_size": 2, "page": 4}).status_code == 404


@pytest.mark.parametrize("path", ["/api/products/", "/api/products/below_requirement/"])
def test_a_cursor_walks_every_product_exactly_once_in_id_order(api_client, path):
    products = [make_product(stock_quantity=0, low_stock_threshold=1) for _ in range(7)]
    seen, url, params = [], path, {"cursor": "", "page_size": 3}

    while url:
        data = api_client.get(url, params).json()
        assert "count" not in data
        seen += [p["id"] for p in data["results"]]
        url, params = data["next"], None

    assert seen == [p.pk for p in products]


def test_a_cursor_combines_with_filters(api_client):
    make_product(sku="A-1")
    wanted = make_product(sku="B-1")

    data = api_client.get("/api/products/", {"cursor": "", "search": "b-1"}).json()

    assert [p["id"] for p in data["results"]] == [wanted.pk]


def test_the_ledger_can_be_walked_with_a_cursor(api_client):
    for _ in range(3):
        make_product(stock_quantity=1)

    data = api_client.get("/api/movements/", {"cursor": "", "page_size": 2}).json()

    assert len(data["results"]) == 2
    assert data["next"]
    assert {m["id"] for m in data["results"]} <= set(
        StockMovement.objects.values_list("id", flat=True)
    )


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "", "page": "2"},
        {"cursor": "", "ordering": "sku"},
        {"cursor": "", "page_size": "0"},
    ],
)
def test_bad_cursor_requests_are_400(api_client, params):
    make_product()

    response = api_client.get("/api/products/", params)

    assert response.status_code == 400
    assert set(response.json()["errors"]) & set(params)


def cursor(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "path", ["/api/products/", "/api/products/below_requirement/", "/api/movements/"]
)
@pytest.mark.parametrize(
    "crafted",
    ["p=abc", "p=1.5", "p=", "p=-1", "p=\x00", "x=1", "o=1", "r=1", f"p={2**63}", "%00"],
)
def test_crafted_cursors_are_400_not_a_500_or_the_first_page(api_client, path, crafted):
    make_product(stock_quantity=0, low_stock_threshold=1)

    response = api_client.get(path, {"cursor": cursor(crafted)})

    assert response.status_code == 400
    assert response.json()["errors"] == {"cursor": ["Invalid cursor."]}


def test_a_cursor_walks_back_through_previous_links(api_client):
    products = [make_product() for _ in range(5)]
    data = api_client.get("/api/products/", {"cursor": "", "page_size": 2}).json()
    data = api_client.get(data["next"]).json()
    data = api_client.get(data["next"]).json()

    back = api_client.get(data["previous"]).json()

    assert [p["id"] for p in back["results"]] == [p.pk for p in products[2:4]]
