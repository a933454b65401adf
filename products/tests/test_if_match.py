"""If-Match: strong comparison, exactly as RFC 9110 says, on every operation that changes a
product, the stock operations included."""

import threading
from collections import Counter

import pytest
from django.db import connection

from products import services
from products.models import IdempotencyKey, Product, StockMovement

from .conftest import make_product, make_user, requires_postgres, token_client

pytestmark = pytest.mark.django_db

OPERATIONS = [
    ("increment", {"quantity": 2}),
    ("decrement", {"quantity": 2}),
    ("count", {"counted_quantity": 3}),
]


def state(product: Product) -> tuple[int, int, int]:
    """What a refused request must leave as it was: stock, version, ledger length."""
    product.refresh_from_db()
    movements = StockMovement.objects.filter(product=product).count()
    return product.stock_quantity, product.version, movements


def stale_etag(client, product: Product) -> str:
    """An ETag the product had before someone else changed it."""
    etag = client.get(f"/api/products/{product.pk}/")["ETag"]
    client.patch(f"/api/products/{product.pk}/", {"name": "Changed meanwhile"}, format="json")
    return etag


@pytest.mark.parametrize("padded", ['"01"', '"001"', '"0001"'])
def test_a_tag_with_leading_zeros_does_not_match(api_client, padded):
    product = make_product(stock_quantity=5)
    url = f"/api/products/{product.pk}/"
    assert api_client.get(url)["ETag"] == '"1"'

    response = api_client.patch(url, {"name": "x"}, format="json", HTTP_IF_MATCH=padded)

    assert response.status_code == 412
    assert Product.objects.get(pk=product.pk).name != "x"


def test_the_exact_tag_still_matches_in_a_list(api_client):
    product = make_product(stock_quantity=5)

    response = api_client.patch(
        f"/api/products/{product.pk}/",
        {"name": "x"},
        format="json",
        HTTP_IF_MATCH='"01",\t"9" , "1"',
    )

    assert response.status_code == 200


@pytest.mark.parametrize(("action", "body"), OPERATIONS)
def test_a_stock_operation_with_a_stale_if_match_is_412_and_changes_nothing(
    api_client, action, body
):
    product = make_product(stock_quantity=5)
    etag = stale_etag(api_client, product)
    before = state(product)

    response = api_client.post(
        f"/api/products/{product.pk}/{action}/", body, format="json", HTTP_IF_MATCH=etag
    )

    assert response.status_code == 412
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "precondition_failed"
    assert response.json()["current_version"] == before[1]
    assert state(product) == before


@pytest.mark.parametrize(("action", "body"), OPERATIONS)
def test_a_stock_operation_with_the_current_etag_applies_and_returns_the_next(
    api_client, action, body
):
    product = make_product(stock_quantity=5)
    etag = api_client.get(f"/api/products/{product.pk}/")["ETag"]

    response = api_client.post(
        f"/api/products/{product.pk}/{action}/", body, format="json", HTTP_IF_MATCH=etag
    )

    assert response.status_code == 200
    assert response["ETag"] == '"2"'
    assert state(product)[1:] == (2, 2)  # a new version, a new movement


@pytest.mark.parametrize(("if_match", "expected"), [("*", 200), ('W/"1"', 412), ('"01"', 412)])
def test_a_stock_operation_compares_strongly(api_client, if_match, expected):
    product = make_product(stock_quantity=5)

    response = api_client.post(
        f"/api/products/{product.pk}/increment/",
        {"quantity": 1},
        format="json",
        HTTP_IF_MATCH=if_match,
    )

    assert response.status_code == expected
    assert Product.objects.get(pk=product.pk).stock_quantity == (6 if expected == 200 else 5)


