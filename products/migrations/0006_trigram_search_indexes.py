"""Trigram indexes for substring search (`?search=`, `?name=`) on PostgreSQL.

Django's case-insensitive `contains` is `UPPER(column) LIKE UPPER('%text%')`, so the
indexes are on UPPER(column) with pg_trgm's operator class. Creating the pg_trgm
extension needs a role allowed to (a superuser, or the database owner on
PostgreSQL 13+). Other databases (the SQLite fallback) get no such index.
"""

from django.db import migrations

COLUMNS = ["sku", "name", "description"]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS product_{column}_trgm ON products_product "
            f"USING gin (UPPER({column}) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS product_{column}_trgm")


class Migration(migrations.Migration):
    dependencies = [("products", "0005_below_requirement_index")]

    operations = [migrations.RunPython(create, drop)]
