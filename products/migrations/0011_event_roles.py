"""Inventory admins may read the event feed (events.view_event)."""

from django.db import migrations

from products.roles import sync_roles


def update_roles(apps, schema_editor):
    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("products", "0010_product_event_sequence"),
        ("events", "0001_initial"),
    ]

    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
