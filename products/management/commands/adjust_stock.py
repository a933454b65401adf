from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from products import selectors, services
from products.models import MAX_STOCK, StockMovement
from products.serializers import MovementDetailsSerializer


def quantity(value: str) -> int:
    number = int(value)
    if not 1 <= number <= MAX_STOCK:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Increment or decrement one product's stock, through the same rules as the API; "
        "the change is recorded in the ledger with source `command`."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "sku", help="SKU of the product (any case, width or spacing: docs/api.md, SKUs)"
        )
        operation = parser.add_mutually_exclusive_group(required=True)
        operation.add_argument("--increment", type=quantity, metavar="N", help="add N units")
        operation.add_argument("--decrement", type=quantity, metavar="N", help="remove N units")
        parser.add_argument("--reason", choices=StockMovement.Reason.values)
        parser.add_argument("--note", default="")
        parser.add_argument("--reference", default="", help="e.g. a purchase order number")
        parser.add_argument("--user", help="username to record as having made the change")

    def handle(self, *args, sku, increment, decrement, reason, note, reference, user, **options):
        details = {"note": note, "reference": reference, **({"reason": reason} if reason else {})}
        details = MovementDetailsSerializer(data=details)  # the API's own limits
        if not details.is_valid():
            raise CommandError(_messages(details.errors))
        product = selectors.with_sku(sku).first()
        if product is None:
            raise CommandError(f"No product with SKU {sku!r}.")
        audit = services.Audit(
            user=self._user(user), source=services.Source.COMMAND, **details.validated_data
        )
        try:
            if increment is not None:
                product = services.increment_stock(
                    product_id=product.pk, quantity=increment, audit=audit
                )
            else:
                product = services.decrement_stock(
                    product_id=product.pk, quantity=decrement, audit=audit
                )
        except services.InventoryError as exc:
            raise CommandError(f"{product.sku}: {exc.message}") from exc
        self.stdout.write(f"{product.sku}: {product.stock_quantity} in stock")

    @staticmethod
    def _user(username: str | None):
        if username is None:
            return None
        try:
            return get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None


def _messages(errors: dict) -> str:
    return "; ".join(f"--{field}: {' '.join(messages)}" for field, messages in errors.items())
