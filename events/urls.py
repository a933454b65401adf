from rest_framework.routers import SimpleRouter

from .views import DeliveryViewSet, EventViewSet, WebhookEndpointViewSet

router = SimpleRouter()
router.register("events", EventViewSet)
router.register("webhook-endpoints", WebhookEndpointViewSet)
router.register("webhook-deliveries", DeliveryViewSet)

urlpatterns = router.urls
