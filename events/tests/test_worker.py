"""The real thing: `manage.py run_worker` in a subprocess, a local receiver verifying
every signature, PostgreSQL. Stock changes made through the API reach the receiver in
sequence order, at least once, through failures, a killed worker and killed database
connections."""

import itertools
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest
from django.db import connection

from events.models import Delivery, Event, WebhookEndpoint
from products import services as products

from .conftest import closed_port, make_product, make_user, requires_postgres, token_client
from .webhook_support import (
    ROOT,
    Receiver,
    database_url_of_tests,
    empty_job_queue,
    running_worker,
    subscribe,
    wait_until,
    worker_env,
)

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    empty_job_queue()
    receiver = Receiver()
    yield receiver
    receiver.close()


def expected_ids(product_id: int) -> list[str]:
    return [
        f"msg_{uid.hex}"
        for uid in Event.objects.filter(product_id=product_id)
        .order_by("sequence")
        .values_list("uid", flat=True)
    ]


def arrived_in_order(receiver: Receiver) -> dict[int, list[int]]:
    """Each product's delivered sequences, in arrival order (duplicates kept)."""
    sequences = defaultdict(list)
    for request in receiver.delivered():
        sequences[request.event["product_id"]].append(request.event["sequence"])
    return sequences


def test_twenty_threads_decrementing_arrive_once_each_in_sequence_order(receiver, tmp_path):
    endpoint = subscribe(receiver)
    product = make_product(stock_quantity=30, low_stock_threshold=10)
    clients = [token_client(make_user("staff")) for _ in range(20)]
    barrier = threading.Barrier(20)
    statuses = []

    def work(client):
        try:
            barrier.wait()
            for _ in range(2):
                response = client.post(
                    f"/api/products/{product.pk}/decrement/", {"quantity": 1}, format="json"
                )
                statuses.append(response.status_code)
        finally:
            connection.close()

    with running_worker(tmp_path):
        threads = [threading.Thread(target=work, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wanted = expected_ids(product.pk)
        wait_until(lambda: len(receiver.delivered()) >= len(wanted), timeout=60)

    requests = receiver.delivered()
    assert statuses.count(200) == 30
    assert statuses.count(409) == 10  # refused: no event
    assert all(r.verified for r in receiver.all())
    assert [r.id for r in requests] == wanted  # each once, in sequence order
    types = [r.event["type"] for r in requests]
    assert types.count("stock.low") == 1
    assert types.count("stock.changed") == 31  # the initial stock and 30 decrements
    assert [r.event["data"]["movement"]["quantity_after"] for r in requests[2:] if
            r.event["type"] == "stock.changed"] == list(range(29, -1, -1))  # fmt: skip
    assert set(Delivery.objects.filter(endpoint=endpoint).values_list("status", flat=True)) == {
        "succeeded"
    }


def test_failures_are_retried_with_the_same_webhook_id_and_410_disables(receiver, tmp_path):
    subscribe(receiver)
    product = make_product(stock_quantity=5)  # product.created, stock.changed
    receiver.then(500).then(204, hang=2).then(429, headers={"Retry-After": "1"})

    with running_worker(tmp_path):
        wait_until(lambda: len(receiver.delivered()) >= 2, timeout=60)
        first = receiver.all()[:4]
        products.decrement_stock(product_id=product.pk, quantity=1)
        receiver.then(410)
        endpoint = wait_until(lambda: WebhookEndpoint.objects.filter(is_active=False).first())

    # product.created: 500, then hang (timed out), then 429, then delivered: one id.
    assert [r.answered for r in first] == [500, 204, 429, 204]
    assert len({r.id for r in first}) == 1
    assert all(r.verified for r in receiver.all())
    created = Delivery.objects.get(event__product_id=product.pk, event__sequence=1)
    attempts = list(created.attempts_made.values_list("status_code", "error"))
    assert [code for code, _ in attempts] == [500, None, 429, 204]
    assert "No answer within" in attempts[1][1]
    times = list(created.attempts_made.values_list("at", flat=True))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[2].total_seconds() >= 0.9  # Retry-After: 1
    assert "410" in endpoint.disabled_reason
    assert receiver.all()[-1].answered == 410


def jobs_left() -> list:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, task_name, status, lock, worker_id, attempts FROM procrastinate_jobs"
        )
        return cursor.fetchall()


def test_a_worker_killed_mid_delivery_loses_nothing(receiver, tmp_path):
    """kill -9 while the receiver holds a request: the job is taken over by the next
    worker and sent again with the same id; every event arrives."""
    subscribe(receiver)
    product = make_product(stock_quantity=50)
    receiver.then(204, hang=0.8)  # the answer the killed worker never reads

    with running_worker(tmp_path) as worker:
        wait_until(lambda: receiver.all())  # the first request is being answered
        worker.kill()
        for _ in range(5):
            products.decrement_stock(product_id=product.pk, quantity=1)
        refused = token_client(make_user("staff")).post(
            f"/api/products/{product.pk}/decrement/", {"quantity": 999}, format="json"
        )
        worker.start()
        wanted = expected_ids(product.pk)
        wait_until(
            lambda: {r.id for r in receiver.delivered()} >= set(wanted),
            timeout=60,
            explain=lambda: f"{jobs_left()}\n{worker.output()}",
        )

    assert refused.status_code == 409
    assert len(wanted) == 7  # created, initial stock, 5 decrements: not the refused one
    delivered = receiver.delivered()
    assert sorted({r.id for r in delivered}) == sorted(wanted)
    first = [r for r in receiver.all() if r.id == wanted[0]]
    assert len(first) >= 2  # sent again: the killed worker never recorded it
    assert all(r.verified for r in receiver.all())
    unique_in_arrival_order = list(dict.fromkeys(r.event["sequence"] for r in delivered))
    assert unique_in_arrival_order == sorted(unique_in_arrival_order)


def test_database_connections_killed_while_events_flow_lose_nothing(receiver, tmp_path):
    """The worker's connections (listener, pool, Django's) are terminated three times
    while stock changes: it reconnects (or restarts itself) and delivers everything."""
    subscribe(receiver)
    product = make_product(stock_quantity=100)

    def kill_worker_connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    killed = 0
    with running_worker(tmp_path) as worker:
        for _ in range(3):
            for _ in range(5):
                products.decrement_stock(product_id=product.pk, quantity=1)
            time.sleep(0.5)
            killed += kill_worker_connections()
        wanted = expected_ids(product.pk)
        wait_until(lambda: {r.id for r in receiver.delivered()} >= set(wanted), timeout=90)
        output = worker.output()

    assert killed >= 3, output
    assert len(wanted) == 17
    assert sorted({r.id for r in receiver.delivered()}) == sorted(wanted)
    assert all(r.verified for r in receiver.all())


def test_behind_pgbouncer_the_worker_connects_only_by_the_direct_url(receiver, tmp_path):
    """Under DATABASE_POOLING=transaction the worker (LISTEN/NOTIFY) bypasses PgBouncer:
    with DATABASE_URL pointing nowhere, it still delivers, by DIRECT_DATABASE_URL."""
    subscribe(receiver)
    make_product(stock_quantity=5)  # product.created, stock.changed
    nowhere = f"postgres://postgres@127.0.0.1:{closed_port()}/nowhere"

    with running_worker(
        tmp_path,
        DATABASE_URL=nowhere,
        DATABASE_POOLING="transaction",
        DIRECT_DATABASE_URL=database_url_of_tests(),
    ):
        wait_until(lambda: len(receiver.delivered()) >= 2, timeout=60)

    assert all(request.verified for request in receiver.all())


def test_behind_pgbouncer_the_worker_refuses_to_start_without_a_direct_url():
    env = worker_env(DATABASE_POOLING="transaction")
    env.pop("DIRECT_DATABASE_URL", None)

    result = subprocess.run(
        [sys.executable, "manage.py", "run_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "the worker needs DIRECT_DATABASE_URL" in result.stderr
