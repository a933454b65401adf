"""Every change announces itself: the events each entry point records, in the same
transaction as the change, numbered per product, and low stock edge-triggered."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from events.models import Event
from products import services
from products.models import Product, StockMovement

from .conftest import make_product, make_user, requires_postgres, run_together, token_client

pytestmark = pytest.mark.django_db


def types(product) -> list[str]:
    """The product's event types, in sequence order."""
    return list(
        Event.objects.filter(product_id=product.pk)
        .order_by("sequence")
        .values_list("type", flat=True)
    )


def test_a_created_product_announces_itself_its_initial_stock_and_nothing_else():
    product = make_product(stock_quantity=10, low_stock_threshold=2)

    events = list(Event.objects.filter(product_id=product.pk).order_by("sequence"))

    assert [e.type for e in events] == ["product.created", "stock.changed"]
    assert [e.sequence for e in events] == [1, 2]
    assert events[0].data["product"]["sku"] == product.sku
    assert events[1].data["movement"]["kind"] == "initial"
    assert events[1].data["movement"]["quantity_after"] == 10
    product.refresh_from_db()
    assert product.event_sequence == 2


def test_a_product_created_at_or_below_its_threshold_is_announced_low():
    product = make_product(stock_quantity=0, low_stock_threshold=5)

    assert types(product) == ["product.created", "stock.low"]


def test_each_stock_operation_is_one_stock_event_with_its_movement(api_client):
    product = make_product(stock_quantity=10, low_stock_threshold=2)
    url = f"/api/products/{product.pk}"

    api_client.post(f"{url}/increment/", {"quantity": 5}, format="json")
    api_client.post(f"{url}/decrement/", {"quantity": 3}, format="json")
    api_client.post(f"{url}/count/", {"counted_quantity": 12}, format="json")
    api_client.post(
        "/api/stock-adjustments/", {"lines": [{"product": product.pk, "delta": 4}]}, format="json"
    )

    events = Event.objects.filter(product_id=product.pk, type="stock.changed").order_by("sequence")
    movements = StockMovement.objects.filter(product=product).order_by("id")
    assert [e.data["movement"]["id"] for e in events] == [m.pk for m in movements]
    assert [e.data["movement"]["kind"] for e in events] == [
        "initial", "increment", "decrement", "count", "adjustment",
    ]  # fmt: skip
    assert [e.data["product"]["stock_quantity"] for e in events] == [10, 15, 12, 12, 16]


def test_low_stock_is_announced_once_when_crossed_and_recovery_once_when_left(api_client):
    product = make_product(stock_quantity=12, low_stock_threshold=5)
    url = f"/api/products/{product.pk}"

    for _ in range(10):  # 12 → 2: crosses at 5, then stays low
        api_client.post(f"{url}/decrement/", {"quantity": 1}, format="json")
    api_client.post(f"{url}/increment/", {"quantity": 10}, format="json")  # 2 → 12
    api_client.post(f"{url}/increment/", {"quantity": 1}, format="json")

    assert types(product).count("stock.low") == 1
    assert types(product).count("stock.recovered") == 1
    low = Event.objects.get(product_id=product.pk, type="stock.low")
    assert low.data["product"]["stock_quantity"] == 5
    previous = Event.objects.get(product_id=product.pk, sequence=low.sequence - 1)
    assert previous.data["movement"]["quantity_after"] == 5  # the decrement that crossed


def test_a_threshold_change_alone_can_cross_and_is_a_product_update(api_client):
    product = make_product(stock_quantity=10, low_stock_threshold=2)

    api_client.patch(f"/api/products/{product.pk}/", {"low_stock_threshold": 10}, format="json")
    api_client.patch(f"/api/products/{product.pk}/", {"name": "Renamed"}, format="json")
    api_client.put(
        f"/api/products/{product.pk}/",
        {"sku": product.sku, "name": "Renamed", "stock_quantity": 30},
        format="json",
    )

    assert types(product)[2:] == [
        "product.updated", "stock.low",
        "product.updated",
        "stock.changed", "stock.recovered",  # the PUT's name is unchanged: stock only
    ]  # fmt: skip


def test_a_patch_of_stock_and_name_announces_the_movement_then_the_update(api_client):
    product = make_product(stock_quantity=8, low_stock_threshold=2)

    api_client.patch(
        f"/api/products/{product.pk}/", {"stock_quantity": 1, "name": "New"}, format="json"
    )

    events = list(Event.objects.filter(product_id=product.pk).order_by("sequence"))[2:]
    assert [e.type for e in events] == ["stock.changed", "product.updated", "stock.low"]
    assert events[0].data["movement"]["quantity_after"] == 1
    assert {e.data["product"]["name"] for e in events} == {"New"}


