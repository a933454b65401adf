"""Reserving, fulfilling and releasing through the API, as an order system would."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from events.models import Event
from products.models import Product, StockMovement
from products.tests.conftest import ON_POSTGRES
from reservations.models import Reservation

from .conftest import lapse, make_product, make_user, reserve, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return token_client(make_user("staff"))


def reserve_url(product) -> str:
    return f"/api/products/{product.pk}/reservations/"


def post_reserve(client, product, **body):
    body.setdefault("quantity", 1)
    return client.post(reserve_url(product), body, format="json")


def product_json(client, product) -> dict:
    return client.get(f"/api/products/{product.pk}/").json()


def test_every_product_response_has_reserved_available_and_over_reserved(staff):
    product = make_product(stock_quantity=10)

    body = product_json(staff, product)

    assert body["stock_quantity"] == 10
    assert body["reserved_quantity"] == 0
    assert body["available_quantity"] == 10
    assert body["is_over_reserved"] is False
    listed = staff.get("/api/products/").json()["results"][0]
    assert listed["available_quantity"] == 10


def test_a_reservation_holds_units_and_leaves_stock_on_hand(staff):
    product = make_product(stock_quantity=10)

    response = post_reserve(staff, product, quantity=3, expires_in=600, reference="SO-1")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "active"
    assert body["quantity"] == 3
    assert body["reference"] == "SO-1"
    assert body["product"] == product.pk
    assert body["fulfilled_quantity"] is None
    assert body["ended_at"] is None
    reservation = Reservation.objects.get(pk=body["id"])
    assert (
        timedelta(seconds=590)
        < reservation.expires_at - reservation.created_at
        <= timedelta(seconds=600)
    )
    shown = product_json(staff, product)
    assert (shown["stock_quantity"], shown["reserved_quantity"], shown["available_quantity"]) == (
        10,
        3,
        7,
    )
    assert not StockMovement.objects.filter(product=product, kind="decrement").exists()


def test_a_reservation_past_what_is_available_is_409_naming_what_is_available(staff):
    product = make_product(stock_quantity=5)
    reserve(product, 3)

    response = post_reserve(staff, product, quantity=3)

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "insufficient_available"
    assert (body["available"], body["requested"], body["reserved"]) == (2, 3, 3)
    assert Reservation.objects.filter(product=product).count() == 1
    assert Product.objects.get(pk=product.pk).reserved_quantity == 3


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"quantity": 0},
        {"quantity": -1},
        {"quantity": "2"},
        {"quantity": 1.0},
        {"quantity": True},
        {"quantity": 2**63},
        {"quantity": 1, "expires_in": 0},
        {"quantity": 1, "expires_in": 30 * 24 * 3600 + 1},
        {"quantity": 1, "expires_in": "60"},
        {"quantity": 1, "reference": 7},
        {"quantity": 1, "reference": "x" * 101},
        {"quantity": 1, "reference": "two\nlines"},
        {"quantity": 1, "colour": "red"},
        [1],
        None,
    ],
)
def test_bad_reservation_bodies_are_400_and_hold_nothing(staff, body):
    product = make_product(stock_quantity=5)

    response = staff.post(reserve_url(product), body, format="json")

    assert response.status_code == 400, response.content
    assert not Reservation.objects.exists()


def test_malformed_json_is_400(staff):
    product = make_product()
    response = staff.post(reserve_url(product), "{", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize("product_id", ["999999", "01", "0", "-1", "abc", "9" * 30])
def test_reserving_an_unknown_product_is_404(staff, product_id):
    response = staff.post(
        f"/api/products/{product_id}/reservations/", {"quantity": 1}, format="json"
    )
    assert response.status_code == 404
    assert staff.get(f"/api/products/{product_id}/reservations/").status_code == 404


def test_fulfil_takes_the_units_from_stock_and_ends_the_hold_with_a_ledger_decrement(staff):
    product = make_product(stock_quantity=10, low_stock_threshold=0)
    reservation = reserve(product, 4, reference="SO-7")

    response = staff.post(f"/api/reservations/{reservation.pk}/fulfil/", {}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["state"], body["fulfilled_quantity"]) == ("fulfilled", 4)
    assert body["ended_at"] is not None
    movement = StockMovement.objects.get(pk=body["movement"])
    assert (movement.kind, movement.delta, movement.quantity_before) == ("decrement", -4, 10)
    assert movement.reference == f"reservation:{reservation.pk}"
    assert movement.note == "SO-7"
    shown = product_json(staff, product)
    assert (shown["stock_quantity"], shown["reserved_quantity"], shown["available_quantity"]) == (
        6,
        0,
        6,
    )
    changed = Event.objects.filter(product_id=product.pk, type="stock.changed").last()
    assert changed.data["movement"]["id"] == movement.pk
    assert changed.data["product"]["reserved_quantity"] == 0
    call_command("verify_ledger", stdout=io.StringIO())


def test_fulfilling_fewer_units_frees_the_rest(staff):
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 4)
    reserve(product, 1)

    response = staff.post(
        f"/api/reservations/{reservation.pk}/fulfil/", {"quantity": 3}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["fulfilled_quantity"] == 3
    shown = product_json(staff, product)
    assert (shown["stock_quantity"], shown["reserved_quantity"], shown["available_quantity"]) == (
        7,
        1,
        6,
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"quantity": 5}, 409),
        ({"quantity": 2**62}, 409),
        ({"quantity": 0}, 400),
        ({"quantity": "1"}, 400),
    ],
)
def test_fulfilling_more_than_held_is_409_and_a_bad_quantity_400(staff, body, status):
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 4)

    response = staff.post(f"/api/reservations/{reservation.pk}/fulfil/", body, format="json")

    assert response.status_code == status
    if status == 409:
        assert response.json()["code"] == "quantity_exceeds_reservation"
        assert response.json()["reserved"] == 4
    assert Reservation.objects.get(pk=reservation.pk).state == "active"
    assert Product.objects.get(pk=product.pk).stock_quantity == 10


def test_release_frees_the_units_without_moving_stock(staff):
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 4)
    movements = StockMovement.objects.count()

    response = staff.post(f"/api/reservations/{reservation.pk}/release/")

    assert response.status_code == 200
    assert response.json()["state"] == "released"
    shown = product_json(staff, product)
    assert (shown["stock_quantity"], shown["available_quantity"]) == (10, 10)
    assert StockMovement.objects.count() == movements


@pytest.mark.parametrize(
    ("first", "then", "state"),
    [
        ("fulfil", "fulfil", "fulfilled"),
        ("fulfil", "release", "fulfilled"),
        ("release", "fulfil", "released"),
        ("release", "release", "released"),
    ],
)
def test_an_ended_reservation_cannot_be_fulfilled_or_released_again(staff, first, then, state):
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 4)
    assert staff.post(f"/api/reservations/{reservation.pk}/{first}/").status_code == 200

    response = staff.post(f"/api/reservations/{reservation.pk}/{then}/")

    assert response.status_code == 409
    assert response.json()["code"] == "reservation_not_active"
    assert response.json()["state"] == state
    assert Product.objects.get(pk=product.pk).stock_quantity == (6 if state == "fulfilled" else 10)
    assert StockMovement.objects.filter(product=product, kind="decrement").count() == (
        1 if state == "fulfilled" else 0
    )


@pytest.mark.parametrize("action", ["fulfil", "release"])
@pytest.mark.parametrize("reservation_id", ["999999", "01", "0", "x"])
def test_fulfil_or_release_of_an_unknown_reservation_is_404(staff, action, reservation_id):
    response = staff.post(f"/api/reservations/{reservation_id}/{action}/")
    assert response.status_code == 404


def test_a_release_with_a_body_field_is_400(staff):
    reservation = reserve(make_product(), 1)
    response = staff.post(
        f"/api/reservations/{reservation.pk}/release/", {"quantity": 1}, format="json"
    )
    assert response.status_code == 400


def test_a_plain_decrement_takes_only_available_units(staff):
    product = make_product(stock_quantity=10)
    reserve(product, 7)

    refused = staff.post(f"/api/products/{product.pk}/decrement/", {"quantity": 4}, format="json")
    taken = staff.post(f"/api/products/{product.pk}/decrement/", {"quantity": 3}, format="json")

    assert refused.status_code == 409
    assert refused.json()["code"] == "insufficient_available"
    assert (refused.json()["available"], refused.json()["reserved"]) == (3, 7)
    assert taken.status_code == 200
    assert (taken.json()["stock_quantity"], taken.json()["available_quantity"]) == (7, 0)


def test_a_decrement_past_stock_without_reservations_is_still_insufficient_stock(staff):
    product = make_product(stock_quantity=2)
    response = staff.post(f"/api/products/{product.pk}/decrement/", {"quantity": 3}, format="json")
    assert response.json()["code"] == "insufficient_stock"


def test_a_bulk_adjustment_cannot_take_reserved_units(staff):
    product = make_product(stock_quantity=10)
    reserve(product, 8)

    response = staff.post(
        "/api/stock-adjustments/", {"lines": [{"product": product.pk, "delta": -3}]}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_available"
    assert response.json()["lines"][0]["available"] == 2
    assert Product.objects.get(pk=product.pk).stock_quantity == 10


def test_a_count_below_the_reserved_quantity_is_accepted_and_flagged(api_client):
    product = make_product(stock_quantity=10)
    reserve(product, 6)

    response = api_client.post(
        f"/api/products/{product.pk}/count/", {"counted_quantity": 4}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["stock_quantity"], body["reserved_quantity"], body["available_quantity"]) == (
        4,
        6,
        0,
    )
    assert body["is_over_reserved"] is True
    event = Event.objects.filter(product_id=product.pk, type="stock.changed").last()
    assert event.data["product"]["is_over_reserved"] is True
    assert event.data["movement"]["kind"] == "count"


def test_fulfilling_more_than_is_on_hand_after_a_short_count_is_409(api_client):
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 6)
    api_client.post(f"/api/products/{product.pk}/count/", {"counted_quantity": 4}, format="json")

    refused = api_client.post(f"/api/reservations/{reservation.pk}/fulfil/")
    partly = api_client.post(
        f"/api/reservations/{reservation.pk}/fulfil/", {"quantity": 4}, format="json"
    )

    assert refused.status_code == 409
    assert (refused.json()["code"], refused.json()["available"]) == ("insufficient_stock", 4)
    assert partly.status_code == 200
    shown = api_client.get(f"/api/products/{product.pk}/").json()
    assert (shown["stock_quantity"], shown["reserved_quantity"], shown["is_over_reserved"]) == (
        0,
        0,
        False,
    )


def test_a_reservation_that_takes_available_to_zero_is_an_event(staff):
    product = make_product(stock_quantity=5)
    reserve(product, 2)
    assert not Event.objects.filter(type="stock.fully_reserved").exists()

    response = post_reserve(staff, product, quantity=3, reference="SO-9")

    event = Event.objects.get(type="stock.fully_reserved")
    assert event.product_id == product.pk
    assert event.data["product"]["available_quantity"] == 0
    assert event.data["product"]["reserved_quantity"] == 5
    assert event.data["reservation"]["id"] == response.json()["id"]
    assert event.data["reservation"]["reference"] == "SO-9"
    sequences = list(
        Event.objects.filter(product_id=product.pk).order_by("id").values_list("sequence", flat=1)
    )
    assert sequences == list(range(1, len(sequences) + 1))


def test_low_stock_keeps_comparing_on_hand_stock(staff):
    product = make_product(stock_quantity=10, low_stock_threshold=3)

    post_reserve(staff, product, quantity=9)

    assert not Event.objects.filter(type="stock.low").exists()
    below = staff.get("/api/products/below_requirement/").json()["results"]
    assert below == []
    assert product_json(staff, product)["is_below_requirement"] is False


# Expiry: exact at the instant, without the tidy-up


def test_a_lapsed_hold_frees_its_units_at_once_for_reads_and_writes(staff):
    product = make_product(stock_quantity=10)
    lapsed = reserve(product, 6)
    kept = reserve(product, 1)
    lapse(lapsed)

    shown = product_json(staff, product)
    assert (shown["reserved_quantity"], shown["available_quantity"]) == (1, 9)
    assert staff.get(f"/api/reservations/{lapsed.pk}/").json()["state"] == "expired"
    assert Reservation.objects.get(pk=lapsed.pk).state == "active"  # not tidied yet

    # A write of the product tidies it under the lock, then decides.
    response = staff.post(f"/api/products/{product.pk}/decrement/", {"quantity": 9}, format="json")
    assert response.status_code == 200
    lapsed.refresh_from_db()
    assert lapsed.state == "expired"
    assert lapsed.ended_at == lapsed.expires_at
    product.refresh_from_db()
    assert product.reserved_quantity == 1
    assert product.reservations_expire_at == Reservation.objects.get(pk=kept.pk).expires_at
    call_command("verify_ledger", stdout=io.StringIO())


@pytest.mark.parametrize("action", ["fulfil", "release"])
def test_a_lapsed_hold_cannot_be_fulfilled_or_released(staff, action):
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 6)
    lapse(reservation)

    response = staff.post(f"/api/reservations/{reservation.pk}/{action}/")

    assert response.status_code == 409
    assert response.json()["state"] == "expired"
    assert Product.objects.get(pk=product.pk).stock_quantity == 10


def test_a_new_reservation_can_take_units_a_lapsed_one_held(staff):
    product = make_product(stock_quantity=5)
    lapse(reserve(product, 5))

    assert post_reserve(staff, product, quantity=5).status_code == 201
    assert product_json(staff, product)["available_quantity"] == 0


def test_the_expire_command_tidies_lapsed_holds(staff):
    products = [make_product(stock_quantity=10) for _ in range(3)]
    for product in products:
        reserve(product, 3)
        lapse(reserve(product, 2))
    out = io.StringIO()

    call_command("expire_reservations", stdout=out)

    assert "Expired 3 reservation(s)" in out.getvalue()
    assert Reservation.objects.filter(state="expired").count() == 3
    for product in products:
        product.refresh_from_db()
        assert product.reserved_quantity == 3
    call_command("verify_ledger", stdout=io.StringIO())
    call_command("expire_reservations", stdout=out)
    assert "Expired 0 reservation(s)" in out.getvalue()


def test_verify_ledger_finds_a_reserved_counter_that_disagrees_with_the_holds():
    product = make_product(stock_quantity=10)
    reserve(product, 2)
    Product.objects.filter(pk=product.pk).update(reserved_quantity=3)
    out = io.StringIO()

    with pytest.raises(CommandError):
        call_command("verify_ledger", stdout=out)
    assert "3 reserved, but its active reservations hold 2" in out.getvalue()


# Listing and filters


def test_the_list_filters_by_product_state_reference_and_expiry(staff):
    a, b = make_product(stock_quantity=10), make_product(stock_quantity=10)
    soon = reserve(a, 1, expires_in=60, reference="SO-1")
    later = reserve(a, 1, expires_in=3600, reference="SO-2")
    other = reserve(b, 1, reference="SO-1")
    released = reserve(b, 1, reference="SO-3")
    staff.post(f"/api/reservations/{released.pk}/release/")
    lapsed = reserve(b, 1, reference="SO-4")
    lapse(lapsed)

    def ids(**params):
        response = staff.get("/api/reservations/", params)
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    assert ids() == [lapsed.pk, released.pk, other.pk, later.pk, soon.pk]
    assert ids(product=a.pk) == [later.pk, soon.pk]
    assert ids(state="active") == [other.pk, later.pk, soon.pk]
    assert ids(state="expired") == [lapsed.pk]
    assert ids(state="released") == [released.pk]
    assert ids(reference="SO-1") == [other.pk, soon.pk]
    before = (timezone.now() + timedelta(seconds=120)).isoformat()
    assert ids(expires_before=before, state="active") == [soon.pk]
    product_list = staff.get(f"/api/products/{a.pk}/reservations/", {"state": "active"})
    assert [r["id"] for r in product_list.json()["results"]] == [later.pk, soon.pk]


@pytest.mark.parametrize(
    "params",
    [
        {"state": "gone"},
        {"product": "x"},
        {"product": "01"},
        {"expires_before": "yesterday"},
        {"colour": "red"},
        {"reference": ""},
    ],
)
def test_bad_list_parameters_are_400(staff, params):
    assert staff.get("/api/reservations/", params).status_code == 400


def test_products_filter_by_reserved_and_available(staff):
    held = make_product(stock_quantity=10)
    free = make_product(stock_quantity=10)
    out = make_product(stock_quantity=4)
    reserve(held, 6)
    reserve(out, 4)
    lapsed = make_product(stock_quantity=3)
    lapse(reserve(lapsed, 3))

    def skus(**params):
        response = staff.get("/api/products/", params)
        assert response.status_code == 200, response.content
        return {p["sku"] for p in response.json()["results"]}

    assert skus(available_quantity__lte=0) == {out.sku}
    assert skus(available_quantity__gte=5) == {free.sku}
    assert skus(reserved_quantity__gte=1) == {held.sku, out.sku}
    assert skus(reserved_quantity__lte=0) == {free.sku, lapsed.sku}
    assert staff.get("/api/products/", {"available_quantity__gte": "1.5"}).status_code == 400


def test_products_csv_has_reserved_and_available(staff):
    product = make_product(stock_quantity=10)
    reserve(product, 4)

    response = staff.get("/api/products/", {"format": "csv"})

    lines = b"".join(response.streaming_content).decode().splitlines()
    header = lines[0].split(",")
    row = dict(zip(header, lines[1].split(","), strict=False))
    assert (row["stock_quantity"], row["reserved_quantity"], row["available_quantity"]) == (
        "10",
        "4",
        "6",
    )


# Roles and idempotency


def test_warehouse_staff_and_admins_may_reserve_fulfil_and_release(api_client):
    product = make_product(stock_quantity=10)
    for client in (token_client(make_user("staff")), api_client):
        reservation_id = post_reserve(client, product).json()["id"]
        assert client.post(f"/api/reservations/{reservation_id}/fulfil/").status_code == 200
        reservation_id = post_reserve(client, product).json()["id"]
        assert client.post(f"/api/reservations/{reservation_id}/release/").status_code == 200
        assert client.get("/api/reservations/").status_code == 200


def test_a_user_in_no_group_may_do_nothing_with_reservations():
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 1)
    nobody = token_client(make_user())

    assert post_reserve(nobody, product).status_code == 403
    assert nobody.post(f"/api/reservations/{reservation.pk}/fulfil/").status_code == 403
    assert nobody.post(f"/api/reservations/{reservation.pk}/release/").status_code == 403
    assert nobody.get("/api/reservations/").status_code == 403
    assert nobody.get(f"/api/products/{product.pk}/reservations/").status_code == 403
    assert token_client().get("/api/reservations/").status_code == 401


def test_a_retried_reservation_with_its_idempotency_key_holds_once(staff):
    product = make_product(stock_quantity=10)

    first = staff.post(
        reserve_url(product), {"quantity": 4}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    again = staff.post(
        reserve_url(product), {"quantity": 4}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    other = staff.post(
        reserve_url(product), {"quantity": 5}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 422)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Product.objects.get(pk=product.pk).reserved_quantity == 4


def test_a_retried_fulfilment_with_its_idempotency_key_ships_once(staff):
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 4)
    url = f"/api/reservations/{reservation.pk}/fulfil/"

    first = staff.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="ship-1")
    again = staff.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="ship-1")
    released = staff.post(
        f"/api/reservations/{reservation.pk}/release/", HTTP_IDEMPOTENCY_KEY="rel-1"
    )

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert released.status_code == 409
    assert Product.objects.get(pk=product.pk).stock_quantity == 6
    assert StockMovement.objects.filter(product=product, kind="decrement").count() == 1


def test_options_describe_what_each_reservation_endpoint_takes(staff):
    product = make_product(stock_quantity=10)
    reservation = reserve(product, 1)

    def described(url):
        actions = staff.options(url).json().get("actions", {})
        return {
            method: {name for name, field in fields.items() if not field["read_only"]}
            for method, fields in actions.items()
        }

    assert described(f"/api/products/{product.pk}/reservations/") == {
        "POST": {"quantity", "expires_in", "reference"}
    }
    assert described(f"/api/reservations/{reservation.pk}/fulfil/") == {"POST": {"quantity"}}
    assert described(f"/api/reservations/{reservation.pk}/release/") == {"POST": set()}


@pytest.mark.skipif(not ON_POSTGRES, reason="the worker's tasks exist on PostgreSQL only")
def test_the_worker_tidies_lapsed_holds_every_10_seconds():
    from procrastinate.contrib.django import app

    from reservations import tasks

    periodic = {p.periodic_id: p for p in app.periodic_registry.periodic_tasks.values()}
    assert periodic["expire-reservations"].cron == "* * * * * */10"
    product = make_product(stock_quantity=10)
    reserve(product, 1)
    lapse(reserve(product, 2))

    tasks.expire_reservations(timestamp=0)

    assert Reservation.objects.filter(state="expired").count() == 1
    assert Product.objects.get(pk=product.pk).reserved_quantity == 1


def test_reservation_operations_are_counted_by_kind_and_outcome(staff):
    from products.tests.test_metrics import scrape, stock_operations

    product = make_product(stock_quantity=5)
    before = scrape()
    held = post_reserve(staff, product, quantity=5).json()["id"]
    post_reserve(staff, product, quantity=1)
    staff.post(f"/api/reservations/{held}/fulfil/")
    staff.post(f"/api/reservations/{held}/release/")

    after = scrape()
    for kind, outcome in [
        ("reserve", "ok"),
        ("reserve", "insufficient_available"),
        ("fulfil", "ok"),
        ("release", "reservation_not_active"),
    ]:
        moved = stock_operations(after, kind, outcome) - stock_operations(before, kind, outcome)
        assert moved == 1, (kind, outcome)


def test_reservations_are_written_as_their_serializer_writes_them():
    from reservations import services
    from reservations.serializers import (
        ReservationSerializer,
        represent_reservation,
        represent_reservations,
    )

    product = make_product(stock_quantity=10)
    _, fulfilled, lapsed = (reserve(product, 1, reference=f"SO-{n}") for n in range(3))
    services.fulfil(reservation_id=fulfilled.pk)
    lapse(lapsed)
    reservations = list(Reservation.objects.select_related("created_by").order_by("id"))
    expected = [dict(ReservationSerializer(r).data) for r in reservations]

    assert [r["state"] for r in expected] == ["active", "fulfilled", "expired"]
    assert represent_reservations(reservations) == expected
    assert [represent_reservation(r) for r in reservations] == expected
