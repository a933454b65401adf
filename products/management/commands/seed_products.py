import random
import time
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from events import services as events
from products import services
from products.models import Product, StockMovement
from products.text import normalize_sku

ADJECTIVES = [
    "Heavy-duty", "Galvanised", "Stainless", "Compact", "Industrial", "Reinforced",
    "Foldable", "Insulated", "Adjustable", "Anti-slip", "Recycled", "Waterproof",
]  # fmt: skip
NOUNS = [
    "pallet jack", "hex bolt", "shelf bracket", "packing tape", "stretch wrap",
    "cable tie", "storage bin", "safety glove", "box cutter", "hand truck",
    "label roll", "carton", "padlock", "ladder", "floor marker", "dust mask",
]  # fmt: skip
SIZES = ["S", "M", "L", "XL", "10 mm", "25 mm", "50 mm", "1 m", "5 m", "2.5 t"]


class Command(BaseCommand):
    help = (
        "Create N realistic demo products (SKUs SEED-000000001 …), with their initial "
        "stock on the ledger. Safe to rerun: existing seed SKUs are skipped, so "
        "`--count 1000000` after `--count 1000` adds the rest."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True, help="how many seed products")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=42, help="random seed (reproducible data)")

    def handle(self, *args, count, batch_size, seed, **options):
        if not 1 <= count <= 100_000_000 or not 1 <= batch_size <= 50_000:
            raise CommandError("--count must be 1..100,000,000 and --batch-size 1..50,000.")
        started, created = time.monotonic(), 0
        for start in range(1, count + 1, batch_size):
            numbers = range(start, min(start + batch_size, count + 1))
            created += self._seed_batch(numbers, seed)
            self._progress(numbers[-1], count, started)
        self.stdout.write("")
        if created and connection.vendor == "postgresql":
            # Fresh statistics for the planner, as autovacuum would give them later: a
            # table just loaded has none, and some searches plan badly without them.
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {Product._meta.db_table}, {StockMovement._meta.db_table}")
        elapsed = time.monotonic() - started
        summary = f"Created {created} product(s) ({count - created} already there)"
        self.stdout.write(self.style.SUCCESS(f"{summary} in {elapsed:.1f} s."))

    @staticmethod
    def _seed_batch(numbers: range, seed: int) -> int:
        """One transaction: the batch's new products, their `initial` movements and their
        events, numbered as create_product numbers them (services.creation_events)."""
        skus = [f"SEED-{n:09d}" for n in numbers]
        with transaction.atomic():
            keys = [normalize_sku(sku) for sku in skus]
            existing = set(
                Product.objects.filter(sku_key__in=keys).values_list("sku_key", flat=True)
            )
            products = [
                _product(n, sku, random.Random(seed * 1_000_003 + n))
                for n, sku, key in zip(numbers, skus, keys, strict=True)
                if key not in existing
            ]
            products = Product.objects.bulk_create(products)
            initial = StockMovement.objects.bulk_create(
                _initial(product) for product in products if product.stock_quantity
            )
            movements = {movement.product_id: movement for movement in initial}
            events.record(
                event
                for product in products
                for event in services.creation_events(product, movements.get(product.pk))
            )
            Product.objects.bulk_update(products, ["event_sequence"])
        return len(products)

    def _progress(self, done: int, total: int, started: float) -> None:
        width = 30
        filled = width * done // total
        rate = done / max(time.monotonic() - started, 1e-9)
        bar = "#" * filled + "-" * (width - filled)
        self.stdout.write(f"\r[{bar}] {done:,}/{total:,} ({rate:,.0f}/s)", ending="")
        self.stdout.flush()


def _product(n: int, sku: str, rng: random.Random) -> Product:
    noun = rng.choice(NOUNS)
    threshold = rng.choice([0, 5, 10, 20, 50, 100])
    # About one product in twenty is at or below its threshold.
    low = rng.random() < 0.05
    stock = rng.randint(0, threshold) if low else threshold + rng.randint(1, 500)
    return Product(
        sku=sku,
        name=f"{rng.choice(ADJECTIVES)} {noun} {rng.choice(SIZES)}",
        description=f"{noun.capitalize()} for warehouse use, lot {n % 997}.",
        price=Decimal(rng.randint(5, 500_000)) / 100,
        stock_quantity=stock,
        low_stock_threshold=threshold,
    )


def _initial(product: Product) -> StockMovement:
    return StockMovement(
        product=product,
        sku=product.sku,
        product_name=product.name,
        kind=StockMovement.Kind.INITIAL,
        reason=StockMovement.Reason.RECEIVED,
        note="Demo data (seed_products).",
        delta=product.stock_quantity,
        quantity_before=0,
        quantity_after=product.stock_quantity,
        source=StockMovement.Source.COMMAND,
    )
