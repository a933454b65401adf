from django.urls import path
from rest_framework.routers import DefaultRouter

from .views import ObtainTokenView, ProductViewSet

router = DefaultRouter()
router.register("products", ProductViewSet)

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="token"),
    *router.urls,
]
