"""The admin site: Django's, under the project's name, with a dashboard on its start
page for those who may read stock (the default site: inventory_project.apps)."""

from datetime import datetime, time

from django.contrib import admin
from django.utils import timezone

from products import selectors
from products.roles import VIEW_MOVEMENTS, VIEW_PRODUCTS

DASHBOARD_PRODUCTS = 15
DASHBOARD_MOVEMENTS = 15


class InventoryAdminSite(admin.AdminSite):
    site_header = "Warehouse inventory"
    site_title = "Warehouse inventory"
    index_title = "Dashboard"

    def index(self, request, extra_context=None):
        context = dict(extra_context or {})
        if request.user.has_perm(VIEW_PRODUCTS):
            context["dashboard"] = dashboard(request.user)
        return super().index(request, context)


def dashboard(user) -> dict:
    """What is urgent, what moved, and today's flows (the ledger's only for those who
    may read it)."""
    today = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    found = {
        "urgent": list(selectors.most_urgent(DASHBOARD_PRODUCTS)),
        "below_count": selectors.below_requirement().count(),
        "today": today,
    }
    if user.has_perm(VIEW_MOVEMENTS):
        found["movements"] = list(selectors.movements()[:DASHBOARD_MOVEMENTS])
        found["flows"] = selectors.flows_since(today)
    return found
