from django.core.management.base import BaseCommand, CommandError

from products import selectors, services
from products.models import MAX_STOCK


def quantity(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_STOCK:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Increment or decrement one product's stock, through the same rules as the API."

    def add_arguments(self, parser):
        parser.add_argument("sku", help="SKU of the product (case-insensitive)")
        operation = parser.add_mutually_exclusive_group(required=True)
        operation.add_argument("--increment", type=quantity, metavar="N", help="add N units")
        operation.add_argument("--decrement", type=quantity, metavar="N", help="remove N units")

    def handle(self, *args, sku: str, increment: int | None, decrement: int | None, **options):
        product = selectors.with_sku(sku).first()
        if product is None:
            raise CommandError(f"No product with SKU {sku!r}.")
        try:
            if increment is not None:
                product = services.increment_stock(product_id=product.pk, quantity=increment)
            else:
                product = services.decrement_stock(product_id=product.pk, quantity=decrement)
        except services.InventoryError as exc:
            raise CommandError(f"{product.sku}: {exc.message}") from exc
        self.stdout.write(f"{product.sku}: {product.stock_quantity} in stock")
