"""Idempotency-Key: a retry never moves stock twice."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from products.models import IdempotencyKey, Product, StockMovement

from .conftest import make_product, make_user, token_client

pytestmark = pytest.mark.django_db


def decrement(client, product, quantity=1, key="key-1", **body):
    return client.post(
        f"/api/products/{product.pk}/decrement/",
        {"quantity": quantity, **body},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def stock_of(product) -> int:
    return Product.objects.get(pk=product.pk).stock_quantity


def test_a_retry_with_the_same_key_and_body_replays_and_changes_nothing(api_client):
    product = make_product(stock_quantity=10)

    first = decrement(api_client, product, 3)
    retry = decrement(api_client, product, 3)

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert stock_of(product) == 7
    assert StockMovement.objects.filter(kind="decrement").count() == 1


def test_a_refusal_is_replayed_too(api_client):
    product = make_product(stock_quantity=1)

    first = decrement(api_client, product, 5)
    Product.objects.filter(pk=product.pk).update(stock_quantity=100)  # stock arrives meanwhile
    retry = decrement(api_client, product, 5)

    assert first.status_code == retry.status_code == 409
    assert retry.json() == first.json()
    assert retry["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("invalid", [{"quantity": -1}, {"quantity": "two"}, {"colour": "red"}])
def test_a_body_that_fails_validation_is_not_stored_so_the_corrected_retry_runs(
    api_client, invalid
):
    product = make_product(stock_quantity=10)

    refused = api_client.post(
        f"/api/products/{product.pk}/decrement/",
        invalid,
        format="json",
        HTTP_IDEMPOTENCY_KEY="key-1",
    )
    corrected = decrement(api_client, product, 2)
    retry = decrement(api_client, product, 2)

    assert refused.status_code == 400
    assert (corrected.status_code, retry.status_code) == (200, 200)
    assert retry["Idempotent-Replayed"] == "true"
    assert stock_of(product) == 8


def test_the_same_key_with_another_body_is_422(api_client):
    product = make_product(stock_quantity=10)
    decrement(api_client, product, 3)

    response = decrement(api_client, product, 4)

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert stock_of(product) == 7


def test_the_same_key_on_another_endpoint_is_422(api_client):
    product = make_product(stock_quantity=10)
    decrement(api_client, product, 3)

    response = api_client.post(
        f"/api/products/{product.pk}/increment/",
        {"quantity": 3},
        format="json",
        HTTP_IDEMPOTENCY_KEY="key-1",
    )

    assert response.status_code == 422


def test_keys_are_scoped_per_user():
    product = make_product(stock_quantity=10)
    alice, bob = token_client(make_user("staff")), token_client(make_user("staff"))

    decrement(alice, product, 1, key="shared")
    response = decrement(bob, product, 1, key="shared")

    assert "Idempotent-Replayed" not in response
    assert stock_of(product) == 8


def test_an_expired_key_starts_afresh(api_client, settings):
    product = make_product(stock_quantity=10)
    decrement(api_client, product, 1)
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))

    response = decrement(api_client, product, 1)

    assert "Idempotent-Replayed" not in response
    assert stock_of(product) == 8


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ünïcode"])
def test_a_malformed_key_is_400(api_client, key):
    product = make_product(stock_quantity=10)

    response = decrement(api_client, product, 1, key=key)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert stock_of(product) == 10


def test_keys_work_on_create_count_and_bulk(api_client):
    product = make_product(stock_quantity=10)
    calls = [
        ("/api/products/", {"sku": "IDEM-1", "name": "x", "stock_quantity": 1}),
        (f"/api/products/{product.pk}/count/", {"counted_quantity": 4}),
        ("/api/stock-adjustments/", {"lines": [{"product": product.pk, "delta": 2}]}),
    ]
    for index, (url, body) in enumerate(calls):
        for _ in range(2):
            response = api_client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=f"k{index}")
            assert response.status_code in (200, 201), response.json()
        assert response["Idempotent-Replayed"] == "true"

    assert Product.objects.filter(sku="IDEM-1").count() == 1
    assert stock_of(product) == 6
    assert StockMovement.objects.filter(product=product).count() == 3  # initial, count, bulk


def test_purge_idempotency_keys_removes_only_expired_ones(api_client):
    product = make_product(stock_quantity=10)
    decrement(api_client, product, 1, key="old")
    decrement(api_client, product, 1, key="new")
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=2))

    out = io.StringIO()
    call_command("purge_idempotency_keys", stdout=out)

    assert "Deleted 1 expired" in out.getvalue()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
