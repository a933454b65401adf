"""On a table big enough for the planner to care, the list queries use their indexes."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import pagination
from products import selectors
from products.filters import ProductFilter
from products.models import Product

from .conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db]

ROWS = 30_000


@pytest.fixture
def big_catalogue():
    # 1 in 300 products below requirement, as in a healthy warehouse.
    Product.objects.bulk_create(
        Product(
            sku=f"SKU-{n:06d}",
            name=f"Product {n} {'widget' if n % 2 else 'gadget'}",
            description=f"batch {n % 97}",
            stock_quantity=100 + n % 50,
            low_stock_threshold=200 if n % 300 == 0 else 10,
        )
        for n in range(ROWS)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE products_product")


def plan(queryset) -> str:
    """The EXPLAIN (FORMAT JSON) of a queryset, as text, for asserting on index names."""
    return json.dumps(json.loads(queryset.explain(format="json")))


def test_low_stock_page_uses_the_partial_index(big_catalogue):
    page = selectors.below_requirement().order_by("id")[:50]

    assert "product_below_requirement" in plan(page)
    assert len(page) == 50


def test_sku_lookup_in_any_case_uses_the_unique_sku_key_index(big_catalogue):
    queryset = ProductFilter({"sku": "sku-012345"}, Product.objects.all()).qs

    assert "product_sku_key_unique" in plan(queryset)
    assert [p.sku for p in queryset] == ["SKU-012345"]


def test_search_over_sku_name_and_description_uses_one_trigram_index(big_catalogue):
    queryset = selectors.search(Product.objects.all(), ["uct 1234"])

    assert "product_search_text_trgm" in plan(queryset)
    assert queryset.count() == 11


def test_a_search_for_one_full_sku_pages_through_the_trigram_index(big_catalogue, api_client):
    """A page of one rare match is read through the search index, not by walking the
    whole id index hoping to meet that match early (after a walk of the first
    WALK_ROWS rows, which finds no full page)."""
    with CaptureQueriesContext(connection) as queries:
        response = api_client.get("/api/products/", {"search": "SKU-012345"})
    walked, page_query = [q["sql"] for q in queries if "LIMIT 50" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {page_query}")
        page_plan = json.dumps(cursor.fetchone()[0])

    assert [p["sku"] for p in response.json()["results"]] == ["SKU-012345"]
    assert f"LIMIT {pagination.WALK_ROWS})" in walked
    assert "product_search_text_trgm" in page_plan


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({"ordering": "price"}, "product_price_order"),
        ({"ordering": "-name"}, "product_name_order"),
        ({"ordering": "sku"}, "product_sku_order"),
        ({"ordering": "-updated_at"}, "product_updated_at_order"),
        (
            {"stock_quantity__gte": 140, "ordering": "stock_quantity"},
            "product_stock_quantity_order",
        ),
    ],
)
def test_ordering_and_range_filters_use_their_index(big_catalogue, api_client, params, index):
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get("/api/products/", params).status_code == 200
    page_query = next(q["sql"] for q in queries if "LIMIT 50" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {page_query}")

        assert index in json.dumps(cursor.fetchone()[0])


def test_substring_search_uses_a_trigram_index(big_catalogue):
    queryset = Product.objects.filter(name__icontains="uct 1234")

    assert "product_name_trgm" in plan(queryset)
    assert queryset.count() == 11  # 1234 and 12340..12349


@pytest.mark.parametrize(
    ("ordering", "index"),
    [(["id"], "products_product_pkey"), (["name", "id"], "product_name_order")],
)
def test_a_walk_from_a_row_enters_the_index_at_the_row(big_catalogue, ordering, index):
    """The count of a page whose matches sit late in its order walks on from the page's
    first row: the index scan must start there, not filter its way from the table's
    first row."""
    row = Product.objects.order_by(*ordering)[29_000]
    rows = Product.objects.filter(pagination.from_row(row, ordering)).order_by(*ordering)

    scans = list(nodes(json.loads(rows[:2000].explain(format="json"))[0]["Plan"]))
    assert any(
        scan.get("Index Name") == index and ">=" in scan.get("Index Cond", "") for scan in scans
    )
    assert rows.first() == row


def nodes(plan: dict):
    """A plan's nodes, depth first."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)
