"""Reservations racing each other, fulfilments, releases, expiries and plain decrements on
one product, on PostgreSQL, each thread on its own connection: available never goes
negative, nothing is fulfilled twice, and the ledger still reconciles."""

import random
import threading
from collections import Counter

import pytest

from products.models import Product, StockMovement
from products.tests.test_concurrency import assert_ledger_reconciles
from reservations import services
from reservations.models import Reservation

from .conftest import (
    lapse,
    make_product,
    make_user,
    requires_postgres,
    reserve,
    run_together,
    token_client,
)

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


def test_50_concurrent_reservations_of_1_against_10_available_hold_exactly_10():
    product = make_product(stock_quantity=10)
    clients = [token_client(make_user("staff")) for _ in range(50)]
    statuses, bodies, lock = Counter(), [], threading.Lock()

    def worker(client):
        def work():
            response = client.post(
                f"/api/products/{product.pk}/reservations/", {"quantity": 1}, format="json"
            )
            with lock:
                statuses[response.status_code] += 1
                bodies.append(response.json())

        return work

    run_together([worker(client) for client in clients])

    assert statuses == {201: 10, 409: 40}
    refused = [body for body in bodies if body.get("code")]
    assert {(body["code"], body["available"]) for body in refused} == {
        ("insufficient_available", 0)
    }
    shown = clients[0].get(f"/api/products/{product.pk}/").json()
    assert (shown["stock_quantity"], shown["reserved_quantity"], shown["available_quantity"]) == (
        10,
        10,
        0,
    )
    assert Reservation.objects.filter(product=product, state="active").count() == 10
    assert_ledger_reconciles()


def test_concurrent_fulfil_and_release_of_one_reservation_exactly_one_wins():
    product = make_product(stock_quantity=100)
    clients = [token_client(make_user("staff")) for _ in range(8)]
    for _ in range(10):
        reservation = reserve(product, 3)
        outcomes, lock = [], threading.Lock()

        def worker(client, action, reservation=reservation, outcomes=outcomes, lock=lock):
            def work():
                response = client.post(f"/api/reservations/{reservation.pk}/{action}/")
                with lock:
                    outcomes.append((action, response.status_code))

            return work

        run_together([worker(c, "fulfil" if i % 2 else "release") for i, c in enumerate(clients)])

        assert sorted(status for _, status in outcomes) == [200] + [409] * 7
        winner = next(action for action, status in outcomes if status == 200)
        reservation.refresh_from_db()
        assert reservation.state == {"fulfil": "fulfilled", "release": "released"}[winner]
    fulfilled = Reservation.objects.filter(product=product, state="fulfilled").count()
    product.refresh_from_db()
    assert product.stock_quantity == 100 - 3 * fulfilled
    assert product.reserved_quantity == 0
    assert StockMovement.objects.filter(product=product, kind="decrement").count() == fulfilled
    assert_ledger_reconciles()


def test_reservations_fulfilments_releases_expiries_and_decrements_racing_stay_consistent():
    product = make_product(stock_quantity=60)
    lapsing = [reserve(product, 2) for _ in range(5)]  # their time comes mid-race
    for reservation in lapsing:
        lapse(reservation, seconds_ago=0)
    results, lock = Counter(), threading.Lock()
    negative_seen = []

    def client_worker(seed: int):
        client = token_client(make_user("staff"))
        rng = random.Random(seed)

        def work():
            mine = []
            for _ in range(15):
                roll = rng.random()
                if roll < 0.4 or not mine:
                    response = client.post(
                        f"/api/products/{product.pk}/reservations/",
                        {"quantity": rng.randint(1, 4), "expires_in": rng.choice([1, 600])},
                        format="json",
                    )
                    kind = "reserve"
                    if response.status_code == 201:
                        mine.append(response.json()["id"])
                elif roll < 0.6:
                    response = client.post(
                        f"/api/reservations/{mine.pop(0)}/fulfil/", {}, format="json"
                    )
                    kind = "fulfil"
                elif roll < 0.75:
                    response = client.post(f"/api/reservations/{mine.pop(0)}/release/")
                    kind = "release"
                else:
                    response = client.post(
                        f"/api/products/{product.pk}/decrement/", {"quantity": 1}, format="json"
                    )
                    kind = "decrement"
                body = response.json()
                product_view = client.get(f"/api/products/{product.pk}/").json()
                with lock:
                    results[(kind, response.status_code)] += 1
                    if product_view["available_quantity"] < 0 or (
                        product_view["reserved_quantity"] > product_view["stock_quantity"]
                    ):
                        negative_seen.append(product_view)
                    if response.status_code >= 500:
                        negative_seen.append(body)

        return work

    def tidier():
        for _ in range(10):
            services.expire_lapsed()

    run_together([client_worker(seed) for seed in range(12)] + [tidier])

    assert negative_seen == []
    assert {status for _, status in results} <= {200, 201, 409}
    assert results[("reserve", 201)] > 0
    product.refresh_from_db()
    services.expire_lapsed()
    assert_ledger_reconciles()
    fulfilled = Reservation.objects.filter(product=product, state="fulfilled")
    shipped = sum(fulfilled.values_list("fulfilled_quantity", flat=True))
    decrements = results[("decrement", 200)]
    product.refresh_from_db()
    assert product.stock_quantity == 60 - shipped - decrements
    assert StockMovement.objects.filter(product=product, kind="decrement").count() == (
        fulfilled.count() + decrements
    )
    # No reservation was fulfilled twice: one movement each.
    assert fulfilled.filter(movement__isnull=True).count() == 0
    assert len(set(fulfilled.values_list("movement", flat=True))) == fulfilled.count()
    assert Reservation.objects.filter(pk__in=[r.pk for r in lapsing], state="expired").count() == 5
    assert Product.objects.get(pk=product.pk).reserved_quantity == sum(
        Reservation.objects.filter(product=product, state="active").values_list(
            "quantity", flat=True
        )
    )
