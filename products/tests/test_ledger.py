"""Every change of stock is on the record: one movement, in the same transaction."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from products.models import Product, StockMovement

from .conftest import make_product, make_user, token_client

pytestmark = pytest.mark.django_db


def movements_of(product) -> list[StockMovement]:
    """The product's movements after the `initial` one its creation recorded."""
    return list(
        StockMovement.objects.filter(product=product).exclude(kind="initial").order_by("id")
    )


def verify_ledger() -> str:
    out = io.StringIO()
    call_command("verify_ledger", stdout=out)
    return out.getvalue()


def test_create_with_stock_records_an_initial_movement(api_client):
    response = api_client.post(
        "/api/products/", {"sku": "L-1", "name": "Ledger", "stock_quantity": 7}, format="json"
    )

    (movement,) = StockMovement.objects.all()
    assert movement.product_id == response.json()["id"]
    assert (movement.kind, movement.reason, movement.source) == ("initial", "received", "api")
    assert (movement.delta, movement.quantity_before, movement.quantity_after) == (7, 0, 7)
    assert (movement.sku, movement.product_name) == ("L-1", "Ledger")
    assert movement.user is not None


def test_create_without_stock_records_nothing(api_client):
    api_client.post("/api/products/", {"sku": "L-0", "name": "Empty"}, format="json")

    assert not StockMovement.objects.exists()


def test_increment_and_decrement_record_who_why_and_before_after():
    user = make_user("staff", username="picker")
    client = token_client(user)
    product = make_product(stock_quantity=10)

    client.post(
        f"/api/products/{product.pk}/increment/",
        {"quantity": 5, "reason": "returned", "note": "customer return", "reference": "RMA-9"},
        format="json",
    )
    client.post(f"/api/products/{product.pk}/decrement/", {"quantity": 3}, format="json")

    increment, decrement = movements_of(product)
    assert (
        increment.kind,
        increment.delta,
        increment.quantity_before,
        increment.quantity_after,
    ) == (
        "increment",
        5,
        10,
        15,
    )
    assert (increment.reason, increment.note, increment.reference) == (
        "returned",
        "customer return",
        "RMA-9",
    )
    assert increment.user == user
    assert (decrement.kind, decrement.delta, decrement.quantity_after) == ("decrement", -3, 12)
    assert decrement.reason == "shipped"  # the default for a decrement


def test_a_refused_decrement_records_nothing(api_client):
    product = make_product(stock_quantity=1)

    response = api_client.post(
        f"/api/products/{product.pk}/decrement/", {"quantity": 2}, format="json"
    )

    assert response.status_code == 409
    assert movements_of(product) == []


def test_a_direct_stock_set_is_recorded_as_an_adjustment(api_client):
    product = make_product(stock_quantity=10)

    api_client.patch(f"/api/products/{product.pk}/", {"stock_quantity": 4}, format="json")
    api_client.patch(f"/api/products/{product.pk}/", {"name": "Renamed"}, format="json")

    (movement,) = movements_of(product)
    assert (movement.kind, movement.reason, movement.delta) == ("adjustment", "correction", -6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "stolen"),
        ("reason", 3),
        ("note", "n" * 1001),
        ("note", "a\x00b"),
        ("reference", "r" * 101),
    ],
)
def test_bad_movement_details_are_400_and_change_nothing(api_client, field, value):
    product = make_product(stock_quantity=10)

    response = api_client.post(
        f"/api/products/{product.pk}/increment/", {"quantity": 1, field: value}, format="json"
    )

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert movements_of(product) == []


def test_deleting_a_product_keeps_its_history_with_a_snapshot(api_client):
    product = make_product(sku="GONE-1", name="Gone", stock_quantity=2)
    api_client.post(f"/api/products/{product.pk}/increment/", {"quantity": 1}, format="json")

    assert api_client.delete(f"/api/products/{product.pk}/").status_code == 204

    initial, increment = StockMovement.objects.order_by("id")
    assert initial.product is None
    assert increment.product is None
    assert (increment.sku, increment.product_name, increment.quantity_after) == (
        "GONE-1",
        "Gone",
        3,
    )
    listed = api_client.get("/api/movements/", {"sku": "gone-1"}).json()["results"]
    assert [m["id"] for m in listed] == [increment.pk, initial.pk]


def test_movements_are_append_only_through_the_api(api_client):
    product = make_product(stock_quantity=1)
    api_client.post(f"/api/products/{product.pk}/increment/", {"quantity": 1}, format="json")
    (movement,) = movements_of(product)
    url = f"/api/movements/{movement.pk}/"

    assert api_client.get(url).status_code == 200
    assert api_client.put(url, {"delta": 100}, format="json").status_code == 405
    assert api_client.patch(url, {"delta": 100}, format="json").status_code == 405
    assert api_client.delete(url).status_code == 405
    assert api_client.post("/api/movements/", {"delta": 1}, format="json").status_code == 405
    movement.refresh_from_db()
    assert movement.delta == 1


# Reading the ledger


