"""Many clients at once on one product: no lost update, never negative stock.

Each thread has its own APIClient and so its own database connection; a barrier
releases them together so their requests really overlap.
"""

import io
import threading
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from products.models import IdempotencyKey, Product, StockMovement

from .conftest import make_product, make_user, requires_postgres, run_together, token_client

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


def assert_ledger_reconciles() -> None:
    out = io.StringIO()
    call_command("verify_ledger", stdout=out)  # raises CommandError on any discrepancy
    assert "the ledger reconciles" in out.getvalue()


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
    assert StockMovement.objects.filter(product=product, kind="decrement").count() == 50
    assert_ledger_reconciles()


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
    movements = Counter(
        StockMovement.objects.filter(product=product).values_list("kind", flat=True)
    )
    assert movements == {
        "increment": counts[("increment", 200)],
        "decrement": counts[("decrement", 200)],
    }
    assert_ledger_reconciles()


def test_concurrent_creates_of_one_sku_in_different_spellings_make_one_product():
    clients = [token_client(make_user("admin")) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    statuses = Counter()
    lock = threading.Lock()

    def worker(index: int) -> None:
        client = clients[index]
        sku = ["race-sku", "RACE-SKU", "ＲＡＣＥ-ＳＫＵ", " Race-Sku"][index % 4]
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
    assert Product.objects.count() == 1
    assert Product.objects.get().sku_key == "race-sku"


def test_bulk_adjustments_over_the_same_products_in_opposite_orders_never_deadlock():
    products = [make_product(stock_quantity=1000) for _ in range(5)]
    forward = [{"product": p.pk, "delta": -1} for p in products]
    backward = list(reversed(forward))
    statuses = Counter()
    lock = threading.Lock()

    def worker(client, lines):
        def work():
            for _ in range(10):
                response = client.post("/api/stock-adjustments/", {"lines": lines}, format="json")
                with lock:
                    statuses[response.status_code] += 1

        return work

    clients = [token_client(make_user("staff")) for _ in range(THREADS)]
    run_together([worker(c, forward if i % 2 else backward) for i, c in enumerate(clients)])

    assert statuses == {200: THREADS * 10}  # not one deadlock error (that would be a 5xx)
    for product in products:
        assert Product.objects.get(pk=product.pk).stock_quantity == 1000 - THREADS * 10
    assert_ledger_reconciles()


def test_concurrent_retries_with_one_idempotency_key_move_stock_exactly_once():
    product = make_product(stock_quantity=100)
    client_user = make_user("staff")
    clients = [token_client(client_user) for _ in range(THREADS)]
    statuses = Counter()
    bodies = []
    lock = threading.Lock()

    def worker(client):
        def work():
            for _ in range(3):
                response = client.post(
                    f"/api/products/{product.pk}/decrement/",
                    {"quantity": 7},
                    format="json",
                    HTTP_IDEMPOTENCY_KEY="scanner-42-op-1",
                )
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        bodies.append(response.json()["stock_quantity"])

        return work

    run_together([worker(c) for c in clients])

    assert set(statuses) <= {200, 409}  # 409: the first was still in progress
    assert statuses[200] >= 1
    assert set(bodies) == {93}  # every 200 is the one change, or its replay
    assert Product.objects.get(pk=product.pk).stock_quantity == 93
    assert StockMovement.objects.filter(product=product, kind="decrement").count() == 1
    assert_ledger_reconciles()


def test_a_retry_while_the_first_request_still_runs_is_409():
    product = make_product(stock_quantity=10)
    user = make_user("staff")
    client = token_client(user)
    url = f"/api/products/{product.pk}/decrement/"
    client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="slow")
    IdempotencyKey.objects.filter(key="slow").update(status_code=None, response_body=None)
    locked, release = threading.Event(), threading.Event()

    def first_request_still_running():
        try:
            with transaction.atomic():
                IdempotencyKey.objects.select_for_update().get(key="slow")
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=first_request_still_running)
    holder.start()
    try:
        assert locked.wait(10)
        response = client.post(url, {"quantity": 1}, format="json", HTTP_IDEMPOTENCY_KEY="slow")
    finally:
        release.set()
        holder.join()

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_request_in_progress"
    assert Product.objects.get(pk=product.pk).stock_quantity == 9
