"""The SQL of each reservation request is pinned, and a plain decrement keeps its own
(products/tests/test_queries.py) whether or not the product has reservations, until one
of them lapses."""

import pytest

from products.tests.conftest import ON_POSTGRES
from products.tests.test_queries import AUTH, statements

from .conftest import lapse, make_product, make_user, reserve, token_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client():
    return token_client(make_user("staff"))


def test_a_reservation_is_lock_insert_update(staff_client, django_assert_num_queries):
    product = make_product(stock_quantity=10)

    with django_assert_num_queries(AUTH + 5) as context:
        response = staff_client.post(
            f"/api/products/{product.pk}/reservations/", {"quantity": 2}, format="json"
        )
    assert response.status_code == 201
    assert statements(context) == ["SELECT", "BEGIN", "SELECT", "INSERT", "UPDATE", "COMMIT"]
    if ON_POSTGRES:
        assert context.captured_queries[2]["sql"].endswith("FOR UPDATE")


def test_a_fulfilment_is_one_transaction(staff_client, django_assert_num_queries):
    reservation = reserve(make_product(stock_quantity=10), 2)

    # The reservation's product, then: lock the product, then the reservation; the
    # movement, its event, the product, the reservation.
    with django_assert_num_queries(AUTH + 9) as context:
        response = staff_client.post(f"/api/reservations/{reservation.pk}/fulfil/")
    assert response.status_code == 200
    assert statements(context) == [
        *["SELECT", "SELECT", "BEGIN", "SELECT", "SELECT"],
        *["INSERT", "INSERT", "UPDATE", "UPDATE", "COMMIT"],
    ]


def test_a_release_is_one_transaction(staff_client, django_assert_num_queries):
    reservation = reserve(make_product(stock_quantity=10), 2)

    with django_assert_num_queries(AUTH + 7) as context:
        response = staff_client.post(f"/api/reservations/{reservation.pk}/release/")
    assert response.status_code == 200
    assert statements(context) == [
        *["SELECT", "SELECT", "BEGIN", "SELECT", "SELECT", "UPDATE", "UPDATE", "COMMIT"]
    ]


def test_a_decrement_of_a_product_with_running_holds_costs_nothing_more(
    staff_client, django_assert_num_queries
):
    product = make_product(stock_quantity=10)
    reserve(product, 2)

    with django_assert_num_queries(AUTH + 6):
        response = staff_client.post(
            f"/api/products/{product.pk}/decrement/", {"quantity": 1}, format="json"
        )
    assert response.status_code == 200
    assert response.json()["available_quantity"] == 7


def test_a_decrement_after_a_hold_lapsed_tidies_it_first(staff_client, django_assert_num_queries):
    product = make_product(stock_quantity=10)
    lapse(reserve(product, 2))

    # + mark it expired, sum what is still held, write the product's counter.
    with django_assert_num_queries(AUTH + 9) as context:
        response = staff_client.post(
            f"/api/products/{product.pk}/decrement/", {"quantity": 10}, format="json"
        )
    assert response.status_code == 200
    assert statements(context)[3:6] == ["UPDATE", "SELECT", "UPDATE"]


def test_reads_of_products_with_lapsed_holds_add_one_query_not_one_per_row(
    staff_client, django_assert_num_queries
):
    """A page (or one product) whose holds have all been tidied, or have not lapsed, is
    read as before: the page's SQL unchanged, no extra query. One with products whose
    earliest hold lapsed (the tidy-up not yet run) adds one query for all of them."""
    products = [make_product(stock_quantity=10) for _ in range(5)]
    for product in products:
        reserve(product, 2)
    with django_assert_num_queries(AUTH + 1):
        page = staff_client.get("/api/products/").json()["results"]
    assert {p["available_quantity"] for p in page} == {8}

    for product in products[:3]:
        lapse(reserve(product, 1))
    with django_assert_num_queries(AUTH + 2):
        page = staff_client.get("/api/products/").json()["results"]
    assert [p["available_quantity"] for p in page] == [8, 8, 8, 8, 8]
    with django_assert_num_queries(AUTH + 2):
        one = staff_client.get(f"/api/products/{products[0].pk}/").json()
    assert (one["reserved_quantity"], one["available_quantity"]) == (2, 8)


@pytest.mark.parametrize(("page_size", "queries"), [(1, 2), (50, 1)])
@pytest.mark.parametrize("path", ["/api/reservations/", "product"])
def test_a_reservation_list_does_not_query_per_row(
    staff_client, django_assert_num_queries, page_size, queries, path
):
    product = make_product(stock_quantity=100)
    for _ in range(10):
        staff_client.post(
            f"/api/products/{product.pk}/reservations/", {"quantity": 1}, format="json"
        )
    url = f"/api/products/{product.pk}/reservations/" if path == "product" else path
    extra = 1 if path == "product" else 0  # does the product exist?

    with django_assert_num_queries(AUTH + queries + extra):
        response = staff_client.get(url, {"page_size": page_size})
    assert response.json()["count"] == 10
