"""The admin: a product's page shows its active holds; admins release them from the
reservations list, through the same service as the API. (`admin_client` is
pytest-django's: a logged-in superuser.)"""

import pytest

from products.models import Product
from reservations.models import Reservation

from .conftest import lapse, make_product, make_user, reserve

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/reservations/reservation/"


def test_the_product_page_shows_its_active_reservations(admin_client):
    product = make_product(stock_quantity=10)
    reserve(product, 3, reference="SO-HELD")
    lapse(reserve(product, 2, reference="SO-LAPSED"))

    html = admin_client.get(f"/admin/products/product/{product.pk}/change/").content.decode()

    assert "SO-HELD" in html
    assert "SO-LAPSED" not in html
    assert "3 held, 7 available." in html
    assert f"{CHANGELIST}?product__id__exact={product.pk}&amp;state=active" in html


def test_the_product_list_shows_reserved_and_available(admin_client):
    product = make_product(sku="HELD-1", stock_quantity=10)
    reserve(product, 4)

    response = admin_client.get("/admin/products/product/")

    shown = response.context["cl"].result_list[0]
    assert (shown.held_quantity, shown.available_quantity) == (4, 6)
    assert "Available" in response.content.decode()


def test_admins_release_the_selected_reservations(admin_client):
    product = make_product(stock_quantity=10)
    held = [reserve(product, 2), reserve(product, 3)]
    other = reserve(product, 1)

    response = admin_client.post(
        CHANGELIST,
        {"action": "release", "_selected_action": [r.pk for r in held]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Released reservation(s)" in response.content.decode()
    assert set(Reservation.objects.filter(state="released").values_list("pk", flat=True)) == {
        r.pk for r in held
    }
    assert Reservation.objects.get(pk=other.pk).state == "active"
    assert Product.objects.get(pk=product.pk).reserved_quantity == 1


def test_releasing_an_ended_reservation_in_the_admin_says_so(admin_client):
    reservation = reserve(make_product(stock_quantity=10), 2)
    lapse(reservation)

    response = admin_client.post(
        CHANGELIST, {"action": "release", "_selected_action": [reservation.pk]}, follow=True
    )

    assert "is expired, not active" in response.content.decode()


def test_the_state_filter_is_the_state_at_this_instant(admin_client):
    product = make_product(stock_quantity=10)
    running = reserve(product, 1)
    lapsed = reserve(product, 1)
    lapse(lapsed)

    def listed(state):
        response = admin_client.get(CHANGELIST, {"state": state})
        return {r.pk for r in response.context["cl"].result_list}

    assert listed("active") == {running.pk}
    assert listed("expired") == {lapsed.pk}


def test_warehouse_staff_cannot_reach_the_admin_release_without_admin_access(client):
    user = make_user("staff")
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302  # not staff (is_staff): the admin's login page
