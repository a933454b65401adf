"""The Django admin, through the Django test client as warehouse staff would use it."""

import pytest
from django.contrib.auth import get_user_model
from django.utils.functional import empty

from products.models import Product, StockMovement

from .conftest import make_product, make_user

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/products/product/"


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-12345-xyz")
    client.force_login(user)
    return client


def run_action(admin_client, action: str, products, quantity=None):
    data = {"action": action, "_selected_action": [p.pk for p in products]}
    if quantity is not None:
        data.update(apply="1", quantity=quantity)
    return admin_client.post(CHANGELIST, data, follow=quantity is not None)


def test_changelist_shows_stock_threshold_and_below_requirement_flag(admin_client):
    make_product(sku="LOW-1", stock_quantity=1, low_stock_threshold=5)
    make_product(sku="OK-1", stock_quantity=9, low_stock_threshold=5)

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "LOW-1" in html
    assert "OK-1" in html
    assert "Below requirement" in html
    assert html.count("Reorder") == 1  # only LOW-1 is flagged


@pytest.mark.parametrize(("value", "expected"), [("yes", {"LOW-1"}), ("no", {"OK-1"})])
def test_below_requirement_filter(admin_client, value, expected):
    make_product(sku="LOW-1", stock_quantity=1, low_stock_threshold=5)
    make_product(sku="OK-1", stock_quantity=9, low_stock_threshold=5)

    response = admin_client.get(CHANGELIST, {"below_requirement": value})

    shown = {p.sku for p in response.context["cl"].result_list}
    assert shown == expected


def test_search_by_sku_and_name(admin_client):
    make_product(sku="FORK-7", name="Forklift battery")
    make_product(sku="TAPE-1", name="Packing tape")

    by_sku = admin_client.get(CHANGELIST, {"q": "fork-7"}).context["cl"].result_list
    by_name = admin_client.get(CHANGELIST, {"q": "tape"}).context["cl"].result_list

    assert [p.sku for p in by_sku] == ["FORK-7"]
    assert [p.sku for p in by_name] == ["TAPE-1"]


def test_stock_action_first_asks_for_the_quantity(admin_client):
    product = make_product(sku="A-1", stock_quantity=3)

    response = run_action(admin_client, "increment_stock", [product])

    assert response.status_code == 200
    assert b'name="quantity"' in response.content
    assert b"A-1" in response.content
    product.refresh_from_db()
    assert product.stock_quantity == 3


def test_increment_action_adds_to_each_selected_product_and_names_them(admin_client):
    products = [
        make_product(sku="INC-1", stock_quantity=3),
        make_product(sku="INC-2", stock_quantity=10),
    ]

    response = run_action(admin_client, "increment_stock", products, quantity=4)

    assert response.status_code == 200
    assert [Product.objects.get(pk=p.pk).stock_quantity for p in products] == [7, 14]
    assert "Stock incremented by 4 on 2 product(s): INC-1, INC-2." in response.content.decode()


def test_decrement_action_reports_insufficient_stock_and_changes_only_what_it_can(admin_client):
    enough = make_product(sku="ENOUGH", stock_quantity=10)
    short = make_product(sku="SHORT", stock_quantity=2)

    response = run_action(admin_client, "decrement_stock", [enough, short], quantity=5)

    html = response.content.decode()
    assert "SHORT: Insufficient stock: 5 requested but only 2 available." in html
    assert "Stock decremented by 5 on 1 product(s): ENOUGH." in html
    assert Product.objects.get(pk=enough.pk).stock_quantity == 5
    assert Product.objects.get(pk=short.pk).stock_quantity == 2


@pytest.mark.parametrize("quantity", ["0", "-3", "abc", ""])
def test_stock_action_with_a_bad_quantity_shows_the_form_again(admin_client, quantity):
    product = make_product(stock_quantity=3)

    response = run_action(admin_client, "decrement_stock", [product], quantity=quantity)

    assert response.status_code == 200
    assert response.context["form"].errors
    product.refresh_from_db()
    assert product.stock_quantity == 3


def test_add_form_creates_a_product_with_initial_stock(admin_client):
    data = {
        "sku": "NEW-1",
        "name": "New",
        "description": "",
        "price": "1.00",
        "stock_quantity": "12",
        "low_stock_threshold": "3",
    }

    response = admin_client.post(f"{CHANGELIST}add/", data)

    assert response.status_code == 302
    assert Product.objects.get(sku="NEW-1").stock_quantity == 12


def test_add_form_refuses_a_duplicate_sku_ignoring_case(admin_client):
    make_product(sku="dup-1")
    data = {"sku": "DUP-1", "name": "x", "price": "0", "stock_quantity": "0"}
    data["low_stock_threshold"] = "0"

    response = admin_client.post(f"{CHANGELIST}add/", data)

    assert response.status_code == 200
    assert "A product with this SKU already exists" in response.content.decode()
    assert Product.objects.count() == 1


