"""CSV in and out: the admin's exports and import, and the API's CSV lists."""

import csv
import io
import os
import tempfile
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from products import services
from products.exports import neutralise
from products.imports import ProductResource
from products.models import Product, StockMovement

from .conftest import make_product, make_user, token_client

pytestmark = pytest.mark.django_db

PRODUCTS = "/admin/products/product/"
MOVEMENTS = "/admin/products/stockmovement/"
HEADER = "sku,name,description,price,stock_quantity,low_stock_threshold\n"


def rows_of(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def manager(client):
    """An inventory admin in the admin site."""
    user = make_user("admin", is_staff=True)
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def staff(client):
    """Warehouse staff: may read products and move stock, not import or read the ledger."""
    client.force_login(make_user("staff", is_staff=True))
    return client


def upload(client, text: str, name: str = "products.csv"):
    """The import's first step: the dry run, with its preview."""
    return client.post(
        f"{PRODUCTS}import/",
        {"import_file": SimpleUploadedFile(name, text.encode()), "format": "0", "resource": "0"},
    )


def confirm(client, preview):
    form = preview.context["confirm_form"]
    return client.post(f"{PRODUCTS}process_import/", form.initial, follow=True)


def outcomes(preview) -> list[str]:
    return [row.import_type for row in preview.context["result"].rows]


# Formula injection


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("BOLT-1", "BOLT-1"),
        (-5, -5),  # a number stays a number: a spreadsheet does not run it
        (Decimal("1.50"), Decimal("1.50")),
        (None, ""),
    ],
)
def test_text_that_a_spreadsheet_would_run_is_neutralised_and_numbers_are_not(value, expected):
    assert neutralise(value) == expected


# Admin: export


def test_product_export_streams_what_the_changelist_shows_filtered_and_neutralised(manager):
    make_product(sku="LOW-1", name="=cmd|' /C calc'!A0", stock_quantity=1, low_stock_threshold=5)
    make_product(sku="OK-1", stock_quantity=9, low_stock_threshold=5)

    everything = rows_of(manager.get(f"{PRODUCTS}csv/"))
    below = rows_of(manager.get(f"{PRODUCTS}csv/", {"below_requirement": "yes"}))
    searched = rows_of(manager.get(f"{PRODUCTS}csv/", {"q": "ok-1"}))

    assert [row["sku"] for row in everything] == ["LOW-1", "OK-1"]
    assert [row["sku"] for row in below] == ["LOW-1"]
    assert below[0]["name"] == "'=cmd|' /C calc'!A0"
    assert below[0]["stock_quantity"] == "1"
    assert [row["sku"] for row in searched] == ["OK-1"]


def test_the_changelist_links_to_the_export_with_its_filters(manager):
    response = manager.get(PRODUCTS, {"below_requirement": "yes"})

    assert f'href="{PRODUCTS}csv/?below_requirement=yes"' in response.content.decode()


def test_ledger_export_takes_the_changelist_filters_and_a_date_range(manager):
    product = make_product(sku="LEDGER-1", stock_quantity=10)
    services.decrement_stock(product_id=product.pk, quantity=4, audit=services.Audit(note="-x"))
    old = StockMovement.objects.get(kind="initial")
    old.created_at = timezone.now() - timedelta(days=10)
    old.save()
    # As the admin's own date filter writes it ("Past 7 days" and the like).
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    since = str(midnight - timedelta(days=1))

    in_range = rows_of(manager.get(f"{MOVEMENTS}csv/", {"created_at__gte": since}))
    decrements = rows_of(manager.get(f"{MOVEMENTS}csv/", {"kind__exact": "decrement"}))

    assert [row["kind"] for row in in_range] == ["decrement"]
    assert decrements[0]["delta"] == "-4"  # a number, not neutralised
    assert decrements[0]["note"] == "'-x"  # text, neutralised
    assert decrements[0]["sku"] == "LEDGER-1"
    assert f'href="{MOVEMENTS}csv/"' in manager.get(MOVEMENTS).content.decode()


