"""One SKU rule (normalize_sku) and one set of field rules, in every entry point.

The cases come from an outside attack on the API (issue 12): a bulk adjustment that put
two lines on the wrong product, lookups that disagreed with each other, look-alike SKUs
stored as separate products, and an admin form that saved what the API refuses.
"""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError

from products import services
from products.models import Product, StockMovement
from products.text import normalize_sku

from .conftest import make_product

pytestmark = pytest.mark.django_db

ADMIN_ADD = "/admin/products/product/add/"

# (stored SKU, another spelling of the same SKU)
SAME_SKU = [
    ("ABC-1", "abc-1"),
    ("ABC-1", "ＡＢＣ-1"),  # fullwidth
    ("ZW-2", "Z\u200bW-2"),  # zero-width space
    ("BOM-3", "BOM-3\ufeff"),  # trailing byte-order mark
    ("caf\u00e9-4", "cafe\u0301-4"),  # composed and decomposed é
    ("STRASSE-1", "straße-1"),
    ("\u212a-1", "k-1"),  # Kelvin sign
    ("ΑΣ-1", "ας-1"),  # final sigma
    ("İ-X3", "i\u0307-x3"),  # dotted capital I and i + combining dot
    ("SP 1", "  sp   1 "),  # spaces around and between
]


@pytest.mark.parametrize(("stored", "spelling"), SAME_SKU)
def test_another_spelling_of_a_sku_is_the_same_product_everywhere(api_client, stored, spelling):
    product = make_product(sku=stored, stock_quantity=10)

    created = api_client.post(
        "/api/products/",
        {"sku": spelling.replace("\u200b", "").replace("\ufeff", ""), "name": "Twin"},
        format="json",
    )
    by_filter = api_client.get("/api/products/", {"sku": spelling}).json()["results"]
    movements = api_client.get("/api/movements/", {"sku": spelling}).json()["results"]
    bulk = api_client.post(
        "/api/stock-adjustments/", {"lines": [{"sku": spelling, "delta": -3}]}, format="json"
    )

    assert normalize_sku(stored) == normalize_sku(spelling)
    assert created.status_code == 409
    assert created.json()["code"] == "duplicate_sku"
    assert created.json()["existing_product"] == product.pk
    assert [p["id"] for p in by_filter] == [product.pk]
    assert {m["product"] for m in movements} == {product.pk}
    assert bulk.status_code == 200, bulk.json()
    assert bulk.json()["movements"][0]["product"] == product.pk
    assert Product.objects.get().stock_quantity == 7


