"""What the framework costs before any of our work (`make bench-cpu`'s reference rows).

Three views that return the same small JSON body and touch no product, served by our
project as `make serve` runs it (its settings and middleware):
- `django`: a plain Django view, so the row is Django's request cycle and our middleware;
- `drf`: a DRF APIView with no authentication, permission or throttle;
- `drf_auth`: a DRF APIView with the project's defaults: token authentication (one
  query), IsAuthenticated and the throttles.

A GET by id is `drf_auth` plus fetching and representing the product; the difference
between rows is what each layer costs. bench/cpu.py adds these routes to the project's
URLs in its own process only; they are never served.
"""

from django.http import HttpResponse
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

BODY = {"id": 1}


def django_view(request):
    return HttpResponse(b'{"id":1}', content_type="application/json")


class BareView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    def get(self, request):
        return Response(BODY)


class AuthenticatedView(APIView):
    def get(self, request):
        return Response(BODY)


PATHS = {"django": "bench/django/", "drf": "bench/drf/", "drf_auth": "bench/drf-auth/"}
urlpatterns = [
    path(PATHS["django"], django_view),
    path(PATHS["drf"], BareView.as_view()),
    path(PATHS["drf_auth"], AuthenticatedView.as_view()),
]