def test_staff_may_export_products_but_not_the_ledger_they_may_not_read(staff):
    make_product(sku="STAFF-1")

    assert [row["sku"] for row in rows_of(staff.get(f"{PRODUCTS}csv/"))] == ["STAFF-1"]
    assert staff.get(f"{MOVEMENTS}csv/").status_code == 403


# Admin: import


def test_dry_run_lists_every_rows_outcome_and_error_and_writes_nothing(manager):
    make_product(sku="ABC-1", name="Old name", stock_quantity=5)
    make_product(sku="SAME-1", name="Same", price=Decimal("1.00"), stock_quantity=3)
    text = (
        HEADER
        + "NEW-1,New thing,,2.50,7,1\n"
        + "abc-1,New name,,9.99,5,2\n"
        + "SAME-1,Same,,1.00,3,2\n"
        + "BAD-1,Bad,,1e5,-3,0\n"
    )

    preview = upload(manager, text)

    assert preview.status_code == 200
    assert outcomes(preview) == ["new", "update", "skip", "invalid"]
    bad = preview.context["result"].rows[3].validation_error.message_dict
    assert set(bad) == {"price", "stock_quantity"}
    assert "confirm_form" not in preview.context  # nothing to apply while a row is bad
    html = preview.content.decode()
    assert "Ensure this value is greater than or equal to 0." in html
    every_row = html.split('id="every-row"')[1]
    for outcome in ("new", "update", "unchanged", "invalid"):
        assert f'<td class="import-type">{outcome}</td>' in every_row
    assert "NEW-1 — New thing" in every_row
    assert "ABC-1 — New name" in every_row  # what the update would make of it
    assert not Product.objects.filter(sku_key__in=["new-1", "bad-1"]).exists()
    assert Product.objects.get(sku="ABC-1").name == "Old name"
    assert StockMovement.objects.count() == 2  # the two initial stocks


def test_applied_import_goes_through_the_services_onto_the_ledger_and_names_the_products(manager):
    make_product(sku="ABC-1", name="Old name", stock_quantity=5)
    text = HEADER + "NEW-1,New thing,A box,2.50,7,1\nabc-1,New name,,9.99,12,2\n"

    preview = upload(manager, text, name="delivery.csv")
    assert outcomes(preview) == ["new", "update"]
    assert StockMovement.objects.count() == 1  # the dry run was rolled back
    response = confirm(manager, preview)

    new, updated = Product.objects.get(sku="NEW-1"), Product.objects.get(sku_key="abc-1")
    assert (new.name, new.price, new.stock_quantity) == ("New thing", Decimal("2.50"), 7)
    assert updated.sku == "ABC-1"  # found by the SKU rule, its spelling kept
    assert (updated.name, updated.stock_quantity, updated.version) == ("New name", 12, 2)
    initial = StockMovement.objects.get(product=new)
    adjustment = StockMovement.objects.get(product=updated, kind="adjustment")
    for movement in (initial, adjustment):
        assert movement.source == "admin"
        assert movement.user == manager.user
        assert movement.note == "Imported from delivery.csv"
    assert (initial.kind, initial.delta) == ("initial", 7)
    assert (adjustment.delta, adjustment.quantity_after) == (7, 12)
    assert "Import finished: 1 new (NEW-1), 1 updated (ABC-1), 0 unchanged." in (
        response.content.decode()
    )


def test_a_row_refused_when_the_import_is_applied_rolls_back_every_row(manager):
    preview = upload(manager, HEADER + "NEW-1,One,,1.00,1,0\nNEW-2,Two,,1.00,1,0\n")
    # The file changes between the preview and the confirmation (or the database does):
    # the second row is now refused when applied.
    path = os.path.join(
        tempfile.gettempdir(), preview.context["confirm_form"].initial["import_file_name"]
    )
    with open(path, "w", encoding="utf-8") as changed:
        changed.write(HEADER + "NEW-1,One,,1.00,1,0\nNEW-2,,,1.00,1,0\n")

    response = confirm(manager, preview)

    assert not Product.objects.exists()
    assert not StockMovement.objects.exists()
    html = response.content.decode()
    assert "Nothing was imported: row 2: name: This field is required." in html


