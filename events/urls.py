from rest_framework.routers import SimpleRouter

from .views import EventViewSet

router = SimpleRouter()
router.register("events", EventViewSet)

urlpatterns = router.urls
