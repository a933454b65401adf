"""Inventory admins manage webhook endpoints and deliveries; warehouse staff do not."""

from django.db import migrations

from products.roles import sync_roles


def update_roles(apps, schema_editor):
    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("products", "0011_event_roles"),
        ("events", "0002_webhooks"),
    ]

    operations = [migrations.RunPython(update_roles, migrations.RunPython.noop)]