def test_resource_import_is_all_or_nothing_without_the_admin():
    make_product(sku="KEEP-1", stock_quantity=4)
    rows = HEADER + "keep-1,Kept,,1.00,9,0\nNEW-9,New,,1.00,1,0\nkeep-1,Kept,,1.00,-1,0\n"
    dataset = __import__("tablib").Dataset().load(rows, format="csv")

    result = ProductResource().import_data(
        dataset, dry_run=False, use_transactions=True, rollback_on_validation_errors=True
    )

    assert result.has_validation_errors()
    assert Product.objects.get(sku="KEEP-1").stock_quantity == 4
    assert not Product.objects.filter(sku="NEW-9").exists()
    assert StockMovement.objects.count() == 1


def test_an_import_making_two_skus_one_is_refused_by_the_sku_rule(manager):
    make_product(sku="ABC-1")
    make_product(sku="XYZ-1")

    # Found by its SKU, a product keeps it: a row cannot rename one onto another's SKU,
    # and a new SKU that is an existing one under the rule updates that one.
    preview = upload(manager, HEADER + "ＡＢＣ-1,Wide,,1.00,1,0\n")

    assert outcomes(preview) == ["update"]
    assert Product.objects.count() == 2


def test_only_inventory_admins_may_import(staff):
    assert staff.get(f"{PRODUCTS}import/").status_code == 403
    assert "Import" not in staff.get(PRODUCTS).content.decode().split("object-tools")[1][:300]


# API


def test_api_products_as_csv_with_the_json_filters_by_format_or_accept():
    client = token_client(make_user("staff"))
    make_product(sku="LOW-1", name="@risky", stock_quantity=1, low_stock_threshold=5)
    make_product(sku="OK-1", stock_quantity=9, low_stock_threshold=5)

    by_format = client.get("/api/products/", {"format": "csv", "below_requirement": "true"})
    by_accept = client.get("/api/products/", {"ordering": "-sku"}, HTTP_ACCEPT="text/csv")

    rows = rows_of(by_format)
    assert [row["sku"] for row in rows] == ["LOW-1"]
    assert rows[0]["name"] == "'@risky"
    assert [row["sku"] for row in rows_of(by_accept)] == ["OK-1", "LOW-1"]
    assert "attachment" in by_format["Content-Disposition"]


def test_api_csv_is_every_matching_row_not_one_page():
    client = token_client(make_user("staff"))
    for n in range(3):
        make_product(sku=f"P-{n}")

    response = client.get("/api/products/", {"format": "csv", "page_size": "1", "page": "2"})

    assert [row["sku"] for row in rows_of(response)] == ["P-0", "P-1", "P-2"]


@pytest.mark.parametrize(
    "query", [{"page": "0"}, {"page_size": "501"}, {"cursor": "x"}, {"nope": "1"}]
)
def test_api_csv_checks_its_parameters_and_refuses_as_problem_json(query):
    client = token_client(make_user("staff"))

    response = client.get("/api/products/", {"format": "csv", **query})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_api_movements_as_csv_with_filters_and_a_date_range():
    client = token_client(make_user("admin"))
    product = make_product(sku="MOVE-1", stock_quantity=10)
    services.decrement_stock(product_id=product.pk, quantity=3)
    old = StockMovement.objects.get(kind="initial")
    old.created_at = timezone.now() - timedelta(days=10)
    old.save()
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")

    ledger = client.get("/api/movements/", {"format": "csv", "created_after": since})
    by_kind = client.get("/api/movements/", {"kind": "initial"}, HTTP_ACCEPT="text/csv")
    history = client.get(f"/api/products/{product.pk}/movements/", {"format": "csv"})

    assert [(row["kind"], row["delta"]) for row in rows_of(ledger)] == [("decrement", "-3")]
    assert [row["kind"] for row in rows_of(by_kind)] == ["initial"]
    assert [row["kind"] for row in rows_of(history)] == ["decrement", "initial"]


def test_api_movements_csv_needs_the_right_to_read_the_ledger():
    client = token_client(make_user("staff"))

    response = client.get("/api/movements/", {"format": "csv"})

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_csv_is_offered_only_on_the_lists(api_client, product):
    assert api_client.get(f"/api/products/{product.pk}/", {"format": "csv"}).status_code == 400


