"""Page numbers with a capped count, and cursors that walk the whole catalogue."""

import base64

import pytest

from core import pagination
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
        {"cursor": "a"},
        {"cursor": "a0"},
        {"cursor": "a01"},
        {"cursor": "c1"},
        {"cursor": "a1 "},
        {"cursor": "a12345678901234567890"},
        {"cursor": "", "page": "0"},
        {"cursor": "", "page": "01"},
        {"cursor": "", "ordering": "nonsense"},
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


def results(client, path: str, params: dict) -> list[int]:
    response = client.get(path, params)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    "path", ["/api/products/", "/api/products/below_requirement/", "/api/movements/"]
)
@pytest.mark.parametrize(
    "crafted",
    ["p=1", "p=abc", "p=1.5", "p=", "p=-1", "p=\x00", "x=1", "o=1", "r=1", f"p={2**63}", "%00"],
)
def test_crafted_cursors_are_400_not_a_500_or_the_first_page(api_client, path, crafted):
    # DRF's own base64 cursors included: this API's are `a<id>` and `b<id>`.
    make_product(stock_quantity=0, low_stock_threshold=1)

    response = api_client.get(path, {"cursor": cursor(crafted)})

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "cursor": ["Invalid cursor: follow `next`, or send it empty."]
    }


def test_next_and_previous_hold_the_id_to_continue_from(api_client):
    products = [make_product() for _ in range(5)]

    data = api_client.get("/api/products/", {"cursor": "", "page_size": 2}).json()
    assert f"cursor=a{products[1].pk}" in data["next"]
    data = api_client.get(data["next"]).json()
    assert f"cursor=b{products[2].pk}" in data["previous"]


@pytest.mark.parametrize(
    "path", ["/api/products/", "/api/products/below_requirement/", "/api/movements/"]
)
def test_every_cursor_the_schema_allows_is_a_place_to_start(api_client, path):
    # The schema's pattern is the whole truth: `a<id>` and `b<id>` for any id, existing
    # or not, even past the largest id a row can have.
    ids = [make_product(stock_quantity=1, low_stock_threshold=5).pk for _ in range(4)]
    if path == "/api/movements/":
        ids = sorted(StockMovement.objects.values_list("id", flat=True))
    huge = "9" * 19  # > 2**63 - 1

    assert results(api_client, path, {"cursor": f"a{ids[1]}"}) == ids[2:]
    assert results(api_client, path, {"cursor": f"b{ids[2]}"}) == ids[:2]
    assert results(api_client, path, {"cursor": f"a{ids[-1] + 1000}"}) == []
    assert results(api_client, path, {"cursor": f"a{2**63 - 1}"}) == []
    assert results(api_client, path, {"cursor": f"a{huge}"}) == []
    assert results(api_client, path, {"cursor": f"b{huge}"}) == ids
    assert results(api_client, path, {"cursor": f"b{huge}", "page_size": 2}) == ids[2:]


def test_a_cursor_wins_over_page_and_ordering(api_client):
    # OpenAPI cannot say that `cursor` excludes `page` and `ordering`, so a schema-driven
    # client may send them together: the cursor decides, and the links drop the others.
    products = [make_product(sku=sku) for sku in ("C", "A", "B")]
    alone = api_client.get("/api/products/", {"cursor": "", "page_size": 2}).json()

    both = api_client.get(
        "/api/products/", {"cursor": "", "page_size": 2, "page": 7, "ordering": "-sku"}
    ).json()

    assert both == alone
    assert [p["id"] for p in both["results"]] == [p.pk for p in products[:2]]
    assert "page=" not in both["next"].replace("page_size=", "")
    assert "ordering" not in both["next"]


def test_a_cursor_walks_back_through_previous_links(api_client):
    products = [make_product() for _ in range(5)]
    data = api_client.get("/api/products/", {"cursor": "", "page_size": 2}).json()
    data = api_client.get(data["next"]).json()
    data = api_client.get(data["next"]).json()

    back = api_client.get(data["previous"]).json()

    assert [p["id"] for p in back["results"]] == [p.pk for p in products[2:4]]


def test_the_schema_declares_the_cursors_the_api_accepts(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    for path in (
        "/api/products/",
        "/api/products/below_requirement/",
        "/api/movements/",
        "/api/products/{id}/movements/",
    ):
        parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
        assert parameters["cursor"]["schema"]["pattern"] == pagination.CURSOR_PATTERN
        assert "no effect with `cursor`" in parameters["page"]["description"]
        if "ordering" in parameters:
            assert "no effect with `cursor`" in parameters["ordering"]["description"]


@pytest.mark.parametrize("path", ["/api/products/", "/api/products/below_requirement/"])
@pytest.mark.parametrize("search", [{}, {"search": "bolt"}])
def test_a_filter_no_row_can_match_is_an_empty_list_on_any_page(api_client, path, search):
    # A value past the column's range: Django knows without asking that nothing matches.
    make_product(name="Hex bolt", stock_quantity=1, low_stock_threshold=5)
    impossible = {"available_quantity__gte": 2_500_000_651_127_613_455, **search}

    first = api_client.get(path, impossible)
    later = api_client.get(path, {**impossible, "page": 2})

    assert first.status_code == 200, first.content
    assert (first.json()["count"], first.json()["results"]) == (0, [])
    assert later.status_code == 404, later.content