def test_change_form_shows_stock_read_only_and_saves_other_fields(admin_client):
    product = make_product(sku="EDIT-1", name="Before", stock_quantity=8)
    url = f"{CHANGELIST}{product.pk}/change/"
    assert b'name="stock_quantity"' not in admin_client.get(url).content

    data = {"sku": "EDIT-1", "name": "After", "description": "", "price": "2.50"}
    data.update(low_stock_threshold="4", stock_quantity="999")
    response = admin_client.post(url, data)

    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.name, product.low_stock_threshold, product.stock_quantity) == ("After", 4, 8)


# Roles in the admin


def logged_in(client, role: str | None):
    client.force_login(make_user(role, is_staff=True))
    return client


def test_warehouse_staff_see_products_and_can_run_the_stock_actions(client):
    staff = logged_in(client, "staff")
    product = make_product(sku="S-1", stock_quantity=10)

    changelist = staff.get(CHANGELIST)
    assert changelist.status_code == 200
    actions = dict(changelist.context["action_form"].fields["action"].choices)
    assert {"increment_stock", "decrement_stock"} <= actions.keys()

    run_action(staff, "decrement_stock", [product], quantity=3)
    product.refresh_from_db()
    assert product.stock_quantity == 7


def test_warehouse_staff_cannot_add_edit_or_delete_products(client):
    staff = logged_in(client, "staff")
    product = make_product(sku="S-1", name="Same", stock_quantity=10)
    change_url = f"{CHANGELIST}{product.pk}/change/"

    page = staff.get(change_url)
    assert page.status_code == 200  # view-only
    assert b'name="_save"' not in page.content
    edit = {"sku": "S-1", "name": "Changed", "price": "0", "low_stock_threshold": "0"}
    assert staff.post(change_url, edit).status_code == 403
    assert staff.get(f"{CHANGELIST}add/").status_code == 403
    assert staff.post(f"{CHANGELIST}{product.pk}/delete/", {"post": "yes"}).status_code == 403
    product.refresh_from_db()
    assert (product.name, product.stock_quantity) == ("Same", 10)


def test_staff_user_in_no_group_sees_no_products(client):
    nobody = logged_in(client, None)

    assert nobody.get(CHANGELIST).status_code == 403


def test_inventory_admins_can_add_products_in_the_admin(client):
    boss = logged_in(client, "admin")
    data = {"sku": "A-9", "name": "Added", "price": "0", "stock_quantity": "4"}
    data["low_stock_threshold"] = "1"

    assert boss.post(f"{CHANGELIST}add/", data).status_code == 302
    assert Product.objects.get(sku="A-9").stock_quantity == 4


def test_stock_actions_are_recorded_in_the_product_history(admin_client):
    product = make_product(stock_quantity=1)

    run_action(admin_client, "increment_stock", [product], quantity=2)

    history = admin_client.get(f"{CHANGELIST}{product.pk}/history/").content.decode()
    assert "Stock incremented by 2; now 3." in history


def test_product_page_shows_recent_movements_to_ledger_readers(admin_client):
    product = make_product(stock_quantity=1)
    run_action(admin_client, "increment_stock", [product], quantity=4)

    page = admin_client.get(f"{CHANGELIST}{product.pk}/change/").content.decode()

    assert "Last 20 stock movements" in page
    assert "<td>+4</td>" in page
    assert "<td>1 → 5</td>" in page
    assert "Full history" in page


def test_warehouse_staff_do_not_see_the_ledger_on_the_product_page(client):
    staff = logged_in(client, "staff")
    product = make_product(stock_quantity=1)

    page = staff.get(f"{CHANGELIST}{product.pk}/change/").content.decode()

    assert "stock movements" not in page


def test_admin_actions_are_recorded_with_the_user_and_the_admin_as_source(admin_client):
    product = make_product(stock_quantity=10)

    data = {"action": "decrement_stock", "_selected_action": [product.pk], "apply": "1"}
    data.update(quantity=3, reason="damaged", note="forklift", reference="INC-5")
    admin_client.post(CHANGELIST, data)

    movement = StockMovement.objects.get(kind="decrement")
    assert (movement.source, movement.reason, movement.note) == ("admin", "damaged", "forklift")
    assert movement.user.username == "boss"


def test_the_movement_list_in_the_admin_is_read_only(admin_client):
    product = make_product(stock_quantity=2)
    movement = product.movements.get()
    url = f"/admin/products/stockmovement/{movement.pk}/"

    assert admin_client.get("/admin/products/stockmovement/").status_code == 200
    assert (
        admin_client.get(
            f"/admin/products/stockmovement/?product__id__exact={product.pk}"
        ).status_code
        == 200
    )
    assert admin_client.get("/admin/products/stockmovement/add/").status_code == 403
    assert admin_client.post(f"{url}change/", {"delta": 5}).status_code == 403
    assert admin_client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    movement.refresh_from_db()
    assert movement.delta == 2


def test_an_api_request_builds_no_message_storage_and_sets_no_cookie(api_client):
    response = api_client.get("/api/products/")

    assert response.status_code == 200
    assert response.wsgi_request._messages._wrapped is empty  # made only when used
    assert "messages" not in response.cookies
