"""The admin in a real browser (headless Chromium driven by Playwright), as a warehouse
manager uses it: log in, read the dashboard, open a product and see its stock chart.

Needs a Chromium: Debian's (`apt-get install chromium`, which .ci/run does) or one at
CHROMIUM_PATH. Without one the test is skipped, saying so (and CI fails on a skip).
"""

import os
import shutil

import pytest

from products import services

from .conftest import make_product

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
PASSWORD = "a-browser-test-passphrase"


@pytest.fixture
def browser_page(live_server):
    if not CHROMIUM:
        pytest.skip("no Chromium: apt-get install chromium (or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop in this thread
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            yield page
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_a_manager_logs_in_reads_the_dashboard_and_a_product_s_chart(
    browser_page, live_server, django_user_model, tmp_path
):
    django_user_model.objects.create_superuser("manager", "m@example.com", PASSWORD)
    make_product(sku="PALLET-1", name="Pallet jack", stock_quantity=30, low_stock_threshold=5)
    empty = make_product(sku="TAPE-9", name="Packing tape", stock_quantity=4, low_stock_threshold=5)
    for quantity in (1, 2, 1):
        services.decrement_stock(product_id=empty.pk, quantity=quantity)
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "manager")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    urgent = page.locator("#urgent-products")
    urgent.wait_for()
    assert "TAPE-9" in urgent.inner_text()
    assert "PALLET-1" not in urgent.inner_text()
    assert "4 units out" in page.locator("#today-flows").inner_text()
    assert "TAPE-9\t-1\t1 → 0" in page.locator("#recent-movements").inner_text()
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    page.click("#urgent-products >> text=TAPE-9")
    chart = page.locator("svg#stock-chart")
    chart.wait_for()
    box = chart.bounding_box()
    points = page.locator("#stock-line").get_attribute("points").split()
    page.screenshot(path=str(tmp_path / "product.png"), full_page=True)

    assert box["width"] > 300
    assert box["height"] > 100
    assert len(points) == 1 + 2 * 3 + 1  # the start, a step per decrement, up to now
    assert page.locator("#threshold").count() == 1
    assert "from 4 movements" in page.content()

    page.goto(f"{live_server.url}/admin/products/stockmovement/")
    page.locator("#result_list").wait_for()
    widest = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=str(tmp_path / "movements.png"), full_page=True)

    assert widest <= 1400  # the ledger's list fits the screen, filters beside it
