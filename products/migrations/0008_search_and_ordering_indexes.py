"""Indexes for ?ordering= and range filters, and one trigram index for ?search=.

`?search=` matches `UPPER((sku || ' ' || name || ' ' || description)::text)` (see
selectors.SearchText): one trigram index on that expression replaces the per-column
ones on sku and description, which only search used (`?name=` keeps its own).
PostgreSQL only, like migration 0006.
"""

from django.db import migrations, models

SEARCH_INDEX = (
    "CREATE INDEX IF NOT EXISTS product_search_trgm ON products_product "
    "USING gin (UPPER((sku || ' ' || name || ' ' || description)::text) gin_trgm_ops)"
)
REPLACED = ["product_sku_trgm", "product_description_trgm"]


def create_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(SEARCH_INDEX)
    for name in REPLACED:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def drop_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS product_search_trgm")
    for name, column in zip(REPLACED, ["sku", "description"], strict=True):
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON products_product "
            f"USING gin (UPPER({column}) gin_trgm_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("products", "0007_source_labels")]

    operations = [
        *(
            migrations.AddIndex(
                model_name="product",
                index=models.Index(fields=[field, "id"], name=f"product_{field}_order"),
            )
            for field in ("sku", "name", "stock_quantity", "price", "updated_at")
        ),
        migrations.RunPython(create_search_index, drop_search_index),
    ]
