from itertools import groupby

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from products.models import Product, StockMovement


class Command(BaseCommand):
    help = (
        "Check every product's ledger: its movements, in order, must chain from 0 "
        "(each one's quantity_before is the previous one's quantity_after) and end at "
        "its current stock. Prints each discrepancy; exits 1 if there is any."
    )

    def handle(self, *args, **options):
        # One consistent snapshot of both tables, even while stock keeps changing.
        snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
        with transaction.atomic():
            if snapshot:
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            problems, products, movements = self._check()
        summary = f"Checked {products} product(s) and {movements} movement(s)"
        if problems:
            raise CommandError(f"{summary}: {problems} discrepancy(ies).")
        self.stdout.write(self.style.SUCCESS(f"{summary}: the ledger reconciles."))

    def _check(self) -> tuple[int, int, int]:
        movements = (
            StockMovement.objects.filter(product__isnull=False)
            .order_by("product_id", "id")
            .values_list("product_id", "id", "quantity_before", "quantity_after")
            .iterator(chunk_size=5000)
        )
        by_product = groupby(movements, key=lambda row: row[0])
        pending = next(by_product, None)
        problems = products = movement_count = 0
        for product_id, sku, stock in (
            Product.objects.order_by("id")
            .values_list("id", "sku", "stock_quantity")
            .iterator(chunk_size=5000)
        ):
            products += 1
            rows = []
            if pending is not None and pending[0] == product_id:
                rows = list(pending[1])
                pending = next(by_product, None)
            movement_count += len(rows)
            quantity = 0
            for _, movement_id, before, after in rows:
                if before != quantity:
                    problems += 1
                    self.stdout.write(
                        f"{sku} (product {product_id}): movement {movement_id} starts at "
                        f"{before}, but the previous one ended at {quantity}"
                    )
                quantity = after
            if quantity != stock:
                problems += 1
                self.stdout.write(
                    f"{sku} (product {product_id}): stock is {stock}, "
                    f"but its movements add up to {quantity}"
                )
        return problems, products, movement_count
