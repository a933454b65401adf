"""Pages filtered by a substring: looked for among the first rows in the page's order
first (core.pagination.walk), the planner's way only when those hold too few.

The walk reads WALK_ROWS rows (COMMON_WALK_ROWS for the count of a page found so) and
the count stops at COUNT_CAP; all are lowered here so that a few hundred products
exercise every path.
"""

import re

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from core import pagination
from products.models import Product

from .conftest import requires_postgres

pytestmark = [requires_postgres, pytest.mark.django_db]

WALK_ROWS = 40
COMMON_WALK_ROWS = 120
COUNT_CAP = 30


@pytest.fixture(autouse=True)
def small_walk(monkeypatch):
    monkeypatch.setattr(pagination, "WALK_ROWS", WALK_ROWS)
    monkeypatch.setattr(pagination, "COMMON_WALK_ROWS", COMMON_WALK_ROWS)
    monkeypatch.setattr(pagination, "COUNT_CAP", COUNT_CAP)


@pytest.fixture
def catalogue():
    """200 hex bolts (ids in this order): a nut on each of the last hundred, a washer on
    two of them, a clamp on one of the first and one of the last rows, zinc on every
    third."""

    def name(n: int) -> str:
        words = ["Hex bolt"]
        words += ["zinc"] if n % 3 == 0 else []
        words += ["nut"] if n >= 100 else []
        words += ["washer"] if n in (150, 180) else []
        words += ["clamp"] if n in (3, 170) else []
        return " ".join(words)

    Product.objects.bulk_create(
        Product(
            sku=f"SKU-{n:03d}",
            sku_key=f"SKU-{n:03d}",
            name=name(n),
            price=(n * 37) % 101,
            stock_quantity=(n * 13) % 50,
            low_stock_threshold=5,
        )
        for n in range(200)
    )


def expected(search: str, ordering: list[str], page: int = 1, page_size: int = 10, **filters):
    """The SKUs of a page, by the ORM's plain query."""
    queryset = Product.objects.filter(name__icontains=search, **filters).order_by(*ordering)
    start = (page - 1) * page_size
    return list(queryset.values_list("sku", flat=True)[start : start + page_size])


def walked(queries) -> list[int | str | None]:
    """For each products query, how many rows it was limited to reading (None: all;
    "size": how many rows there are to walk, when a walk found too few)."""

    def limit(sql: str) -> int | str | None:
        if sql.endswith(") window_rows"):
            return "size"
        if sql.endswith(") walked_matches"):
            return "matches"
        match = re.search(r" LIMIT ([0-9]+)\) \"products_product\"", sql)
        return int(match.group(1)) if match else None

    return [limit(query["sql"]) for query in queries if '"products_product"' in query["sql"]]


def test_a_word_on_every_product_is_paged_and_counted_from_the_first_rows(catalogue, api_client):
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", {"search": "bolt", "page_size": 10}).json()

    assert [p["sku"] for p in data["results"]] == [f"SKU-{n:03d}" for n in range(10)]
    assert (data["count"], data["count_is_exact"]) == (COUNT_CAP, False)
    assert walked(queries) == [WALK_ROWS, COMMON_WALK_ROWS]  # the page, the count: no more


def test_a_word_on_every_third_product_is_counted_past_the_first_rows(catalogue, api_client):
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", {"search": "zinc", "page_size": 10}).json()

    assert [p["sku"] for p in data["results"]] == [f"SKU-{n:03d}" for n in range(0, 30, 3)]
    # 14 among the first 40 rows, 40 among the first 120: more than COUNT_CAP.
    assert (data["count"], data["count_is_exact"]) == (COUNT_CAP, False)
    assert walked(queries) == [WALK_ROWS, COMMON_WALK_ROWS]


@pytest.mark.parametrize(
    "ordering", ["-updated_at", "name", "-price", "stock_quantity", "-sku", "-price,name"]
)
@pytest.mark.parametrize("page", [1, 2, 3])
def test_walked_pages_are_the_pages_of_the_whole_table_in_any_order(
    catalogue, api_client, ordering, page
):
    params = {"search": "bolt", "ordering": ordering, "page": page, "page_size": 10}
    data = api_client.get("/api/products/", params).json()

    assert [p["sku"] for p in data["results"]] == expected(
        "bolt", [*ordering.split(","), "id"], page
    )
    assert (data["count"], data["count_is_exact"]) == (COUNT_CAP, False)


