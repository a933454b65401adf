import io
import os

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, models

from .conftest import make_product

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_adjust_stock_increments_and_decrements_by_sku_ignoring_case():
    product = make_product(sku="Bolt-M8", stock_quantity=10)

    assert run("adjust_stock", "bolt-m8", "--increment", "5") == "Bolt-M8: 15 in stock\n"
    assert run("adjust_stock", "BOLT-M8", "--decrement", "15") == "Bolt-M8: 0 in stock\n"
    product.refresh_from_db()
    assert product.stock_quantity == 0


def test_adjust_stock_refuses_to_go_negative():
    product = make_product(sku="Nut", stock_quantity=1)

    with pytest.raises(CommandError, match="only 1 available"):
        run("adjust_stock", "Nut", "--decrement", "2")

    product.refresh_from_db()
    assert product.stock_quantity == 1


def test_adjust_stock_unknown_sku_is_an_error():
    with pytest.raises(CommandError, match="No product with SKU"):
        run("adjust_stock", "missing", "--increment", "1")


@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5"])
def test_adjust_stock_rejects_bad_quantities(value):
    make_product(sku="S")

    with pytest.raises(CommandError):
        run("adjust_stock", "S", "--increment", value)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--reference", "r" * 101, "--reference"),
        ("--reference", "PO\n7", "--reference"),
        ("--note", "n" * 1001, "--note"),
    ],
)
def test_adjust_stock_applies_the_apis_limits_to_its_details(option, value, message):
    product = make_product(sku="Tape", stock_quantity=1)

    with pytest.raises(CommandError, match=message):
        run("adjust_stock", "Tape", "--increment", "1", option, value)

    product.refresh_from_db()
    assert product.stock_quantity == 1


@pytest.mark.parametrize("username", ["", "bad name!", "u" * 151])
def test_create_api_user_refuses_a_username_the_admin_would_refuse(username):
    with pytest.raises(CommandError, match="Username"):
        run("create_api_user", username, "--role", "staff")

    assert not get_user_model().objects.exists()


def test_ensure_superuser_creates_once(monkeypatch):
    monkeypatch.setitem(os.environ, "DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setitem(os.environ, "DJANGO_SUPERUSER_PASSWORD", "pw-abc-12345")

    assert "Created superuser 'root'" in run("ensure_superuser")
    assert "already exists" in run("ensure_superuser")
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser
    assert user.check_password("pw-abc-12345")


def test_seed_products_is_realistic_idempotent_and_on_the_ledger():
    from products.models import Product

    first = run("seed_products", "--count", "300", "--batch-size", "100")
    again = run("seed_products", "--count", "450", "--batch-size", "100")

    assert "Created 300 product(s) (0 already there)" in first
    assert "Created 150 product(s) (300 already there)" in again
    assert "450/450" in again
    assert Product.objects.filter(sku__startswith="SEED-").count() == 450
    below = Product.objects.filter(stock_quantity__lte=models.F("low_stock_threshold")).count()
    assert 0 < below < 100
    assert "the ledger reconciles" in run("verify_ledger")
    if connection.vendor == "postgresql":  # the planner has the table's statistics
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'products_product'")
            assert cursor.fetchone()[0] > 0


def test_seed_products_gives_the_same_data_for_the_same_seed():
    from products.models import Product

    run("seed_products", "--count", "20")
    first = list(Product.objects.order_by("sku").values_list("name", "price", "stock_quantity"))
    Product.objects.all().delete()
    run("seed_products", "--count", "20")

    assert (
        list(Product.objects.order_by("sku").values_list("name", "price", "stock_quantity"))
        == first
    )


def test_seed_products_announces_its_products_as_create_product_does():
    from events.models import Event
    from products.models import Product

    run("seed_products", "--count", "60", "--batch-size", "25")

    for product in Product.objects.all():
        events = list(Event.objects.filter(product_id=product.pk).order_by("sequence"))
        expected = ["product.created"]
        expected += ["stock.changed"] if product.stock_quantity else []
        expected += ["stock.low"] if product.is_below_requirement else []
        assert [e.type for e in events] == expected
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert product.event_sequence == len(events)
        assert events[0].data["product"]["sku"] == product.sku
    assert Event.objects.filter(type="stock.low").exists()


def test_show_database_names_the_database_in_use():
    from django.db import connection

    out = io.StringIO()
    call_command("show_database", stdout=out)

    kind = "PostgreSQL database" if connection.vendor == "postgresql" else "SQLite file"
    assert out.getvalue().startswith(f"Database: {kind}")
    assert str(connection.settings_dict["NAME"]) in out.getvalue()
