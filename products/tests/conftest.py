import os
from decimal import Decimal

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from products.models import Product

ON_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"

requires_postgres = pytest.mark.skipif(
    not ON_POSTGRES,
    reason="needs PostgreSQL (row locks across connections); set DATABASE_URL",
)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


_sequence = iter(range(1, 10**9))


def make_product(**fields) -> Product:
    """A saved product with sensible defaults; any field can be overridden."""
    n = next(_sequence)
    values = {
        "sku": f"SKU-{n:05d}",
        "name": f"Product {n}",
        "price": Decimal("9.99"),
        "stock_quantity": 10,
        "low_stock_threshold": 2,
    }
    values.update(fields)
    return Product.objects.create(**values)


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