def test_an_export_is_written_in_pieces_as_rows_arrive(manager, monkeypatch):
    monkeypatch.setattr("products.exports.CHUNK_ROWS", 2)
    for n in range(5):
        make_product(sku=f"PIECE-{n}")

    response = manager.get(f"{PRODUCTS}csv/")
    pieces = list(response.streaming_content)

    assert len(pieces) == 3  # the header and 1 row, then 2 and 2
    rows = list(csv.DictReader(io.StringIO(b"".join(pieces).decode())))
    assert [row["sku"] for row in rows] == [f"PIECE-{n}" for n in range(5)]


def test_the_ledgers_csv_costs_the_same_queries_however_many_rows():
    client = token_client(make_user("admin"))
    product = make_product(sku="Q-1", stock_quantity=50)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            b"".join(client.get("/api/movements/", {"format": "csv"}).streaming_content)
        return len(captured)

    few = queries()
    for _ in range(20):
        services.decrement_stock(
            product_id=product.pk, quantity=1, audit=services.Audit(user=make_user())
        )

    assert queries() == few


@pytest.fixture
def pooled(monkeypatch):
    """As under PgBouncer's transaction pooling: no server-side cursors; tiny chunks."""
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    monkeypatch.setattr("products.exports.CHUNK_ROWS", 2)


def test_without_server_side_cursors_an_export_reads_by_keyset_in_the_lists_order(pooled):
    client = token_client(make_user("admin"))
    names = ["Bolt", "Nut", "Bolt", "Washer", "Nut", "Bolt", "Anchor"]
    for n, name in enumerate(names):
        make_product(sku=f"K-{n}", name=name, price=Decimal(n % 3))

    for ordering in ("-name", "price,-sku", "-id"):
        as_json = client.get("/api/products/", {"ordering": ordering, "page_size": "100"})
        as_csv = client.get("/api/products/", {"ordering": ordering, "format": "csv"})

        with CaptureQueriesContext(connection) as captured:
            exported = [row["sku"] for row in rows_of(as_csv)]

        assert exported == [product["sku"] for product in as_json.json()["results"]]
        assert len(captured) == 4  # 7 rows, 2 at a time: one query per chunk


def test_without_server_side_cursors_the_admin_and_ledger_exports_read_by_keyset(pooled, manager):
    product = make_product(sku="KEY-3", stock_quantity=50)
    for sku in ("KEY-5", "KEY-1", "KEY-4", "KEY-2"):
        make_product(sku=sku)
    for quantity in range(1, 6):
        services.decrement_stock(product_id=product.pk, quantity=quantity)

    products = rows_of(manager.get(f"{PRODUCTS}csv/"))  # the admin's order: by SKU
    api = rows_of(
        token_client(manager.user).get("/api/movements/", {"format": "csv", "sku": "key-3"})
    )
    admin = rows_of(manager.get(f"{MOVEMENTS}csv/", {"q": "KEY-3"}))  # newest first

    assert [row["sku"] for row in products] == [f"KEY-{n}" for n in range(1, 6)]
    assert [row["delta"] for row in api] == ["-5", "-4", "-3", "-2", "-1", "50"]
    assert [row["delta"] for row in admin] == ["-5", "-4", "-3", "-2", "-1", "50"]


def test_a_keyset_follows_plain_columns_up_to_the_primary_key_only():
    from django.db.models.functions import Lower

    from products.exports import _keyset_ordering

    products = Product.objects.all()
    assert _keyset_ordering(products.order_by("-name")) == ["-name", "pk"]
    assert _keyset_ordering(products.order_by("price", "-id", "sku")) == ["price", "-id"]
    assert _keyset_ordering(products.order_by(Lower("name"))) is None
    assert _keyset_ordering(StockMovement.objects.order_by("user")) is None


@pytest.mark.parametrize(
    "text", ["- box of 100", "=SUM(A1)", "+1 spare", "@home", "'quoted", "plain"]
)
def test_an_import_reads_back_what_an_export_neutralised(text):
    from products.exports import unneutralise

    assert unneutralise(neutralise(text)) == text
