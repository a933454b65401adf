"""On a table big enough for the planner to care, the list queries use their indexes."""

import json

import pytest
from django.db import connection

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


def test_case_insensitive_sku_lookup_uses_the_lower_sku_index(big_catalogue):
    queryset = ProductFilter({"sku": "sku-012345"}, Product.objects.all()).qs

    assert "product_sku_ci_unique" in plan(queryset)
    assert [p.sku for p in queryset] == ["SKU-012345"]


def test_substring_search_uses_a_trigram_index(big_catalogue):
    queryset = Product.objects.filter(name__icontains="uct 1234")

    assert "product_name_trgm" in plan(queryset)
    assert queryset.count() == 11  # 1234 and 12340..12349
