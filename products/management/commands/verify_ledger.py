from itertools import groupby

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Min, Sum

from products.models import Product, StockMovement
from reservations.models import Reservation


class Command(BaseCommand):
    help = (
        "Check every product's ledger: its movements, in order, must chain from 0 "
        "(each one's quantity_before is the previous one's quantity_after) and end at "
        "its current stock; its reserved quantity must be the sum of its active "
        "reservations, and its earliest expiry no later than theirs. Prints each "
        "discrepancy; exits 1 if there is any."
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
        holds = {
            row["product_id"]: (row["reserved"], row["earliest"])
            for row in Reservation.objects.filter(state=Reservation.State.ACTIVE)
            .values("product_id")
            .annotate(reserved=Sum("quantity"), earliest=Min("expires_at"))
            .order_by()
        }
        problems = products = movement_count = 0
        for product_id, sku, stock, reserved, expire_at in (
            Product.objects.order_by("id")
            .values_list(
                "id", "sku", "stock_quantity", "reserved_quantity", "reservations_expire_at"
            )
            .iterator(chunk_size=5000)
        ):
            held, earliest = holds.get(product_id, (0, None))
            if reserved != held:
                problems += 1
                self.stdout.write(
                    f"{sku} (product {product_id}): {reserved} reserved, "
                    f"but its active reservations hold {held}"
                )
            if (expire_at is None) != (earliest is None) or (
                earliest is not None and expire_at > earliest
            ):
                problems += 1
                self.stdout.write(
                    f"{sku} (product {product_id}): reservations expire from {expire_at}, "
                    f"but its earliest active reservation expires at {earliest}"
                )
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
