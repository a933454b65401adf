"""Migration 0009 carries existing products over to the SKU rule, and stops (changing
nothing) on products the rule makes one SKU, naming them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("products", "0008_search_and_ordering_indexes")]
AFTER = [("products", "0009_sku_key")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before_0009(transactional_db):
    """The schema as migration 0008 left it; the latest one again afterwards."""
    apps = migrate(BEFORE)
    yield apps
    with connection.cursor() as cursor:  # what a test left might stop the migration
        cursor.execute("DELETE FROM products_stockmovement")
        cursor.execute("DELETE FROM products_product")
    migrate(migrate_latest_targets())


def migrate_latest_targets():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def insert(apps, sku: str, **fields):
    Product = apps.get_model("products", "Product")
    return Product.objects.create(sku=sku, name=fields.get("name", sku))


def test_existing_products_and_movements_get_their_sku_keys(before_0009):
    product = insert(before_0009, "ＡＢＣ-1")
    before_0009.get_model("products", "StockMovement").objects.create(
        product_id=product.pk,
        sku="Straße-1",
        product_name="x",
        kind="count",
        reason="count",
        delta=0,
        quantity_before=0,
        quantity_after=0,
        source="command",
    )

    apps = migrate(AFTER)

    assert apps.get_model("products", "Product").objects.get().sku_key == "abc-1"
    assert apps.get_model("products", "StockMovement").objects.get().sku_key == "strasse-1"


def test_products_that_become_one_sku_stop_the_migration_and_nothing_changes(before_0009):
    first = insert(before_0009, "ABC-1")
    twin = insert(before_0009, "ａｂｃ-1")
    insert(before_0009, "OTHER-1")

    with pytest.raises(RuntimeError) as stopped:
        migrate(AFTER)

    message = str(stopped.value)
    assert f"same SKU: id {first.pk}: 'ABC-1', id {twin.pk}: 'ａｂｃ-1'" in message
    assert "OTHER-1" not in message
    assert "Nothing was changed" in message
    with connection.cursor() as cursor:
        columns = [
            c.name
            for c in connection.introspection.get_table_description(cursor, "products_product")
        ]
    assert "sku_key" not in columns
    assert before_0009.get_model("products", "Product").objects.count() == 3


def test_a_sku_with_nothing_visible_stops_the_migration_naming_it(before_0009):
    """The old admin form saved such SKUs (issue 12); their key would be empty."""
    blank = insert(before_0009, "\u200b\u200b")

    with pytest.raises(RuntimeError) as stopped:
        migrate(AFTER)

    assert f"nothing visible: id {blank.pk}: '\\u200b\\u200b'" in str(stopped.value)


def test_movements_of_renamed_and_deleted_products_get_their_own_keys(before_0009):
    Movement = before_0009.get_model("products", "StockMovement")
    product = insert(before_0009, "NEW-NAME")
    fields = {"product_name": "x", "kind": "count", "reason": "count", "delta": 0}
    fields |= {"quantity_before": 0, "quantity_after": 0, "source": "command"}
    Movement.objects.create(product_id=product.pk, sku="ＯＬＤ-NAME", **fields)
    Movement.objects.create(product_id=None, sku="Gone-1", **fields)
    Movement.objects.create(product_id=product.pk, sku="NEW-NAME", **fields)

    apps = migrate(AFTER)

    keys = apps.get_model("products", "StockMovement").objects.order_by("pk")
    assert list(keys.values_list("sku_key", flat=True)) == ["old-name", "gone-1", "new-name"]