def test_product_movements_are_newest_first_and_paginated(api_client):
    product = make_product(stock_quantity=0)
    for quantity in (1, 2, 3):
        api_client.post(
            f"/api/products/{product.pk}/increment/", {"quantity": quantity}, format="json"
        )

    response = api_client.get(f"/api/products/{product.pk}/movements/", {"page_size": 2})

    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 3
    assert [m["delta"] for m in data["results"]] == [3, 2]
    assert data["results"][0]["user"] == StockMovement.objects.last().user.username


def test_product_movements_of_an_unknown_product_is_404(api_client):
    assert api_client.get("/api/products/999999/movements/").status_code == 404


@pytest.fixture
def history(api_client):
    """Movements of two products by two users, through the API."""
    a = make_product(sku="HIST-A", stock_quantity=10)
    b = make_product(sku="HIST-B", stock_quantity=10)
    other = token_client(make_user("staff", username="other"))
    api_client.post(f"/api/products/{a.pk}/increment/", {"quantity": 1}, format="json")
    api_client.post(f"/api/products/{a.pk}/decrement/", {"quantity": 2}, format="json")
    other.post(f"/api/products/{b.pk}/decrement/", {"quantity": 3}, format="json")
    return a, b


@pytest.mark.parametrize(
    ("params", "expected_deltas"),
    [
        ({}, [-3, -2, 1]),
        ({"kind": "decrement"}, [-3, -2]),
        ({"reason": "received"}, [1]),
        ({"source": "api"}, [-3, -2, 1]),
        ({"source": "admin"}, []),
        ({"sku": "hist-b"}, [-3]),
    ],
)
def test_movement_list_filters(api_client, history, params, expected_deltas):
    StockMovement.objects.filter(kind="initial").delete()  # only the API's movements
    response = api_client.get("/api/movements/", params)

    assert response.status_code == 200
    assert [m["delta"] for m in response.json()["results"]] == expected_deltas


def test_date_filters_take_any_offset(api_client, history):
    response = api_client.get("/api/movements/", {"created_before": "2000-01-01T13:49:17-20:05"})

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_movement_list_filters_by_product_user_and_date_range(api_client, history):
    a, _ = history
    StockMovement.objects.filter(kind="initial").delete()  # only the API's movements
    other = StockMovement.objects.get(sku="HIST-B").user
    first = StockMovement.objects.order_by("id").first()

    by_product = api_client.get("/api/movements/", {"product": a.pk}).json()["results"]
    by_user = api_client.get("/api/movements/", {"user": other.pk}).json()["results"]
    after = api_client.get(
        "/api/movements/", {"created_after": first.created_at.isoformat()}
    ).json()["results"]
    before = api_client.get(
        "/api/movements/", {"created_before": first.created_at.isoformat()}
    ).json()["results"]

    assert {m["sku"] for m in by_product} == {"HIST-A"}
    assert [m["user"] for m in by_user] == ["other"]
    assert len(after) == 3
    assert before == []


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "teleport"},
        {"product": "abc"},
        {"product": "1.5"},
        {"created_after": "yesterday"},
        {"user": "1e5"},
        {"user": str(2**63)},
        {"created_after": "0001-01-01T00:00:00+20:00"},
        {"created_before": ""},
        {"kind": ""},
        {"product": ""},
        {"sku": "a\x00b"},
        {"colour": "red"},
    ],
)
def test_bad_movement_filters_are_400(api_client, params):
    response = api_client.get("/api/movements/", params)

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_warehouse_staff_cannot_read_the_ledger():
    client = token_client(make_user("staff"))
    product = make_product()

    assert client.get("/api/movements/").status_code == 403
    assert client.get(f"/api/products/{product.pk}/movements/").status_code == 403


# verify_ledger


def test_verify_ledger_passes_after_every_kind_of_change(api_client):
    product = make_product(stock_quantity=0)
    api_client.post(
        "/api/products/", {"sku": "V-1", "name": "V", "stock_quantity": 5}, format="json"
    )
    api_client.post(f"/api/products/{product.pk}/increment/", {"quantity": 9}, format="json")
    api_client.post(f"/api/products/{product.pk}/decrement/", {"quantity": 4}, format="json")
    api_client.post(f"/api/products/{product.pk}/count/", {"counted_quantity": 3}, format="json")
    api_client.patch(f"/api/products/{product.pk}/", {"stock_quantity": 8}, format="json")

    assert "the ledger reconciles" in verify_ledger()


def test_verify_ledger_reports_stock_changed_behind_the_ledgers_back(api_client):
    product = make_product(sku="TAMPER", stock_quantity=0)
    api_client.post(f"/api/products/{product.pk}/increment/", {"quantity": 5}, format="json")
    Product.objects.filter(pk=product.pk).update(stock_quantity=6)

    out = io.StringIO()
    with pytest.raises(CommandError, match="1 discrepancy"):
        call_command("verify_ledger", stdout=out)
    assert "TAMPER" in out.getvalue()
    assert "stock is 6, but its movements add up to 5" in out.getvalue()


def test_verify_ledger_reports_a_broken_chain(api_client):
    product = make_product(sku="CHAIN", stock_quantity=0)
    for _ in range(2):
        api_client.post(f"/api/products/{product.pk}/increment/", {"quantity": 2}, format="json")
    StockMovement.objects.filter(pk=StockMovement.objects.first().pk).delete()

    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_ledger", stdout=out)
    assert "starts at 2, but the previous one ended at 0" in out.getvalue()
