"""Many clients at once on one product: no lost update, never negative stock.

Each thread has its own APIClient and so its own database connection; a barrier
releases them together so their requests really overlap.
"""

import threading
from collections import Counter

import pytest
from django.db import connection

from products.models import Product

from .conftest import make_product, make_user, requires_postgres, token_client

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


def hammer(requests_per_thread: list[list[tuple[str, int]]], product_id: int) -> list[tuple]:
    """Run each thread's (operation, quantity) list at once; return every (op, status, body).

    Every thread authenticates with its own warehouse-staff user's token.
    """
    clients = [token_client(make_user("staff")) for _ in requests_per_thread]
    barrier = threading.Barrier(len(requests_per_thread))
    results: list[tuple] = []
    lock = threading.Lock()

    def worker(client, requests: list[tuple[str, int]]) -> None:
        try:
            barrier.wait()
            for operation, quantity in requests:
                response = client.post(
                    f"/api/products/{product_id}/{operation}/",
                    {"quantity": quantity},
                    format="json",
                )
                with lock:
                    results.append((operation, response.status_code, response.json()))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(client, requests))
        for client, requests in zip(clients, requests_per_thread, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_decrements_past_stock_sell_exactly_the_stock():
    product = make_product(stock_quantity=50)

    results = hammer([[("decrement", 1)] * 5 for _ in range(THREADS)], product.pk)

    statuses = Counter(status for _, status, _ in results)
    assert statuses == {200: 50, 409: 50}
    # Every success saw a different stock level: no two decrements read the same row state.
    remaining = sorted(body["stock_quantity"] for _, status, body in results if status == 200)
    assert remaining == list(range(50))
    assert all(
        body["code"] == "insufficient_stock" and body["available"] == 0
        for _, status, body in results
        if status == 409
    )
    product.refresh_from_db()
    assert product.stock_quantity == 0


def test_concurrent_mix_of_increments_and_decrements_loses_no_update():
    product = make_product(stock_quantity=0)
    increments = [[("increment", 5)] * 10 for _ in range(THREADS // 2)]
    decrements = [[("decrement", 3)] * 10 for _ in range(THREADS // 2)]

    results = hammer(increments + decrements, product.pk)

    counts = Counter((operation, status) for operation, status, _ in results)
    assert counts[("increment", 200)] == 10 * THREADS // 2
    assert counts[("decrement", 200)] + counts[("decrement", 409)] == 10 * THREADS // 2
    assert set(counts) <= {("increment", 200), ("decrement", 200), ("decrement", 409)}
    expected = 5 * counts[("increment", 200)] - 3 * counts[("decrement", 200)]
    product.refresh_from_db()
    assert product.stock_quantity == expected
    assert all(body["stock_quantity"] >= 0 for _, status, body in results if status == 200)


def test_concurrent_creates_of_one_sku_in_different_cases_make_one_product():
    clients = [token_client(make_user("admin")) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    statuses = Counter()
    lock = threading.Lock()

    def worker(index: int) -> None:
        client = clients[index]
        sku = "race-sku" if index % 2 else "RACE-SKU"
        try:
            barrier.wait()
            response = client.post("/api/products/", {"sku": sku, "name": "Race"}, format="json")
            with lock:
                statuses[response.status_code] += 1
                if response.status_code == 409:
                    assert response.json()["code"] == "duplicate_sku"
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == {201: 1, 409: THREADS - 1}
    assert Product.objects.filter(sku__iexact="race-sku").count() == 1
