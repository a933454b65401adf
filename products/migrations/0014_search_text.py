"""`Product.search_text`: what ?search= matches, stored in upper case (a generated
column), with the trigram index on it instead of on the expression (migration 0008).

A search then compares the stored text as it is, where it upper-cased the joined SKU,
name and description of every row it read (in the C.UTF-8 collation, character by
character through wide characters). Adding a stored column rewrites the table: about
20 s per million products, during which the table is locked; then the index is built.
PostgreSQL's index only, like migrations 0006 and 0008.
"""

import django.db.models.functions.text
from django.db import migrations, models

import products.models

OLD_INDEX = (
    "CREATE INDEX IF NOT EXISTS product_search_trgm ON products_product "
    "USING gin (UPPER((sku || ' ' || name || ' ' || description)::text) gin_trgm_ops)"
)
NEW_INDEX = (
    "CREATE INDEX IF NOT EXISTS product_search_text_trgm ON products_product "
    "USING gin (search_text gin_trgm_ops)"
)


def index_the_column(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(NEW_INDEX)
        schema_editor.execute("DROP INDEX IF EXISTS product_search_trgm")


def index_the_expression(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(OLD_INDEX)
        schema_editor.execute("DROP INDEX IF EXISTS product_search_text_trgm")


class Migration(migrations.Migration):
    dependencies = [("products", "0013_reserved_quantity")]

    operations = [
        migrations.AddField(
            model_name="product",
            name="search_text",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Upper(products.models.SearchText()),
                output_field=models.TextField(),
            ),
        ),
        migrations.RunPython(index_the_column, index_the_expression),
    ]
