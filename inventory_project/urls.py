from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import metrics
from core.errors import api_not_found
from products.urls import InventoryRoot

# /api/: every app's collections, by their list URLs' names.
API_ROOT = InventoryRoot.as_view(
    api_root_dict={
        "products": "product-list",
        "movements": "stockmovement-list",
        "stock-adjustments": "stock-adjustment-list",
        "reservations": "reservation-list",
        "events": "event-list",
        "webhook-endpoints": "webhookendpoint-list",
        "webhook-deliveries": "delivery-list",
    }
)

urlpatterns = [
    path("", RedirectView.as_view(url="/api/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api-auth/", include("rest_framework.urls")),  # log in to the browsable API
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", API_ROOT, name="api-root"),
    path("api/", include("products.urls")),
    path("api/", include("events.urls")),
    path("api/", include("reservations.urls")),
    re_path(r"^api/", api_not_found, name=metrics.UNMATCHED),
]

handler400 = "core.errors.handler400"
handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