def test_matches_past_the_first_rows_are_read_the_planners_way(catalogue, api_client):
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", {"search": "nut", "page_size": 10}).json()

    assert [p["sku"] for p in data["results"]] == [f"SKU-{n:03d}" for n in range(100, 110)]
    # 100 nuts, none among the first 40 rows: more than COUNT_CAP all the same, found
    # among the 40 rows from the page's first.
    assert (data["count"], data["count_is_exact"]) == (COUNT_CAP, False)
    assert walked(queries) == [WALK_ROWS, "size", None, WALK_ROWS]


def test_matches_late_in_another_order_are_counted_from_the_pages_first_row(catalogue, api_client):
    params = {"search": "nut", "ordering": "name", "page_size": 10}
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", params).json()

    # By name the nuts come after some 60 plain bolts: past the first 40 rows.
    assert [p["sku"] for p in data["results"]] == expected("nut", ["name", "id"])
    assert (data["count"], data["count_is_exact"]) == (COUNT_CAP, False)
    assert walked(queries) == [WALK_ROWS, "size", "matches", None, WALK_ROWS]


@pytest.mark.parametrize(
    "ordering",
    [
        ["id"],
        ["-id"],
        ["-price", "name", "id"],
        ["stock_quantity", "-id"],
        ["name", "price", "id"],  # one way: a row comparison
        ["-stock_quantity", "-id"],
    ],
)
def test_from_row_is_the_rows_at_and_after_a_row_in_its_order(catalogue, ordering):
    rows = list(Product.objects.order_by(*ordering))

    for i in (0, 57, 199):
        after = Product.objects.filter(pagination.from_row(rows[i], ordering))
        assert list(after.order_by(*ordering)) == rows[i:]


@pytest.mark.parametrize(
    ("search", "ordering"),
    [("nut", ["name", "id"]), ("washer", ["-price", "id"]), ("clamp", ["stock_quantity", "-id"])],
)
def test_a_page_in_another_order_that_the_walk_misses_is_read_from_its_matches(
    catalogue, api_client, search, ordering
):
    """Not by walking that order's index through the table hoping to meet the matches
    early: they may all sort late (by name the nuts come after some 60 plain bolts;
    see pagination.page_from_matches)."""
    params = {"search": search, "ordering": ",".join(ordering[:-1]), "page_size": 10}
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", params).json()
    page_query = [q["sql"] for q in queries if '"products_product"' in q["sql"]][3]

    assert [p["sku"] for p in data["results"]] == expected(search, ordering)
    assert " OFFSET 0) " in page_query
    assert page_query.endswith("LIMIT 10")
    assert walked(queries)[:3] == [WALK_ROWS, "size", "matches"]


def test_a_page_in_id_order_is_left_to_the_planner(catalogue, api_client):
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", {"search": "nut", "page_size": 10}).json()

    assert [p["sku"] for p in data["results"]] == [f"SKU-{n:03d}" for n in range(100, 110)]
    assert not any("OFFSET 0" in q["sql"] for q in queries)


@pytest.mark.parametrize(
    ("search", "numbers"), [("washer", [150, 180]), ("clamp", [3, 170]), ("rivet", [])]
)
def test_rare_words_are_counted_exactly(catalogue, api_client, search, numbers):
    data = api_client.get("/api/products/", {"search": search, "page_size": 10}).json()

    assert [p["sku"] for p in data["results"]] == [f"SKU-{n:03d}" for n in numbers]
    assert (data["count"], data["count_is_exact"]) == (len(numbers), True)


def test_a_word_between_the_two_is_counted_exactly_too(catalogue, api_client):
    data = api_client.get("/api/products/", {"search": "nut", "stock_quantity__lte": 10}).json()

    nuts = expected("nut", ["id"], page_size=100, stock_quantity__lte=10)
    assert 10 < len(nuts) < COUNT_CAP
    assert [p["sku"] for p in data["results"]] == nuts
    assert (data["count"], data["count_is_exact"]) == (len(nuts), True)


@pytest.mark.parametrize("path", ["/api/products/", "/api/products/below_requirement/"])
def test_a_walk_combines_with_the_other_filters(catalogue, api_client, path):
    params = {
        "name": "hex",
        "search": "bolt",
        "stock_quantity__lte": 30,
        "price__gte": "10",
        "ordering": "-updated_at",
        "page_size": 5,
    }
    data = api_client.get(path, params).json()

    filters = {"stock_quantity__lte": 30, "price__gte": 10}
    if path.endswith("below_requirement/"):
        filters["stock_quantity__lte"] = 5
    assert [p["sku"] for p in data["results"]] == expected(
        "bolt", ["-updated_at", "id"], page_size=5, **filters
    )


