from django.contrib.admin.apps import AdminConfig


class InventoryAdminConfig(AdminConfig):
    """Django's admin, its default site ours (inventory_project/admin.py)."""

    default_site = "inventory_project.admin.InventoryAdminSite"
