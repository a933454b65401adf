"""GET /api/events/: every event, in published order, walked with `after`."""

import threading

import pytest
from django.db import connection

from events import services as events
from events.models import Event
from products import services

from .conftest import make_product, make_user, requires_postgres, run_together, token_client

pytestmark = pytest.mark.django_db


def walk(client, **params) -> list[dict]:
    """Every event of the feed from the start, following `next`."""
    events, response = [], client.get("/api/events/", {"page_size": 3, **params})
    while True:
        assert response.status_code == 200, response.json()
        events += response.json()["results"]
        if response.json()["next"] is None:
            return events
        response = client.get(response.json()["next"])


def test_the_feed_lists_every_event_in_order_and_continues_after_a_position(api_client):
    first = make_product(stock_quantity=5, low_stock_threshold=1)
    second = make_product(stock_quantity=5, low_stock_threshold=1)
    services.decrement_stock(product_id=first.pk, quantity=4)

    events = walk(api_client)
    services.increment_stock(product_id=second.pk, quantity=1)
    later = api_client.get("/api/events/", {"after": events[-1]["position"]}).json()

    assert [(e["product_id"], e["type"]) for e in events] == [
        (first.pk, "product.created"),
        (first.pk, "stock.changed"),
        (second.pk, "product.created"),
        (second.pk, "stock.changed"),
        (first.pk, "stock.changed"),
        (first.pk, "stock.low"),
    ]
    first = events[0]["position"]
    assert [e["position"] for e in events] == list(range(first, first + 6))
    assert len({e["id"] for e in events}) == 6
    assert [(e["product_id"], e["type"], e["sequence"]) for e in later["results"]] == [
        (second.pk, "stock.changed", 3)
    ]
    assert later["next"] is None


def test_the_feed_filters_by_type_and_product(api_client):
    product = make_product(stock_quantity=5, low_stock_threshold=1)
    other = make_product(stock_quantity=0, low_stock_threshold=1)

    low = walk(api_client, type="stock.low")
    own = walk(api_client, product=product.pk)

    assert [e["product_id"] for e in low] == [other.pk]
    assert {e["product_id"] for e in own} == {product.pk}
    assert [e["sequence"] for e in own] == [1, 2]


def test_an_event_shows_the_product_and_movement_as_the_api_does(api_client):
    product = make_product(stock_quantity=5)
    services.decrement_stock(product_id=product.pk, quantity=2)

    event = walk(api_client, type="stock.changed")[-1]
    shown = api_client.get(f"/api/products/{product.pk}/").json()
    movement = api_client.get(f"/api/movements/{event['data']['movement']['id']}/").json()

    assert event["data"]["product"] == shown
    assert event["data"]["movement"] == movement


@pytest.mark.parametrize(
    ("params", "field"),
    [({"after": "-1"}, "after"), ({"type": "stock.gone"}, "type"), ({"since": "1"}, "since")],
)
def test_a_bad_feed_parameter_is_a_400(api_client, params, field):
    response = api_client.get("/api/events/", params)

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_the_feed_is_for_inventory_admins():
    make_product()

    assert token_client(make_user("staff")).get("/api/events/").status_code == 403
    assert token_client().get("/api/events/").status_code == 401


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_that_commits_late_is_placed_after_those_already_read(api_client):
    """Written first, committed last: a reader who has passed the later event must still
    see it, so it gets the next position when it commits, not its place by id."""
    slow, fast = make_product(stock_quantity=5), make_product(stock_quantity=5)
    written, release = threading.Event(), threading.Event()

    def slow_change():
        from django.db import transaction

        try:
            with transaction.atomic():
                services.decrement_stock(product_id=slow.pk, quantity=1)
                written.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_change)
    thread.start()
    written.wait(10)
    services.decrement_stock(product_id=fast.pk, quantity=1)
    seen = walk(api_client)
    release.set()
    thread.join()
    after = api_client.get("/api/events/", {"after": seen[-1]["position"]}).json()["results"]

    slow_event = Event.objects.get(product_id=slow.pk, type="stock.changed", sequence=3)
    fast_event = Event.objects.get(product_id=fast.pk, type="stock.changed", sequence=3)
    assert slow_event.pk < fast_event.pk  # written first
    assert seen[-1]["product_id"] == fast.pk
    assert [(e["product_id"], e["sequence"]) for e in after] == [(slow.pk, 3)]


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_publishers_racing_each_other_hand_out_each_position_once():
    """Ten publishers at once, while events keep committing: positions 1..n, each
    event exactly once (without the advisory lock they collide on `position`)."""
    products = [make_product(stock_quantity=100) for _ in range(5)]
    Event.objects.update(position=None)
    published = []

    def publisher():
        for _ in range(5):
            published.append(events.publish(limit=7))

    def writer(product):
        def work():
            for _ in range(5):
                services.decrement_stock(product_id=product.pk, quantity=1)

        return work

    run_together([publisher for _ in range(10)] + [writer(p) for p in products])
    published.append(events.publish())

    positions = list(Event.objects.order_by("position").values_list("position", flat=True))
    assert positions == list(range(1, len(positions) + 1))
    assert sum(published) == len(positions) == 5 * 2 + 5 * 5
