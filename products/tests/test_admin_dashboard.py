"""The admin's start page (a dashboard for those who may read stock) and a product's
stock chart, through the Django test client."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from products import charts, services
from products.models import StockMovement

from .conftest import make_product, make_user

pytestmark = pytest.mark.django_db


def logged_in(client, role: str):
    user = make_user(role, is_staff=True)  # as create_api_user makes them
    client.force_login(user)
    return client


def test_the_dashboard_lists_low_products_most_urgent_first(client):
    make_product(sku="FINE", stock_quantity=50, low_stock_threshold=10)
    make_product(sku="HALF", stock_quantity=5, low_stock_threshold=10)
    make_product(sku="EMPTY", stock_quantity=0, low_stock_threshold=3)
    make_product(sku="TENTH", stock_quantity=1, low_stock_threshold=10)
    make_product(sku="ZERO-AT-ZERO", stock_quantity=0, low_stock_threshold=0)

    page = logged_in(client, "staff").get("/admin/")

    urgent = [p.sku for p in page.context["dashboard"]["urgent"]]
    assert urgent == ["ZERO-AT-ZERO", "EMPTY", "TENTH", "HALF"]
    assert page.context["dashboard"]["below_count"] == 4
    assert "most urgent first" in page.content.decode()


def test_the_dashboard_shows_recent_movements_and_today_s_flows(client):
    product = make_product(sku="FLOW-1", stock_quantity=10)
    services.increment_stock(product_id=product.pk, quantity=7)
    services.decrement_stock(product_id=product.pk, quantity=3)
    StockMovement.objects.filter(delta=10).update(created_at=timezone.now() - timedelta(days=2))

    page = logged_in(client, "admin").get("/admin/")

    dashboard = page.context["dashboard"]
    assert [m.delta for m in dashboard["movements"]] == [-3, 7, 10]
    assert dashboard["flows"] == {"units_in": 7, "units_out": 3, "movements": 2}
    assert re.search(
        r"<strong>7</strong> units in,\s*<strong>3</strong> units out", page.content.decode()
    )


def test_staff_see_what_is_urgent_but_not_the_ledger(client):
    make_product(sku="LOW", stock_quantity=1, low_stock_threshold=5)

    dashboard = logged_in(client, "staff").get("/admin/").context["dashboard"]

    assert [p.sku for p in dashboard["urgent"]] == ["LOW"]
    assert "movements" not in dashboard
    assert "flows" not in dashboard


def test_no_dashboard_for_a_user_who_may_not_read_stock(client):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("outsider", password="pw-12345-xyz", is_staff=True)
    client.force_login(user)

    page = client.get("/admin/")

    assert page.status_code == 200
    assert "dashboard" not in page.context


def test_a_product_page_draws_its_stock_and_threshold(client):
    product = make_product(sku="CHART-1", stock_quantity=20, low_stock_threshold=5)
    for _ in range(3):
        services.decrement_stock(product_id=product.pk, quantity=4)

    page = logged_in(client, "admin").get(f"/admin/products/product/{product.pk}/change/")

    html = page.content.decode()
    assert '<svg id="stock-chart"' in html
    assert 'id="threshold"' in html
    line = re.search(r'id="stock-line" points="([^"]+)"', html)[1].split()
    assert len(line) == 1 + 2 * 3 + 1  # the start, a step per change, then up to now
    assert "from 4 movements" in html


def test_a_long_history_is_drawn_from_its_extremes(settings):
    product = make_product(sku="CHART-LONG", stock_quantity=1000, low_stock_threshold=100)
    levels = [1000]
    movements = []
    start = timezone.now()
    for n in range(3 * charts.MAX_POINTS):
        level = 0 if n == 777 else 500 + (n * 37) % 400
        movements.append(
            StockMovement(
                product=product, sku=product.sku, product_name=product.name,
                kind="count", reason="count", delta=level - levels[-1],
                quantity_before=levels[-1], quantity_after=level, source="command",
                created_at=start + timedelta(minutes=n),
            )
        )  # fmt: skip
        levels.append(level)
    StockMovement.objects.bulk_create(movements)

    points, count = charts.levels(product)

    assert count == 1 + 3 * charts.MAX_POINTS
    assert len(points) <= charts.MAX_POINTS
    assert min(level for _, level in points) == 0  # the one dip to zero is kept
    assert max(level for _, level in points) == max(levels)
    assert [at for at, _ in points] == sorted(at for at, _ in points)


def test_the_most_urgent_is_out_of_stock_then_the_smallest_share_of_its_threshold():
    from products import selectors

    make_product(sku="HALF-LEFT", stock_quantity=1, low_stock_threshold=2)
    make_product(sku="TINY-SHARE", stock_quantity=2, low_stock_threshold=1000)
    make_product(sku="OUT", stock_quantity=0, low_stock_threshold=1)

    assert [p.sku for p in selectors.most_urgent(10)] == ["OUT", "TINY-SHARE", "HALF-LEFT"]


def test_a_thinned_chart_ends_at_the_stock_now():
    product = make_product(sku="CHART-END", stock_quantity=5, low_stock_threshold=1)
    cycle, level, rows = [0, 3, 5], 5, []
    for n in range(2 * charts.MAX_POINTS + 3):  # ends on 3, neither extreme of its stretch
        new = cycle[n % 3]
        rows.append(
            StockMovement(
                product=product, sku=product.sku, product_name=product.name, kind="count",
                reason="count", delta=new - level, quantity_before=level, quantity_after=new,
                source="command",
            )
        )  # fmt: skip
        level = new
    StockMovement.objects.bulk_create(rows)

    points, count = charts.levels(product)

    assert count > charts.MAX_POINTS
    assert level == 3
    assert points[-1][1] == 3