def test_a_list_without_a_substring_filter_is_not_walked(catalogue, api_client):
    with CaptureQueriesContext(connection) as queries:
        for params in ({}, {"stock_quantity__gte": 10, "ordering": "-updated_at"}):
            assert api_client.get("/api/products/", params).status_code == 200

    assert walked(queries) == [None] * 4


def test_the_walk_reads_the_first_rows_in_the_pages_order(catalogue):
    page = Product.objects.filter(name__icontains="bolt").order_by("-updated_at", "id")[:10]

    sql, params = pagination.walk(page, 40, page.query.order_by)

    assert sql.startswith('SELECT "products_product"."id", ')
    assert ' FROM (SELECT "products_product"."id", ' in sql
    assert (
        ' FROM "products_product" ORDER BY "products_product"."updated_at" DESC, '
        '"products_product"."id" ASC LIMIT 40) "products_product" WHERE ' in sql
    )
    assert sql.endswith(
        'ORDER BY "products_product"."updated_at" DESC, "products_product"."id" ASC LIMIT 10'
    )
    assert params == ("%BOLT%",) or params == ("%bolt%",)


def pk(n: int) -> int:
    return Product.objects.get(sku=f"SKU-{n:03d}").pk


def matching(search: str, below: bool = False) -> list[str]:
    """Every match in id order (below its threshold, if `below`), by the ORM's plain query."""
    products = Product.objects.filter(name__icontains=search)
    if below:
        products = products.filter(stock_quantity__lte=F("low_stock_threshold"))
    return list(products.order_by("id").values_list("sku", flat=True))


def test_a_cursor_page_of_a_common_word_is_found_among_the_rows_after_the_cursor(
    catalogue, api_client
):
    params = {"cursor": f"a{pk(50)}", "search": "bolt", "page_size": 10}
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", params).json()

    assert [p["sku"] for p in data["results"]] == [f"SKU-{n:03d}" for n in range(51, 61)]
    assert f"cursor=a{pk(60)}" in data["next"]
    assert f"cursor=b{pk(51)}" in data["previous"]
    assert walked(queries) == [WALK_ROWS]  # the 40 rows after the cursor: no more


def test_a_cursor_page_backwards_is_found_among_the_rows_before_the_cursor(catalogue, api_client):
    params = {"cursor": f"b{pk(100)}", "search": "zinc", "page_size": 5}
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", params).json()

    assert [p["sku"] for p in data["results"]] == [f"SKU-{n:03d}" for n in range(87, 100, 3)]
    assert walked(queries) == [WALK_ROWS]


@pytest.mark.parametrize("path", ["/api/products/", "/api/products/below_requirement/"])
@pytest.mark.parametrize("search", ["bolt", "zinc", "nut", "washer", "clamp", "rivet"])
def test_a_cursor_walk_by_a_word_returns_every_match_once_either_way(
    catalogue, api_client, search, path
):
    pages, url, params = [], path, {"cursor": "", "search": search, "page_size": 7}
    while url:
        data = api_client.get(url, params).json()
        pages.append([p["sku"] for p in data["results"]])
        url, params, last = data["next"], None, data

    below = path.endswith("below_requirement/")
    assert [sku for page in pages for sku in page] == matching(search, below=below)
    backwards, url = [], last["previous"]
    while url:
        data = api_client.get(url).json()
        backwards.append([p["sku"] for p in data["results"]])
        url = data["previous"]
    assert backwards == pages[-2::-1]


def test_the_tail_of_a_cursor_walk_is_not_asked_of_the_planner(catalogue, api_client):
    params = {"cursor": f"a{pk(180)}", "search": "nut", "page_size": 50}
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", params).json()

    assert [p["sku"] for p in data["results"]] == [f"SKU-{n:03d}" for n in range(181, 200)]
    assert data["next"] is None
    # Fewer matches than the page wants, but fewer rows than a walk reads are left:
    # the walk saw them all.
    assert walked(queries) == [WALK_ROWS, "size"]


def test_a_cursor_page_of_matches_past_the_first_rows_is_read_the_planners_way(
    catalogue, api_client
):
    with CaptureQueriesContext(connection) as queries:
        data = api_client.get("/api/products/", {"cursor": "", "search": "nut", "page_size": 10})

    assert [p["sku"] for p in data.json()["results"]] == [f"SKU-{n:03d}" for n in range(100, 110)]
    assert walked(queries) == [WALK_ROWS, "size", None]
