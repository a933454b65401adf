import os
import socket
import threading
import time
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.throttling import SlidingWindowRateThrottle
from products import roles, services
from products.models import Product

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

requires_postgres = pytest.mark.skipif(
    not ON_POSTGRES,
    reason="needs PostgreSQL (set DATABASE_URL)",
)


_sequence = iter(range(1, 10**9))


class ThrottleClock:
    """Real time, shifted so that a test starts 10 s into a day (and so into an hour
    and a minute): a test's requests stay in one throttle window (across a window's
    end, the earlier ones would count for a little less)."""

    def __init__(self):
        real = time.time()
        self.shift = (real // 86400 + 1) * 86400 + 10 - real

    def __call__(self) -> float:
        return time.time() + self.shift


@pytest.fixture(autouse=True)
def _fresh_throttle_counts(monkeypatch):
    """Throttle counters live in the cache; each test starts from zero, in a window."""
    monkeypatch.setattr(SlidingWindowRateThrottle, "timer", ThrottleClock())
    cache.clear()
    yield
    cache.clear()


def role_group(role: str) -> Group:
    """The role's group, as the data migration made it.

    A transactional test's flush empties every table, groups included: put them back.
    """
    name = roles.ROLE_GROUPS[role]
    if not Group.objects.filter(name=name).exists():
        roles.sync_roles(django_apps)
    return Group.objects.get(name=name)


def make_user(role: str | None = None, *, superuser: bool = False, **fields):
    """A saved user in the given role (a key of roles.ROLE_GROUPS), or in no group."""
    n = next(_sequence)
    fields.setdefault("username", f"user{n}")
    User = get_user_model()
    if superuser:
        return User.objects.create_superuser(**fields)
    user = User.objects.create_user(**fields)  # no password: hashing one is slow
    if role is not None:
        user.groups.add(role_group(role))
    return user


def token_client(user=None) -> APIClient:
    """An APIClient that authenticates with the user's real API token (or anonymous)."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_client(db) -> APIClient:
    """Authenticated as an Inventory admin, who may do everything with products."""
    return token_client(make_user("admin"))


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


def make_product(**fields) -> Product:
    """A product made by the service, as the API would (its initial stock on the
    ledger), with sensible defaults; any field can be overridden."""
    n = next(_sequence)
    values = {
        "sku": f"SKU-{n:05d}",
        "name": f"Product {n}",
        "price": Decimal("9.99"),
        "stock_quantity": 10,
        "low_stock_threshold": 2,
    }
    values.update(fields)
    return services.create_product(**values)


@pytest.fixture
def product(db) -> Product:
    return make_product()


def pytest_sessionfinish(session, exitstatus):
    """Under INVENTORY_REQUIRE_POSTGRES (CI), a skipped test or a non-PostgreSQL run fails."""
    if not os.environ.get("INVENTORY_REQUIRE_POSTGRES"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if not ON_POSTGRES or skipped:
        message = f"INVENTORY_REQUIRE_POSTGRES: {skipped} skipped, on PostgreSQL: {ON_POSTGRES}"
        if reporter:
            reporter.write_sep("=", message, red=True)
        session.exitstatus = 1


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def database_unreachable(django_db_blocker):
    """The default connection pointed at a closed port, as if the database were down."""
    if not ON_POSTGRES:  # Django never closes SQLite's in-memory test database
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    saved = {key: connection.settings_dict[key] for key in ("HOST", "PORT")}
    with django_db_blocker.unblock():
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=closed_port())
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.update(saved)


def assert_database_unavailable(response) -> dict:
    """A 503 problem document that tells the client when to retry."""
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["code"] == "database_unavailable"
    assert body["status"] == 503
    return body


def run_together(workers) -> None:
    """Start one thread per callable, released together; each closes its connection."""
    barrier = threading.Barrier(len(workers))

    def run(work):
        try:
            barrier.wait()
            work()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
