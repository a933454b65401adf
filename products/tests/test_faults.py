"""Database faults: an unreachable database, connections killed mid-request, statement
timeouts. The API answers 503 with Retry-After (never a 500 or a hung request),
recovers on its own, and an idempotent retry moves stock exactly once.

Connections are killed for real with pg_terminate_backend, only ever among the
backends of this test database (`datname = current_database()`), never the killer's
own connection nor the test's controlling one.
"""

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.test import Client

from products import idempotency
from products.models import IdempotencyKey, Product, StockMovement

from .conftest import (
    assert_database_unavailable,
    make_product,
    make_user,
    requires_postgres,
    token_client,
)
from .test_concurrency import assert_ledger_reconciles
from .test_metrics import scrape, value

IN_PROGRESS = "idempotency_request_in_progress"
ROOT = Path(__file__).resolve().parents[2]


def decrement(client, product_id: int, key: str | None = None, quantity: int = 1):
    """POST a decrement the way a scanner does, the key doubling as the reference."""
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    body = {"quantity": quantity, **({"reference": key} if key else {})}
    return client.post(f"/api/products/{product_id}/decrement/", body, format="json", **headers)


def serve(client, method: str, *args, **kwargs):
    """One request as a WSGI server makes it: Django's request_started signal drops a
    connection that failed or outlived CONN_MAX_AGE first (the test client skips that)."""
    close_old_connections()
    return getattr(client, method)(*args, **kwargs)


def in_thread(work: Callable[[], None]) -> threading.Thread:
    """Run `work` in a thread with its own database connection, closed at the end."""

    def run():
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def own_backend_pid() -> int:
    return connection.connection.info.backend_pid


def other_backends(*, excluding: set[int] = frozenset(), state: str | None = None) -> list[int]:
    """Backends of this test database, other than this thread's (and `excluding`)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # fresh figures, even in a transaction
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND NOT pid = ANY(%s)"
            " AND (%s::text IS NULL OR state = %s OR wait_event_type = %s)",
            [list(excluding), state, state, state],
        )
        return [pid for (pid,) in cursor.fetchall()]


def terminate(pids: list[int]) -> int:
    """Kill these backends of this test database; how many were killed."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid = ANY(%s)",
            [pids],
        )
        return cursor.fetchone()[0]


def wait_for_backend(*, state: str, excluding: set[int] = frozenset()) -> int:
    """The one other backend in `state` (or waiting on a `state`, e.g. "Lock")."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = other_backends(excluding=excluding, state=state)
        if pids:
            assert len(pids) == 1, pids
            return pids[0]
        time.sleep(0.01)
    raise AssertionError(f"no backend reached {state!r}")


def stock_of(product: Product) -> int:
    return Product.objects.values_list("stock_quantity", flat=True).get(pk=product.pk)


def decrements_of(product: Product) -> Counter:
    """How many decrement movements the ledger holds per reference."""
    return Counter(
        StockMovement.objects.filter(product=product, kind="decrement").values_list(
            "reference", flat=True
        )
    )


@pytest.fixture
def persistent_connections() -> Iterator[None]:
    """CONN_MAX_AGE=60, as in production, for every connection opened by the test."""
    saved = connection.settings_dict["CONN_MAX_AGE"]
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = 60
    yield
    connection.settings_dict["CONN_MAX_AGE"] = saved
    connection.close()


@contextmanager
def new_connections_with(server_options: str) -> Iterator[None]:
    """Connections opened meanwhile (other threads') get these server options; the
    test's own, opened first, keeps the defaults."""
    connection.ensure_connection()
    options = connection.settings_dict["OPTIONS"]
    connection.settings_dict["OPTIONS"] = {
        **options,
        "options": f"{options.get('options', '')} {server_options}".strip(),
    }
    try:
        yield
    finally:
        connection.settings_dict["OPTIONS"] = options


# The timeouts.


def database_options(**env) -> dict:
    """DATABASES["default"]["OPTIONS"] as settings.py builds them from this environment."""
    environment = {**os.environ, "SECRET_KEY": "x" * 50, "DEBUG": "false", **env}
    environment["DJANGO_SETTINGS_MODULE"] = "inventory_project.settings"
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_postgresql_connections_get_the_timeouts_from_the_environment():
    options = database_options(
        DATABASE_URL="postgres://u@127.0.0.1:5432/db",
        DB_CONNECT_TIMEOUT="3",
        DB_STATEMENT_TIMEOUT="2.5",
        DB_IDLE_IN_TRANSACTION_TIMEOUT="0",
    )

    assert options["connect_timeout"] == 3
    assert options["options"] == (
        "-c statement_timeout=2500 -c idle_in_transaction_session_timeout=0"
    )


def test_server_options_in_the_database_url_win_over_the_defaults():
    options = database_options(
        DATABASE_URL="postgres://u@127.0.0.1:5432/db?options=-c%20statement_timeout%3D5s"
    )

    assert options["options"].endswith("-c statement_timeout=5s")  # later -c wins


def test_sqlite_gets_no_postgresql_options():
    options = database_options(DATABASE_URL="sqlite:///:memory:")

    assert "options" not in options
    assert "connect_timeout" not in options


@requires_postgres
@pytest.mark.django_db
def test_the_connection_really_runs_with_the_configured_statement_timeout():
    configured = re.search(
        r"statement_timeout=(\d+)", connection.settings_dict["OPTIONS"]["options"]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, setting FROM pg_settings"
            " WHERE name IN ('statement_timeout', 'idle_in_transaction_session_timeout')"
        )
        live = dict(cursor.fetchall())

    assert live["statement_timeout"] == configured.group(1)
    assert live["idle_in_transaction_session_timeout"] != "0"


# The database is unreachable. No test database is needed: nothing can connect.


def test_an_api_request_while_the_database_is_down_is_a_503(database_unreachable):
    client = token_client()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)  # looked up in the database

    body = assert_database_unavailable(client.get("/api/products/"))

    assert body["instance"] == "/api/products/"


