from django.urls import path
from rest_framework.routers import APIRootView, DefaultRouter

from .views import ObtainTokenView, ProductViewSet, StockAdjustmentViewSet, StockMovementViewSet


class InventoryRoot(APIRootView):
    """The warehouse inventory API: products and their stock, changed only through
    validated operations, every change on the ledger. Interactive docs: /api/docs/."""


class Router(DefaultRouter):
    APIRootView = InventoryRoot


router = Router()
router.register("products", ProductViewSet)
router.register("movements", StockMovementViewSet)
router.register("stock-adjustments", StockAdjustmentViewSet, basename="stock-adjustment")

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="token"),
    *router.urls,
]
