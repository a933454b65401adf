from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from products import selectors
from products.models import Product


class Command(BaseCommand):
    help = (
        "List products whose SKUs are one SKU under the SKU rule (docs/api.md, SKUs), and "
        "products whose SKU or name breaks today's field rules (e.g. saved before them). "
        "Reads only ids, SKUs and names, so it also runs before migration 0009, which "
        "stops on the same products. Exits 1 if any group of one-SKU products, or any SKU "
        "with nothing visible, exists."
    )

    def handle(self, *args, **options):
        collisions, blank = selectors.sku_problems(Product.objects.all())
        for group in collisions:
            self.stdout.write(
                "Same SKU: " + ", ".join(f"product {pk} {sku!r}" for pk, sku in group)
            )
        for pk, sku in blank:
            self.stdout.write(f"Nothing visible: product {pk} {sku!r}")
        broken = 0
        for pk, sku, name in Product.objects.order_by("pk").values_list("pk", "sku", "name"):
            for field, value in (("sku", sku), ("name", name)):
                try:
                    for validator in Product._meta.get_field(field).validators:
                        validator(value)
                except ValidationError as exc:
                    broken += 1
                    self.stdout.write(f"Product {pk}: {field} {value!r}: {' '.join(exc.messages)}")
        self.stdout.write(
            f"{len(collisions)} group(s) of products with one SKU; {len(blank)} SKU(s) with "
            f"nothing visible; {broken} field(s) breaking the field rules."
        )
        if collisions or blank:
            raise CommandError(
                "Rename all but one product of each group, and each SKU with nothing "
                "visible, listed above; then migration 0009 can run."
            )
