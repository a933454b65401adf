from django.urls import path
from rest_framework.routers import DefaultRouter

from .views import ObtainTokenView, ProductViewSet, StockAdjustmentViewSet, StockMovementViewSet

router = DefaultRouter()
router.register("products", ProductViewSet)
router.register("movements", StockMovementViewSet)
router.register("stock-adjustments", StockAdjustmentViewSet, basename="stock-adjustment")

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="token"),
    *router.urls,
]