def test_an_outage_is_counted_in_the_metrics_which_are_still_served(database_unreachable):
    client = token_client()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    count = "inventory_http_request_duration_seconds_count"
    labels = {"route": "/api/products/", "method": "GET", "status": "503"}
    before = scrape()  # the queue depth cannot be read: left out, the rest served

    assert_database_unavailable(client.get("/api/products/"))

    after = scrape()
    errors = "inventory_database_errors_total"
    assert value(after, errors, kind="unavailable") - value(before, errors, kind="unavailable") == 1
    assert value(after, count, **labels) - value(before, count, **labels) == 1
    assert ("inventory_webhook_deliveries_pending", ()) not in after


def test_a_stock_operation_while_the_database_is_down_is_a_503(database_unreachable):
    client = token_client()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    assert_database_unavailable(decrement(client, 1, key="while-down"))


@pytest.mark.parametrize("path", ["/admin/", "/admin/products/product/", "/admin/no-such-page/"])
def test_the_admin_while_the_database_is_down_is_a_503_not_a_500(database_unreachable, path):
    # The session and the user are loaded outside DRF, by Django; the server's 500
    # handler (what a real server gets: the test client would re-raise) answers.
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "a" * 32

    assert_database_unavailable(client.get(path))


def test_the_browsable_api_and_the_token_endpoint_while_the_database_is_down_are_503s(
    database_unreachable,
):
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "a" * 32

    assert_database_unavailable(client.get("/api/products/", HTTP_ACCEPT="text/html"))
    assert_database_unavailable(
        client.post(
            "/api/auth/token/",
            {"username": "alice", "password": "secret"},
            content_type="application/json",
        )
    )
    assert_database_unavailable(client.post("/admin/login/", {"username": "a", "password": "b"}))


def test_an_unknown_url_while_the_database_is_down_is_still_a_404(client, database_unreachable):
    assert client.get("/api/no-such-thing/").status_code == 404
    assert client.get("/no-such-thing/").status_code == 404


