from django.urls import re_path
from rest_framework.routers import SimpleRouter

from .views import ProductReservationViewSet, ReservationViewSet

router = SimpleRouter()
router.register("reservations", ReservationViewSet)

product_reservations = ProductReservationViewSet.as_view(
    {"get": "list", "post": "create"}, detail=False, basename="product-reservations"
)

urlpatterns = [
    re_path(
        r"^products/(?P<pk>[^/.]+)/reservations/$",
        product_reservations,
        name="product-reservations",
    ),
    *router.urls,
]
