"""Warehouse staff and inventory admins may reserve, fulfil and release."""

from django.db import migrations

from products.roles import sync_roles


def update_roles(apps, schema_editor):
    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("reservations", "0001_initial"),
        ("products", "0013_reserved_quantity"),
        ("events", "0004_stock_fully_reserved"),
    ]

    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