def test_a_bulk_adjustment_moves_each_lines_own_product(api_client):
    """`İ-X3` and `i-x3` are two SKUs (a dotted capital I is not an i): each line moves
    its own product, whatever SQL's LOWER or Python's lower() would say."""
    dotted = make_product(sku="İ-X3", stock_quantity=10)
    plain = make_product(sku="i-x3", stock_quantity=10)
    greek = make_product(sku="ΑΣ-1", stock_quantity=10)

    response = api_client.post(
        "/api/stock-adjustments/",
        {
            "lines": [
                {"sku": "İ-X3", "delta": 1},
                {"sku": "I-X3", "delta": 2},
                {"sku": "ας-1", "delta": 4},
            ]
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert [m["product"] for m in response.json()["movements"]] == [dotted.pk, plain.pk, greek.pk]
    stock = dict(Product.objects.values_list("pk", "stock_quantity"))
    assert stock == {dotted.pk: 11, plain.pk: 12, greek.pk: 14}


def test_the_movements_sku_filter_lists_only_that_skus_movements(api_client):
    make_product(sku="İ-X3", stock_quantity=5)
    plain = make_product(sku="i-x3", stock_quantity=5)

    movements = api_client.get("/api/movements/", {"sku": "I-X3"}).json()["results"]

    assert [m["product"] for m in movements] == [plain.pk]


def test_a_sku_filter_with_spaces_around_finds_the_product(api_client):
    product = make_product(sku="SP-1")

    results = api_client.get("/api/products/", {"sku": " SP-1"}).json()["results"]

    assert [p["id"] for p in results] == [product.pk]


def test_renaming_a_product_to_another_spelling_of_its_own_sku_is_allowed(api_client):
    product = make_product(sku="abc-1")

    response = api_client.patch(f"/api/products/{product.pk}/", {"sku": "ＡＢＣ-1"}, format="json")

    assert response.status_code == 200
    product.refresh_from_db()
    assert (product.sku, product.sku_key) == ("ＡＢＣ-1", "abc-1")


def test_renaming_a_product_to_another_products_sku_is_a_409(api_client):
    taken = make_product(sku="STRASSE-1")
    product = make_product(sku="OTHER-1")

    response = api_client.patch(f"/api/products/{product.pk}/", {"sku": "straße-1"}, format="json")

    assert response.status_code == 409
    assert response.json()["existing_product"] == taken.pk
    product.refresh_from_db()
    assert product.sku == "OTHER-1"


def test_the_database_refuses_a_second_product_with_the_same_key():
    make_product(sku="ABC-1")

    with pytest.raises(IntegrityError, match=r"product_sku_key_unique|products_product\.sku_key"):
        Product.objects.create(sku="ａｂｃ-1", name="Straight to the database")


def test_movements_record_the_sku_key_of_their_product():
    product = make_product(sku="ＡＢＣ-7", stock_quantity=3)

    assert StockMovement.objects.get(product=product).sku_key == "abc-7"


def test_adjust_stock_command_finds_a_product_by_any_spelling():
    product = make_product(sku="STRASSE-9", stock_quantity=4)

    call_command("adjust_stock", "straße-9", "--increment", "2", stdout=io.StringIO())

    product.refresh_from_db()
    assert product.stock_quantity == 6


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-12345-xyz")
    client.force_login(user)
    return client


@pytest.mark.parametrize("term", ["i-x3", "I-X3", "ｉ-ｘ3", " i-x3 ", "x3"])
def test_admin_search_finds_a_sku_by_the_same_rule(admin_client, term):
    plain = make_product(sku="i-x3", name="Plain")
    make_product(sku="İ-X3", name="Dotted")
    make_product(sku="OTHER", name="Other")

    results = admin_client.get("/admin/products/product/", {"q": term}).context["cl"].result_list

    shown = {p.pk for p in results}
    assert plain.pk in shown
    assert "OTHER" not in {p.sku for p in results}


def test_admin_movement_search_finds_a_sku_by_the_same_rule(admin_client):
    product = make_product(sku="STRASSE-2", stock_quantity=3)
    make_product(sku="OTHER-2", stock_quantity=3)

    response = admin_client.get("/admin/products/stockmovement/", {"q": "straße-2"})

    assert {m.product_id for m in response.context["cl"].result_list} == {product.pk}


# Field rules: what the API refuses, the admin and the services refuse too.

BAD_SKUS = {
    "newline": "AB\nC-1",
    "bell": "AB\x07C",
    "tab": "AB\tC",
    "right-to-left override": "\u202eABC",
    "only zero-width": "\u200b\u200b",
    "zero-width inside": "A\u200bB",
    "line separator": "A\u2028B",
}
BAD_NAMES = {"two lines": "First line\nSecond line", "bell": "Bell\x07", "only spaces": "   "}


def admin_add(admin_client, **fields):
    data = {"sku": "GOOD-1", "name": "Good", "description": "", "price": "1.00"}
    data |= {"stock_quantity": "0", "low_stock_threshold": "0", **fields}
    return admin_client.post(ADMIN_ADD, data)


@pytest.mark.parametrize("sku", BAD_SKUS.values(), ids=BAD_SKUS.keys())
def test_a_sku_the_api_refuses_is_refused_by_the_admin_and_the_service(
    admin_client, api_client, sku
):
    api = api_client.post("/api/products/", {"sku": sku, "name": "Bad"}, format="json")
    admin = admin_add(admin_client, sku=sku)

    assert api.status_code == 400
    assert admin.status_code == 200  # the form again, with its errors
    assert "sku" in admin.context["adminform"].form.errors
    with pytest.raises(ValidationError) as refused:
        services.create_product(sku=sku, name="Bad")
    assert "sku" in refused.value.message_dict
    assert not Product.objects.exists()


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_name_the_api_refuses_is_refused_by_the_admin_and_the_service(
    admin_client, api_client, name
):
    api = api_client.post("/api/products/", {"sku": "N-1", "name": name}, format="json")
    admin = admin_add(admin_client, name=name)

    assert api.status_code == 400
    assert "name" in admin.context["adminform"].form.errors
    with pytest.raises(ValidationError):
        services.create_product(sku="N-1", name=name)
    assert not Product.objects.exists()


def test_a_product_added_in_the_admin_can_be_put_back_unchanged_through_the_api(
    admin_client, api_client
):
    response = admin_add(admin_client, sku=" Ｗ-1 ", name="Widget, large", description="Two\nlines")
    product = Product.objects.get()
    body = api_client.get(f"/api/products/{product.pk}/").json()
    fields = ["sku", "name", "description", "price", "stock_quantity", "low_stock_threshold"]

    put = api_client.put(
        f"/api/products/{product.pk}/", {field: body[field] for field in fields}, format="json"
    )

    assert response.status_code == 302
    assert put.status_code == 200, put.json()
    assert put.json()["sku"] == "Ｗ-1"


def test_an_update_is_judged_on_the_fields_it_changes():
    """A product saved before a rule existed can still have its price changed."""
    product = make_product(sku="OLD-1")
    Product.objects.filter(pk=product.pk).update(name="Saved\nbefore the rule")

    services.update_product(product_id=product.pk, changes={"price": "2.00"})
    with pytest.raises(ValidationError):
        services.update_product(product_id=product.pk, changes={"name": "Still\ntwo lines"})


def test_admin_stock_action_applies_the_ledgers_rules_to_the_reference(admin_client):
    product = make_product(sku="REF-1", stock_quantity=5)
    data = {
        "action": "increment_stock",
        "_selected_action": [product.pk],
        "apply": "1",
        "quantity": "1",
        "reference": "PO-1\nPO-2",
    }

    response = admin_client.post("/admin/products/product/", data)

    assert response.status_code == 200
    assert "reference" in response.context["form"].errors
    product.refresh_from_db()
    assert product.stock_quantity == 5


def test_sku_report_lists_products_that_are_one_sku_and_fields_that_break_the_rules():
    first = make_product(sku="ABC-1")
    twin = make_product(sku="TWIN")
    # Rows from before the rule, written around it as an old release could have.
    Product.objects.filter(pk=twin.pk).update(sku="ａｂｃ-1", sku_key="legacy")
    Product.objects.filter(pk=first.pk).update(name="Two\nlines")
    invisible = make_product(sku="INVISIBLE")
    Product.objects.filter(pk=invisible.pk).update(sku="\u200b", sku_key="legacy-2")
    out = io.StringIO()

    with pytest.raises(CommandError):
        call_command("sku_report", stdout=out)

    report = out.getvalue()
    assert f"product {first.pk} 'ABC-1', product {twin.pk} 'ａｂｃ-1'" in report
    assert f"Product {first.pk}: name" in report
    assert f"Nothing visible: product {invisible.pk} '\\u200b'" in report
    assert f"Product {invisible.pk}: sku" in report
    assert (
        "1 group(s) of products with one SKU; 1 SKU(s) with nothing visible; 2 field(s)" in report
    )


@pytest.mark.parametrize("sku", ["\U0001d173", "AB\U000e0041", "\U000110bd-1"])
def test_format_characters_beyond_the_bmp_count_as_characters_everywhere(api_client, sku):
    """The schema's pattern cannot name them, so no rule treats them as invisible: such a
    SKU is stored, and is its own SKU (never a 500 for an empty identity)."""
    response = api_client.post("/api/products/", {"sku": sku, "name": "Odd"}, format="json")

    assert response.status_code == 201, response.json()
    assert Product.objects.get().sku_key == normalize_sku(sku) != ""


def test_a_name_of_format_characters_only_is_refused(api_client):
    response = api_client.post(
        "/api/products/", {"sku": "FMT-1", "name": "\u2066\u00ad"}, format="json"
    )

    assert response.status_code == 400
    assert "name" in response.json()["errors"]


@pytest.mark.parametrize("field", ["sku", "name"])
def test_the_services_refuse_text_with_space_around_it(field):
    """The API and the admin trim before they validate; a direct caller gets a refusal
    rather than a SKU that a PUT of it unchanged would silently change."""
    fields = {"sku": "PAD-2", "name": "Padded"}
    fields[field] = f" {fields[field]} "

    with pytest.raises(ValidationError) as refused:
        services.create_product(**fields)

    assert field in refused.value.message_dict
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    "lookalike",
    ["ABC-1x\ufe0f", "A\u034fBC-1x", "ABC\u3164-1x", "ABC-1x\u180b", "\u115fABC-1x"],
    ids=["variation selector", "grapheme joiner", "hangul filler", "mongolian fvs", "choseong"],
)
def test_characters_that_show_nothing_make_no_second_sku(api_client, lookalike):
    """Found from the outside: default-ignorable characters beyond category Cf."""
    product = make_product(sku="ABC-1x", stock_quantity=5)

    created = api_client.post("/api/products/", {"sku": lookalike, "name": "Twin"}, format="json")
    bulk = api_client.post(
        "/api/stock-adjustments/", {"lines": [{"sku": lookalike, "delta": 1}]}, format="json"
    )

    assert created.status_code == 400
    assert bulk.json()["movements"][0]["product"] == product.pk
    assert Product.objects.count() == 1


@pytest.mark.parametrize("name", ["\u202eevil", "a\u2066b", "x\u202ay"])
def test_a_name_with_a_bidi_override_is_refused_everywhere(admin_client, api_client, name):
    api = api_client.post("/api/products/", {"sku": "BIDI-1", "name": name}, format="json")
    admin = admin_add(admin_client, sku="BIDI-1", name=name)

    assert api.status_code == 400
    assert "name" in admin.context["adminform"].form.errors
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price", "1e5"),
        ("price", "+3"),
        ("price", "1_000"),
        ("price", " 12.5 "),
        ("stock_quantity", "١٢"),
        ("stock_quantity", "+5"),
        ("stock_quantity", "05"),
        ("low_stock_threshold", "1_0"),
    ],
)
def test_the_admin_reads_numbers_as_the_api_does(admin_client, field, value):
    response = admin_add(admin_client, **{field: value})

    assert field in response.context["adminform"].form.errors
    assert not Product.objects.exists()
