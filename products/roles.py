"""The two roles, as Django groups with their permissions.

Data migrations create the groups and keep their permissions in step with ROLES
(each migration that changes ROLES calls `sync_roles`). Superusers can do
everything; users in no group can do nothing.
"""

from django.contrib.auth.management import create_permissions

INVENTORY_ADMIN = "Inventory admin"
WAREHOUSE_STAFF = "Warehouse staff"

ADJUST_STOCK = "products.adjust_stock"
COUNT_STOCK = "products.count_stock"
VIEW_MOVEMENTS = "products.view_stockmovement"
VIEW_PRODUCTS = "products.view_product"
VIEW_RESERVATIONS = "reservations.view_reservation"
RESERVE_STOCK = "reservations.add_reservation"
FULFIL_RESERVATIONS = "reservations.fulfil_reservation"
RELEASE_RESERVATIONS = "reservations.release_reservation"
# Warehouse staff pick and ship: they reserve, fulfil and release.
RESERVATIONS = [VIEW_RESERVATIONS, RESERVE_STOCK, FULFIL_RESERVATIONS, RELEASE_RESERVATIONS]

ROLES = {
    INVENTORY_ADMIN: [
        VIEW_PRODUCTS,
        "products.add_product",
        "products.change_product",
        "products.delete_product",
        ADJUST_STOCK,
        COUNT_STOCK,
        VIEW_MOVEMENTS,
        "events.view_event",
        # Webhooks: endpoints (create, change, rotate, delete), deliveries (read, redeliver).
        "events.view_webhookendpoint",
        "events.add_webhookendpoint",
        "events.change_webhookendpoint",
        "events.delete_webhookendpoint",
        "events.view_delivery",
        "events.change_delivery",
        "events.view_deliveryattempt",
        *RESERVATIONS,
    ],
    WAREHOUSE_STAFF: [VIEW_PRODUCTS, ADJUST_STOCK, *RESERVATIONS],
}

# `manage.py create_api_user NAME --role admin|staff`
ROLE_GROUPS = {"admin": INVENTORY_ADMIN, "staff": WAREHOUSE_STAFF}


def sync_roles(apps) -> None:
    """Create the groups and set exactly their permissions; `apps` may be historical.

    Permissions are normally created after all migrations (post_migrate), so create
    them first; a permission whose model does not exist yet at this point of the
    migration history is left for the later migration that syncs again.
    """
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = [perm.split(".") for perm in perms]
        group.permissions.set(
            permission
            for permission in Permission.objects.select_related("content_type")
            if [permission.content_type.app_label, permission.codename] in wanted
        )