def test_a_bulk_line_per_product_shows_the_product_as_that_line_left_it(api_client):
    product = make_product(stock_quantity=10, low_stock_threshold=5)
    lines = [{"product": product.pk, "delta": -6}, {"product": product.pk, "delta": 7}]

    api_client.post("/api/stock-adjustments/", {"lines": lines}, format="json")

    events = Event.objects.filter(product_id=product.pk).order_by("sequence")[2:]
    assert [(e.type, e.data["product"]["stock_quantity"]) for e in events] == [
        ("stock.changed", 4),
        ("stock.low", 4),
        ("stock.changed", 11),
        ("stock.recovered", 11),
    ]


def test_a_deleted_product_announces_its_last_state(api_client):
    product = make_product(stock_quantity=3)

    api_client.delete(f"/api/products/{product.pk}/")

    deleted = Event.objects.get(product_id=product.pk, type="product.deleted")
    assert deleted.sequence == 3
    assert deleted.data["product"]["stock_quantity"] == 3


def test_a_refused_change_announces_nothing(api_client):
    product = make_product(stock_quantity=1)
    before = Event.objects.count()

    refused = api_client.post(
        f"/api/products/{product.pk}/decrement/", {"quantity": 5}, format="json"
    )
    bulk = api_client.post(
        "/api/stock-adjustments/",
        {"lines": [{"product": product.pk, "delta": 1}, {"product": product.pk, "delta": -9}]},
        format="json",
    )

    assert (refused.status_code, bulk.status_code) == (409, 409)
    assert Event.objects.count() == before


def test_a_rolled_back_transaction_leaves_no_event():
    product = make_product(stock_quantity=5)
    before = Event.objects.count()

    def change_then_fail():
        with transaction.atomic():
            services.decrement_stock(product_id=product.pk, quantity=1)
            raise RuntimeError("the caller's transaction fails after the change")

    with pytest.raises(RuntimeError):
        change_then_fail()

    assert Event.objects.count() == before
    product.refresh_from_db()
    assert (product.stock_quantity, product.event_sequence) == (5, 2)


def test_the_admin_and_commands_announce_through_the_same_services(client):
    product = make_product(sku="CMD-1", stock_quantity=5, low_stock_threshold=4)
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-12345-xyz")
    client.force_login(boss)

    call_command("adjust_stock", "cmd-1", "--decrement", "1", stdout=io.StringIO())
    client.post(
        "/admin/products/product/",
        {
            "action": "increment_stock",
            "_selected_action": [product.pk],
            "apply": "1",
            "quantity": "3",
        },
    )

    events = Event.objects.filter(product_id=product.pk).order_by("sequence")
    assert [(e.type, e.data.get("movement", {}).get("source")) for e in events][2:] == [
        ("stock.changed", "command"),
        ("stock.low", None),
        ("stock.changed", "admin"),
        ("stock.recovered", None),
    ]


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_decrementing_across_the_threshold_raise_exactly_one_low_event():
    product = make_product(stock_quantity=30, low_stock_threshold=10)
    clients = [token_client(make_user("staff")) for _ in range(20)]
    statuses = []

    def worker(client):
        def work():
            for _ in range(2):
                response = client.post(
                    f"/api/products/{product.pk}/decrement/", {"quantity": 1}, format="json"
                )
                statuses.append(response.status_code)

        return work

    run_together([worker(client) for client in clients])

    events = list(Event.objects.filter(product_id=product.pk).order_by("sequence"))
    changes = [e for e in events if e.type == "stock.changed"][1:]  # after the initial one
    assert statuses.count(200) == 30
    assert statuses.count(409) == 10
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events].count("stock.low") == 1
    assert len(changes) == 30
    # Sequence order is ledger order: each change starts where the one before ended.
    afters = [e.data["movement"]["quantity_after"] for e in changes]
    assert afters == list(range(29, -1, -1))
    low = next(e for e in events if e.type == "stock.low")
    assert low.data["product"]["stock_quantity"] == 10
    assert Product.objects.get(pk=product.pk).event_sequence == len(events)


def test_deleting_in_the_admin_announces_each_product(client):
    one, two = make_product(), make_product()
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-12345-xyz")
    client.force_login(boss)

    client.post(f"/admin/products/product/{one.pk}/delete/", {"post": "yes"})
    client.post(
        "/admin/products/product/",
        {"action": "delete_selected", "_selected_action": [two.pk], "post": "yes"},
    )

    assert not Product.objects.exists()
    assert types(one)[-1] == "product.deleted"
    assert types(two)[-1] == "product.deleted"
