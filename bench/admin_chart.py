"""How long a product's stock chart takes with 10,000 movements (the admin's product page).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/inventory_bench_cpu \\
      .venv/bin/python bench/admin_chart.py [--movements 10000]

Uses the first product of the database DATABASE_URL names (`make bench-cpu` leaves one
seeded: inventory_bench_cpu), gives it --movements movements over 90 days if it has
fewer (count movements, written directly: this is a throwaway database), then times
the chart alone and the whole admin page, three times each.
"""

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_project.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--movements", type=int, default=10_000)
    args = parser.parse_args()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from products import charts
    from products.models import Product, StockMovement

    product = Product.objects.order_by("id").first()
    have = StockMovement.objects.filter(product=product).count()
    start, level, rows = timezone.now() - timedelta(days=90), product.stock_quantity, []
    for n in range(args.movements - have):
        new = max(0, level + (37 if n % 5 == 0 else -9))
        rows.append(
            StockMovement(
                product=product, sku=product.sku, product_name=product.name, kind="count",
                reason="count", delta=new - level, quantity_before=level, quantity_after=new,
                source="command", created_at=start + timedelta(minutes=12 * n),
            )
        )  # fmt: skip
        level = new
    StockMovement.objects.bulk_create(rows)
    total = StockMovement.objects.filter(product=product).count()
    user, _ = get_user_model().objects.get_or_create(username="chart-bench")
    user.is_staff = user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    for _ in range(3):
        started = time.perf_counter()
        chart = charts.stock_chart(product)
        drawn = time.perf_counter() - started
        started = time.perf_counter()
        page = client.get(f"/admin/products/product/{product.pk}/change/")
        served = time.perf_counter() - started
        print(
            f"{total} movements: chart {1000 * drawn:.0f} ms ({chart.points} points), "
            f"admin page {1000 * served:.0f} ms (HTTP {page.status_code})"
        )


if __name__ == "__main__":
    main()