# Connections killed, statements timed out: PostgreSQL only.


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_killed_while_waiting_for_a_lock_is_a_503_and_the_retry_moves_stock_once():
    product = make_product(stock_quantity=10)
    client = token_client(make_user("staff"))
    responses = []

    with transaction.atomic():
        Product.objects.select_for_update().get(pk=product.pk)  # the request waits for it
        thread = in_thread(lambda: responses.append(decrement(client, product.pk, "k-lock")))
        assert terminate([wait_for_backend(state="Lock")]) == 1
        thread.join(timeout=30)
    assert not thread.is_alive()

    assert_database_unavailable(responses[0])
    assert stock_of(product) == 10
    assert IdempotencyKey.objects.get(key="k-lock").status_code is None  # claimed, not done

    retry = decrement(client, product.pk, "k-lock")
    assert retry.status_code == 200, retry.content
    assert retry.json()["stock_quantity"] == 9
    assert stock_of(product) == 9
    assert decrements_of(product) == {"k-lock": 1}
    assert_ledger_reconciles()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_killed_after_the_stock_change_before_the_response_is_stored_undoes_it(
    monkeypatch,
):
    product = make_product(stock_quantity=10)
    client = token_client(make_user("staff"))
    paused, resume = threading.Event(), threading.Event()
    store_response = idempotency._UPDATE_KEY.save  # writes the key's answer

    def save_after_a_pause(record, *args, **kwargs):
        if record.status_code is not None:  # the stock has changed; the response is next
            paused.set()
            resume.wait(timeout=30)
        return store_response(record, *args, **kwargs)

    monkeypatch.setattr(idempotency._UPDATE_KEY, "save", save_after_a_pause)
    responses = []
    thread = in_thread(lambda: responses.append(decrement(client, product.pk, "k-store")))
    assert paused.wait(timeout=30)
    assert terminate([wait_for_backend(state="idle in transaction")]) == 1
    resume.set()
    thread.join(timeout=30)
    monkeypatch.undo()

    assert_database_unavailable(responses[0])
    assert stock_of(product) == 10  # the stock change was rolled back with the key's answer
    assert decrements_of(product) == {}
    retry = decrement(client, product.pk, "k-store")
    assert retry.status_code == 200, retry.content
    assert "Idempotent-Replayed" not in retry
    assert stock_of(product) == 9
    assert decrements_of(product) == {"k-store": 1}
    replay = decrement(client, product.pk, "k-store")
    assert replay.status_code == 200
    assert replay["Idempotent-Replayed"] == "true"
    assert stock_of(product) == 9
    assert_ledger_reconciles()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_statement_past_the_statement_timeout_is_a_503():
    product = make_product(stock_quantity=10)
    client = token_client(make_user("staff"))
    responses = []

    with new_connections_with("-c statement_timeout=200"), transaction.atomic():
        Product.objects.select_for_update().get(pk=product.pk)  # held past the timeout
        thread = in_thread(lambda: responses.append(decrement(client, product.pk, "k-slow")))
        thread.join(timeout=30)
    assert not thread.is_alive()

    assert_database_unavailable(responses[0])
    assert stock_of(product) == 10
    assert decrements_of(product) == {}


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_request_stuck_inside_its_transaction_does_not_hold_its_key_forever(monkeypatch):
    """A worker that hangs (or vanishes behind a dead network) mid-request holds its
    key's row lock: retries are 409 in progress until the database ends the idle
    transaction (DB_IDLE_IN_TRANSACTION_TIMEOUT); then a retry does the work, once."""
    product = make_product(stock_quantity=10)
    client = token_client(make_user("staff"))
    paused, resume = threading.Event(), threading.Event()
    store_response = idempotency._UPDATE_KEY.save  # writes the key's answer

    def hang_before_storing(record, *args, **kwargs):
        if record.status_code is not None and threading.current_thread() is not main:
            paused.set()
            resume.wait(timeout=30)
        return store_response(record, *args, **kwargs)

    main = threading.current_thread()
    monkeypatch.setattr(idempotency._UPDATE_KEY, "save", hang_before_storing)
    responses = []
    with new_connections_with("-c idle_in_transaction_session_timeout=500"):
        stuck = in_thread(lambda: responses.append(decrement(client, product.pk, "k-stuck")))
        assert paused.wait(timeout=30)

    in_progress = decrement(client, product.pk, "k-stuck")
    assert in_progress.status_code == 409
    assert in_progress.json()["code"] == IN_PROGRESS
    deadline = time.monotonic() + 30
    while in_progress.status_code == 409 and time.monotonic() < deadline:
        time.sleep(0.1)
        in_progress = decrement(client, product.pk, "k-stuck")
    assert in_progress.status_code == 200, in_progress.content
    resume.set()
    stuck.join(timeout=30)

    assert_database_unavailable(responses[0])  # its session was ended under it
    assert stock_of(product) == 9
    assert decrements_of(product) == {"k-stuck": 1}
    assert_ledger_reconciles()


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_persistent_connection_killed_between_requests_is_replaced_without_an_error(
    persistent_connections,
):
    product = make_product(stock_quantity=10)
    client = token_client(make_user("staff"))
    assert serve(client, "get", f"/api/products/{product.pk}/").status_code == 200
    killed = own_backend_pid()

    killer = in_thread(lambda: terminate([killed]))
    killer.join(timeout=30)

    response = serve(client, "get", f"/api/products/{product.pk}/")
    assert response.status_code == 200, response.content
    assert own_backend_pid() != killed


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_killed_mid_request_answers_503_then_the_next_request_recovers(
    persistent_connections,
):
    product = make_product(stock_quantity=10)
    client = token_client(make_user("staff"))
    assert serve(client, "get", f"/api/products/{product.pk}/").status_code == 200
    killed = own_backend_pid()
    killer = in_thread(lambda: terminate([killed]))
    killer.join(timeout=30)

    # Without a request boundary the dead connection is found mid-request.
    assert_database_unavailable(client.get(f"/api/products/{product.pk}/"))
    assert serve(client, "get", f"/api/products/{product.pk}/").status_code == 200


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_bare_database_error_on_a_broken_connection_is_a_503(monkeypatch):
    # psycopg2 raises a plain DatabaseError for some ways a connection breaks.
    product = make_product(stock_quantity=10)
    client = token_client(make_user("staff"))

    def connection_breaks(**kwargs):
        connection.connection.close()
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr("products.services.decrement_stock", connection_breaks)

    assert_database_unavailable(decrement(client, product.pk))
    monkeypatch.undo()
    assert serve(client, "get", f"/api/products/{product.pk}/").status_code == 200


