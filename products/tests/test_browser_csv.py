"""CSV in and out of the admin in a real browser (headless Chromium, as test_browser):
export the product list and read it back; import a file with one bad row (the dry run
shows it, nothing is applied), fix it and import it."""

import csv
import io

import pytest

from products.models import Product, StockMovement

from .conftest import make_product
from .test_browser import PASSWORD, browser_page  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "sku,name,description,price,stock_quantity,low_stock_threshold\n"


def test_a_manager_exports_products_and_imports_a_file_after_fixing_its_bad_row(
    browser_page,  # noqa: F811
    live_server,
    django_user_model,
    tmp_path,
):
    django_user_model.objects.create_superuser("manager", "m@example.com", PASSWORD)
    make_product(sku="PALLET-1", name="Pallet jack", stock_quantity=30, low_stock_threshold=5)
    make_product(sku="TAPE-9", name="=Packing tape", stock_quantity=4, low_stock_threshold=5)
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/?next=/admin/products/product/")
    page.fill("#id_username", "manager")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    page.click("text=Yes")  # below requirement: the export carries the filter
    with page.expect_download() as download:
        page.click("text=Export CSV")
    text = download.value.path().read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [(row["sku"], row["name"]) for row in exported] == [("TAPE-9", "'=Packing tape")]

    bad = tmp_path / "delivery.csv"
    bad.write_text(HEADER + "tape-9,Packing tape,,3.10,40,5\nNEW-1,Shrink wrap,,abc,12,2\n")
    page.goto(f"{live_server.url}/admin/products/product/")
    page.click("text=Import")
    page.set_input_files("#id_import_file", str(bad))
    page.click("input[value=Submit]")
    errors = page.locator(".validation-error-list")
    errors.wait_for()
    assert 'Must be an amount like "12.50"' in errors.inner_text()
    assert page.locator("input[name=confirm]").count() == 0
    every_row = page.locator("#every-row").inner_text()
    assert "update\tTAPE-9 — Packing tape" in every_row
    assert "invalid\tprice: Must be an amount" in every_row
    page.screenshot(path=str(tmp_path / "dry-run.png"), full_page=True)
    assert not Product.objects.filter(sku="NEW-1").exists()
    assert Product.objects.get(sku="TAPE-9").stock_quantity == 4

    good = tmp_path / "delivery-fixed.csv"
    good.write_text(HEADER + "tape-9,Packing tape,,3.10,40,5\nNEW-1,Shrink wrap,,8.00,12,2\n")
    page.set_input_files("#id_import_file", str(good))
    page.click("input[value=Submit]")
    page.click("input[name=confirm]")
    message = page.locator(".messagelist")
    message.wait_for()
    page.screenshot(path=str(tmp_path / "imported.png"), full_page=True)

    assert "1 new (NEW-1), 1 updated (TAPE-9)" in message.inner_text()
    assert Product.objects.get(sku="TAPE-9").stock_quantity == 40
    assert StockMovement.objects.filter(source="admin", user__username="manager").count() == 2
