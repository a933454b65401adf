"""One definition of "the same SKU": a stored key, `normalize_sku(sku)`, unique.

Until now SKUs were unique under SQL `LOWER(sku)`, while bulk lines were matched with
Python's `str.lower()`, and the two disagree on real text. Products and movements get
a `sku_key` column filled from their SKU, and the unique index moves to it.

Products that the new rule makes one SKU (say `ABC-1` and fullwidth `ＡＢＣ-1`) are not
merged: the migration stops, names them, and changes nothing (PostgreSQL runs it in one
transaction). Rename all but one of each group with the release you are running, then
migrate again. `manage.py sku_report` lists the same groups without migrating.
"""

import django.core.validators
from django.db import migrations, models

import products.models
import products.selectors
import products.text

BATCH = 2000


def fill_sku_keys(apps, schema_editor):
    Product = apps.get_model("products", "Product")
    StockMovement = apps.get_model("products", "StockMovement")
    collisions = products.selectors.sku_collisions(Product.objects.all())
    if collisions:
        listing = "\n".join(
            "  " + ", ".join(f"id {pk}: {sku!r}" for pk, sku in group) for group in collisions
        )
        raise RuntimeError(
            f"{len(collisions)} group(s) of products have SKUs that are one SKU under the "
            "new rule (case, width and invisible characters ignored; see README, SKUs):\n"
            f"{listing}\nNothing was changed. Rename all but one product of each group "
            "(with the release you are running now), then migrate again."
        )
    for model in (Product, StockMovement):
        batch = []
        for row in model.objects.only("pk", "sku").iterator(chunk_size=BATCH):
            row.sku_key = products.text.normalize_sku(row.sku)
            batch.append(row)
            if len(batch) == BATCH:
                model.objects.bulk_update(batch, ["sku_key"])
                batch = []
        model.objects.bulk_update(batch, ["sku_key"])


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
                validators=[products.text.validate_sku],
                verbose_name="SKU",
            ),
        ),
        migrations.AlterField(
            model_name="product",
            name="name",
            field=models.CharField(max_length=200, validators=[products.text.one_line_of_text]),
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
                validators=[products.text.one_line_of_text],
            ),
        ),
    ]
