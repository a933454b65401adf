"""Start the ledger for products that already had stock, and give the roles the new
permissions (counting stock, reading the ledger)."""

from django.db import migrations

from products.roles import sync_roles


def record_opening_balances(apps, schema_editor):
    Product = apps.get_model("products", "Product")
    StockMovement = apps.get_model("products", "StockMovement")
    StockMovement.objects.bulk_create(
        (
            StockMovement(
                product_id=product.pk,
                sku=product.sku,
                product_name=product.name,
                kind="initial",
                reason="other",
                note="Opening balance: stock held when the ledger was introduced.",
                delta=product.stock_quantity,
                quantity_before=0,
                quantity_after=product.stock_quantity,
                source="command",
            )
            for product in Product.objects.filter(stock_quantity__gt=0).iterator()
        ),
        batch_size=1000,
    )


def update_roles(apps, schema_editor):
    sync_roles(apps)


class Migration(migrations.Migration):
    dependencies = [("products", "0003_ledger_idempotency_version")]

    operations = [
        migrations.RunPython(record_opening_balances, migrations.RunPython.noop),
        migrations.RunPython(update_roles, migrations.RunPython.noop),
    ]