def test_a_stale_if_match_wins_over_a_stock_conflict(api_client):
    # Preconditions are evaluated before the method's own rules (RFC 9110 §13.2.2).
    product = make_product(stock_quantity=1)
    etag = stale_etag(api_client, product)

    response = api_client.post(
        f"/api/products/{product.pk}/decrement/",
        {"quantity": 5},
        format="json",
        HTTP_IF_MATCH=etag,
    )

    assert response.status_code == 412


def test_a_malformed_if_match_on_a_stock_operation_is_400_and_uses_up_no_key(api_client):
    product = make_product(stock_quantity=5)
    before = state(product)

    response = api_client.post(
        f"/api/products/{product.pk}/increment/",
        {"quantity": 1},
        format="json",
        HTTP_IF_MATCH="1",
        HTTP_IDEMPOTENCY_KEY="malformed-if-match",
    )

    assert response.status_code == 400
    assert "If-Match" in response.json()["errors"]
    assert state(product) == before
    assert not IdempotencyKey.objects.filter(key="malformed-if-match").exists()


def test_under_an_idempotency_key_a_412_is_stored_and_replayed_like_other_refusals(api_client):
    product = make_product(stock_quantity=5)
    etag = stale_etag(api_client, product)
    before = state(product)
    url = f"/api/products/{product.pk}/increment/"

    def send(if_match):
        return api_client.post(
            url, {"quantity": 1}, format="json", HTTP_IF_MATCH=if_match, HTTP_IDEMPOTENCY_KEY="k1"
        )

    first, retry = send(etag), send(etag)

    assert (first.status_code, retry.status_code) == (412, 412)
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert state(product) == before
    # The same key with another precondition is another request, not a replay of this one.
    current = api_client.get(f"/api/products/{product.pk}/")["ETag"]
    reused = send(current)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert state(product) == before


def test_the_service_checks_the_version_for_the_admin_and_commands_too(product):
    before = state(product)

    with pytest.raises(services.VersionMismatch):
        services.decrement_stock(
            product_id=product.pk, quantity=1, expected_versions={product.version + 1}
        )
    with pytest.raises(services.VersionMismatch):
        services.count_stock(product_id=product.pk, counted_quantity=0, expected_versions=set())

    assert state(product) == before
    services.increment_stock(product_id=product.pk, quantity=1, expected_versions={before[1]})
    assert state(product) == (before[0] + 1, before[1] + 1, before[2] + 1)


@pytest.mark.parametrize("action", ["increment", "decrement", "count"])
def test_the_schema_documents_if_match_and_412_on_the_stock_operations(api_client, action):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"][f"/api/products/{{id}}/{action}/"]["post"]

    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert "If-Match" in headers
    assert "412" in operation["responses"]


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_operations_with_the_same_etag_apply_exactly_once():
    # The version is checked under the row lock: of ten requests that read the same
    # ETag, exactly one applies; the others see the version it made and get 412.
    product = make_product(stock_quantity=100)
    clients = [token_client(make_user("staff")) for _ in range(10)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def worker(client):
        try:
            barrier.wait()
            response = client.post(
                f"/api/products/{product.pk}/decrement/",
                {"quantity": 1},
                format="json",
                HTTP_IF_MATCH='"1"',
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(statuses) == {200: 1, 412: 9}
    assert state(product) == (99, 2, 2)


@pytest.mark.parametrize("if_match", ['"1"\xa0', '\x0b"1"', '"1",\x0c"2"', '"1"\xa0,"2"', '"1"\n'])
def test_only_spaces_and_tabs_separate_tags_as_the_schema_says(api_client, if_match):
    # RFC 9110's OWS; the schema's pattern says `[ \t]`, and so does the server (once,
    # `\s` let through a form feed or a no-break space that the schema refused).
    product = make_product(stock_quantity=5)

    response = api_client.patch(
        f"/api/products/{product.pk}/", {"name": "x"}, format="json", HTTP_IF_MATCH=if_match
    )

    assert response.status_code == 400
    assert "If-Match" in response.json()["errors"]