# Many clients, connections killed under them, retries with the same key.

CLIENTS = 6
KILL_ROUNDS = 5
START = 100_000


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_decrements_retried_with_their_keys_while_connections_are_killed_move_stock_once_each(
    persistent_connections,
):
    """Each client decrements 1 with a fresh key, retrying a 503 (or an in-progress
    409) with the same key until it gets a definite answer, while the test kills every
    backend of the database several times, each time with requests in flight."""
    product = make_product(stock_quantity=START)
    clients = [token_client(make_user("staff")) for _ in range(CLIENTS)]
    controller = own_backend_pid()
    kills_done = threading.Event()
    lock = threading.Lock()
    statuses: Counter = Counter()  # every response the clients saw
    answered: dict[str, int] = {}  # key -> its definite status
    barrier = threading.Barrier(CLIENTS + 1)

    def scanner(number: int, client) -> None:
        barrier.wait()
        sent = 0
        while sent < 20 or not kills_done.is_set():
            key = f"scanner-{number}-{sent}"
            for _ in range(500):
                close_old_connections()  # a request boundary, as in a real server
                response = decrement(client, product.pk, key)
                with lock:
                    statuses[response.status_code] += 1
                retry = response.status_code == 503 or (
                    response.status_code == 409 and response.json()["code"] == IN_PROGRESS
                )
                if not retry:
                    break
                time.sleep(random.uniform(0, 0.02))
            with lock:
                answered[key] = response.status_code
            sent += 1

    kills: list[int] = []

    def killer() -> None:
        barrier.wait()
        deadline = time.monotonic() + 60
        try:
            for _ in range(KILL_ROUNDS):
                time.sleep(random.uniform(0.05, 0.2))
                busy = []
                while not busy and time.monotonic() < deadline:  # strike mid-request
                    busy = other_backends(excluding={controller}, state="active")
                    busy += other_backends(excluding={controller}, state="idle in transaction")
                kills.append(terminate(other_backends(excluding={controller})))
        finally:
            kills_done.set()

    threads = [in_thread(lambda n=n, c=c: scanner(n, c)) for n, c in enumerate(clients)]
    threads.append(in_thread(killer))
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"

    assert len(kills) == KILL_ROUNDS, kills
    assert all(kills), kills
    assert statuses[503] > 0, statuses  # the kills were felt
    assert set(statuses) <= {200, 409, 503}, statuses
    assert set(answered.values()) == {200}, Counter(answered.values())
    succeeded = set(answered)
    assert stock_of(product) == START - len(succeeded)
    assert decrements_of(product) == dict.fromkeys(succeeded, 1)
    assert IdempotencyKey.objects.filter(key__in=succeeded, status_code=200).count() == len(
        succeeded
    )
    assert_ledger_reconciles()
