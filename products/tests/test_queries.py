"""The number of queries on the hot paths is pinned, so that a regression fails CI.

Transactional tests, so that the services' atomic blocks are the outermost ones, as
in production. Authentication is a real token, read with the user's permissions in
one query (products/authentication.py).
"""

import uuid

import pytest

from .conftest import ON_POSTGRES, make_product, make_user, token_client

pytestmark = pytest.mark.django_db(transaction=True)

# The token, its user and the user's own and groups' permissions: one query.
AUTH = 1


def statements(context) -> list[str]:
    """The first word of each captured query (SELECT, BEGIN, UPDATE, ...)."""
    return [query["sql"].split()[0].upper() for query in context.captured_queries]


@pytest.fixture
def staff_client():
    return token_client(make_user("staff"))


@pytest.mark.parametrize("operation", ["increment", "decrement"])
def test_a_stock_operation_is_lock_insert_insert_update(
    staff_client, django_assert_num_queries, operation
):
    product = make_product(stock_quantity=10)

    # BEGIN, SELECT ... FOR UPDATE, INSERT the movement, INSERT its events (one statement,
    # with a threshold crossing or without), UPDATE the product, COMMIT.
    with django_assert_num_queries(AUTH + 6) as context:
        response = staff_client.post(
            f"/api/products/{product.pk}/{operation}/", {"quantity": 1}, format="json"
        )
    assert response.status_code == 200
    assert statements(context) == [
        *["SELECT", "BEGIN", "SELECT", "INSERT", "INSERT", "UPDATE", "COMMIT"]
    ]
    if ON_POSTGRES:  # SQLite has no row locks: its BEGIN IMMEDIATE locks the database
        assert context.captured_queries[2]["sql"].endswith("FOR UPDATE")


@pytest.mark.parametrize("operation", ["increment", "decrement"])
def test_a_stock_operation_with_an_idempotency_key_adds_no_savepoint(
    staff_client, django_assert_num_queries, operation
):
    product = make_product(stock_quantity=10)

    # The key is claimed in its own short transaction (BEGIN, INSERT, COMMIT); then one
    # transaction locks the key, then the product, writes both, and commits.
    with django_assert_num_queries(AUTH + 3 + 8) as context:
        response = staff_client.post(
            f"/api/products/{product.pk}/{operation}/",
            {"quantity": 1},
            format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
    assert response.status_code == 200
    assert statements(context) == [
        "SELECT",
        *["BEGIN", "INSERT", "COMMIT"],
        *["BEGIN", "SELECT", "SELECT", "INSERT", "INSERT", "UPDATE", "UPDATE", "COMMIT"],
    ]


def test_a_refused_decrement_under_an_idempotency_key_is_stored_without_a_savepoint(
    staff_client, django_assert_num_queries
):
    product = make_product(stock_quantity=1)
    key = str(uuid.uuid4())
    url = f"/api/products/{product.pk}/decrement/"

    with django_assert_num_queries(AUTH + 3 + 5) as context:
        response = staff_client.post(url, {"quantity": 5}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 409
    assert "SAVEPOINT" not in statements(context)
    replay = staff_client.post(url, {"quantity": 5}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert replay.status_code == 409
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json()["available"] == 1


def test_get_by_id_is_one_query(staff_client, django_assert_num_queries):
    product = make_product()

    with django_assert_num_queries(AUTH + 1):
        assert staff_client.get(f"/api/products/{product.pk}/").status_code == 200


@pytest.mark.parametrize(("page_size", "queries"), [(1, 2), (50, 2), (500, 1)])
@pytest.mark.parametrize("path", ["/api/products/", "/api/products/below_requirement/"])
def test_a_list_page_is_count_plus_page_whatever_its_size(
    staff_client, django_assert_num_queries, path, page_size, queries
):
    """The page, then a capped count; a first page that is not full is the whole
    result, so it needs no count (60 products, so a page of 500 is not full)."""
    for _ in range(60):
        make_product(stock_quantity=0, low_stock_threshold=1)

    with django_assert_num_queries(AUTH + queries):
        response = staff_client.get(path, {"page_size": page_size})
    assert response.json()["count"] == 60


@pytest.mark.parametrize(("page_size", "queries"), [(1, 2), (50, 1)])
def test_the_movement_list_does_not_query_per_row(django_assert_num_queries, page_size, queries):
    client = token_client(make_user("admin"))
    for _ in range(10):
        product = make_product(stock_quantity=3)
        client.post(f"/api/products/{product.pk}/decrement/", {"quantity": 1}, format="json")

    with django_assert_num_queries(AUTH + queries):
        response = client.get("/api/movements/", {"page_size": page_size})
    assert response.json()["count"] == 20  # the initial stock and the decrement of each


def test_a_cursor_page_is_one_query(staff_client, django_assert_num_queries):
    for _ in range(20):
        make_product()

    with django_assert_num_queries(AUTH + 1):
        response = staff_client.get("/api/products/", {"cursor": "", "page_size": 5})
    assert response.status_code == 200
