"""The number of queries on the hot paths is pinned, so that a regression fails CI.

Transactional tests, so that the services' atomic blocks are the outermost ones, as
in production (no savepoints). Authentication is a real token; permission checks
load the user's permissions once per request.
"""

import pytest

from .conftest import make_product, make_user, token_client

pytestmark = pytest.mark.django_db(transaction=True)

# Token lookup (with its user), the user's own permissions, its groups' permissions.
AUTH = 3


@pytest.fixture
def staff_client():
    return token_client(make_user("staff"))


@pytest.mark.parametrize("operation", ["increment", "decrement"])
def test_a_stock_operation_is_lock_update_insert(
    staff_client, django_assert_num_queries, operation
):
    product = make_product(stock_quantity=10)

    # BEGIN, SELECT ... FOR UPDATE, UPDATE the product, INSERT the movement, COMMIT.
    with django_assert_num_queries(AUTH + 5):
        response = staff_client.post(
            f"/api/products/{product.pk}/{operation}/", {"quantity": 1}, format="json"
        )
    assert response.status_code == 200


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
