"""One definition of "the same SKU": a stored key, `normalize_sku(sku)`, unique.

Until now SKUs were unique under SQL `LOWER(sku)`, while bulk lines were matched with
Python's `str.lower()`, and the two disagree on real text. Products and movements get
a `sku_key` column filled from their SKU, and the unique index moves to it.

Products that the new rule makes one SKU (say `ABC-1` and fullwidth `ＡＢＣ-1`), or whose
SKU has nothing visible, are not merged or guessed at: the migration stops, names them,
and changes nothing (PostgreSQL runs it in one transaction). Rename them with the
release you are running, then migrate again. `manage.py sku_report` lists the same
products without migrating.

The migration holds its tables' locks until it commits, and stock cannot change
meanwhile: on PostgreSQL the keys are filled set-based (see _fill_on_postgresql), which
took 17 s for 200,000 products and 198,000 movements here; plan it for a quiet moment
on a big catalogue.
"""

import django.core.validators
from django.db import migrations, models

import products.models
import products.selectors
import products.text

BATCH = 5000


def fill_sku_keys(apps, schema_editor):
    Product = apps.get_model("products", "Product")
    StockMovement = apps.get_model("products", "StockMovement")
    collisions, blank = products.selectors.sku_problems(Product.objects.all())
    if collisions or blank:
        raise RuntimeError(_report(collisions, blank))
    if schema_editor.connection.vendor == "postgresql":
        _fill_on_postgresql(schema_editor.connection, Product)
    else:
        for model in (Product, StockMovement):
            _fill_row_by_row(model)


def _report(collisions, blank) -> str:
    lines = [
        "  same SKU: " + ", ".join(f"id {pk}: {sku!r}" for pk, sku in group)
        for group in collisions
    ]
    lines += [f"  nothing visible: id {pk}: {sku!r}" for pk, sku in blank]
    return (
        f"{len(collisions)} group(s) of products have SKUs that are one SKU under the new "
        "rule (case, width and invisible characters ignored; see README, SKUs), and "
        f"{len(blank)} product(s) have a SKU with nothing visible:\n"
        + "\n".join(lines)
        + "\nNothing was changed. Rename all but one product of each group, and each "
        "product with nothing visible (with the release you are running now), then "
        "migrate again."
    )


def _fill_on_postgresql(connection, Product) -> None:
    """Set-based, for big tables: products by id in batches; then every movement whose
    SKU is still its product's, in one join; then the rest (renamed or deleted
    products') by SKU."""
    with connection.cursor() as cursor:
        rows = Product.objects.order_by("pk").values_list("pk", "sku")
        for batch in _batches(rows.iterator(chunk_size=BATCH)):
            values = [(pk, products.text.normalize_sku(sku)) for pk, sku in batch]
            cursor.execute(
                "UPDATE products_product SET sku_key = v.key "
                f"FROM (VALUES {', '.join(['(%s::bigint, %s)'] * len(values))}) AS v(id, key) "
                "WHERE products_product.id = v.id",
                [item for pair in values for item in pair],
            )
        cursor.execute(
            "UPDATE products_stockmovement AS m SET sku_key = p.sku_key "
            "FROM products_product AS p WHERE m.product_id = p.id AND m.sku = p.sku"
        )
        cursor.execute("SELECT DISTINCT sku FROM products_stockmovement WHERE sku_key IS NULL")
        for batch in _batches(sku for (sku,) in cursor.fetchall()):
            values = [(sku, products.text.normalize_sku(sku)) for sku in batch]
            cursor.execute(
                "UPDATE products_stockmovement SET sku_key = v.key "
                f"FROM (VALUES {', '.join(['(%s, %s)'] * len(values))}) AS v(sku, key) "
                "WHERE products_stockmovement.sku_key IS NULL "
                "AND products_stockmovement.sku = v.sku",
                [item for pair in values for item in pair],
            )


def _fill_row_by_row(model) -> None:
    for batch in _batches(model.objects.only("pk", "sku").iterator(chunk_size=BATCH)):
        for row in batch:
            row.sku_key = products.text.normalize_sku(row.sku)
        model.objects.bulk_update(batch, ["sku_key"])


def _batches(rows):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class Migration(migrations.Migration):
    dependencies = [("products", "0008_search_and_ordering_indexes")]

    operations = [
        *(
            migrations.AddField(
                model_name=model_name,
                name="sku_key",
                field=products.models.SkuKeyField(null=True, editable=False, verbose_name="SKU key"),
            )
            for model_name in ("product", "stockmovement")
        ),
        migrations.RunPython(fill_sku_keys, migrations.RunPython.noop),
        *(
            migrations.AlterField(
                model_name=model_name,
                name="sku_key",
                field=products.models.SkuKeyField(editable=False, verbose_name="SKU key"),
            )
            for model_name in ("product", "stockmovement")
        ),
        migrations.RemoveConstraint(model_name="product", name="product_sku_ci_unique"),
        migrations.AddConstraint(
            model_name="product",
            constraint=models.UniqueConstraint(
                fields=("sku_key",),
                name="product_sku_key_unique",
                violation_error_message="A product with this SKU already exists.",
            ),
        ),
        migrations.AddConstraint(
            model_name="product",
            constraint=models.CheckConstraint(
                condition=models.Q(("sku_key", ""), _negated=True),
                name="product_sku_key_not_blank",
            ),
        ),
        migrations.AddIndex(
            model_name="stockmovement",
            index=models.Index(fields=["sku_key", "-id"], name="movement_sku_newest"),
        ),
        # The field rules, now on the model fields (validators change no column).
        migrations.AlterField(
            model_name="product",
            name="sku",
            field=models.CharField(
                help_text="Unique: SKUs that differ only in case, width or invisible "
                "characters are the same SKU.",
                max_length=64,
                validators=[
                    products.text.sku_text,
                    products.text.trimmed,
                    products.text.has_identity,
                ],
                verbose_name="SKU",
            ),
        ),
        migrations.AlterField(
            model_name="product",
            name="name",
            field=models.CharField(
                max_length=200,
                validators=[products.text.one_line_of_text, products.text.trimmed],
            ),
        ),
        migrations.AlterField(
            model_name="product",
            name="description",
            field=models.TextField(
                blank=True,
                default="",
                max_length=5000,
                validators=[
                    django.core.validators.MaxLengthValidator(5000),
                    products.text.no_nul_characters,
                ],
            ),
        ),
        migrations.AlterField(
            model_name="stockmovement",
            name="note",
            field=models.TextField(
                blank=True,
                default="",
                max_length=1000,
                validators=[
                    django.core.validators.MaxLengthValidator(1000),
                    products.text.no_nul_characters,
                ],
            ),
        ),
        migrations.AlterField(
            model_name="stockmovement",
            name="reference",
            field=models.CharField(
                blank=True,
                default="",
                help_text="E.g. a purchase order or delivery number.",
                max_length=100,
                validators=[products.text.one_line_of_text, products.text.trimmed],
            ),
        ),
    ]
