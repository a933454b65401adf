"""View plumbing every app's API shares: throttling before refusals, strict query
parameters, ids from URLs, request examples for the docs."""

from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiExample
from rest_framework.exceptions import AuthenticationFailed, NotFound, ValidationError

from .limits import MAX_ID
from .pagination import WalkingCursorPagination, positive_int_text


class ThrottleFirstMixin:
    """Count each request against the throttles before its credentials and permissions
    can refuse it.

    DRF checks permissions before throttles, and credentials before both, so a client
    sending no credentials, or guessing tokens, would get its 401s unthrottled.
    """

    def perform_authentication(self, request):
        try:
            super().perform_authentication(request)
        except AuthenticationFailed:
            self.check_throttles(request)  # as the anonymous user DRF has set
            raise

    def check_permissions(self, request):
        self.check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request):
        # Once per request: the browsable API checks permissions again on copies of
        # the request, which share the underlying Django request.
        if not getattr(request._request, "_throttles_checked", False):
            request._request._throttles_checked = True
            super().check_throttles(request)


_ALLOWED_QUERY_PARAMS: dict[tuple, frozenset[str]] = {}


class StrictQueryParamsMixin:
    """Answer unknown or repeated query parameters with a 400 instead of ignoring them.

    The parameters a view accepts are the ones it documents: its filters' for list
    GETs, its paginator's for the `paginated_actions`, and `format` everywhere.
    """

    paginated_actions = frozenset({"list"})
    # An empty value filters nothing, so it is refused, except where it means something:
    # the first page of a cursor walk, or no search.
    may_be_empty = frozenset({"cursor", "search"})

    def perform_content_negotiation(self, request, force=False):
        """An unknown `?format=` is a bad parameter (400), not a missing page (DRF's 404)."""
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            if "format" not in request.query_params:
                raise
            if getattr(self, request.method.lower(), None) is None:
                # A method the view does not have: dispatch answers 405, in JSON.
                return super().perform_content_negotiation(request, force=True)
            formats = ", ".join(renderer.format for renderer in self.get_renderers())
            raise ValidationError({"format": [f"One of: {formats}."]}) from None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if getattr(self, request.method.lower(), None) is None:
            return  # the method is not allowed: let dispatch answer 405
        allowed = self.allowed_query_params()
        errors = {}
        for name, values in request.query_params.lists():
            if name not in allowed:
                errors[name] = ["Unknown query parameter."]
            elif len(values) > 1:
                errors[name] = ["Give this parameter once."]
            elif values == [""] and name not in self.may_be_empty:
                errors[name] = ["Give a value, or leave the parameter out."]
        if errors:
            raise ValidationError(errors)

    @property
    def paginator(self):
        """Page numbers, or a cursor when the request has `cursor` (see pagination.py)."""
        if not hasattr(self, "_paginator"):
            request = getattr(self, "request", None)
            walking = request is not None and "cursor" in request.query_params
            if self.pagination_class is None:
                self._paginator = None
            elif walking:
                self._paginator = WalkingCursorPagination()
            else:
                self._paginator = self.pagination_class()
        return self._paginator

    def allowed_query_params(self) -> set[str]:
        # The same for every request of an action and method: worked out once.
        key = (type(self), getattr(self, "action", None), self.request.method == "GET")
        allowed = _ALLOWED_QUERY_PARAMS.get(key)
        if allowed is None:
            allowed = _ALLOWED_QUERY_PARAMS[key] = frozenset(self._allowed_query_params())
        return allowed

    def _allowed_query_params(self) -> set[str]:
        allowed = {"format"}
        if self.request.method != "GET":
            return allowed
        if getattr(self, "detail", True) is False:
            for backend in (backend_class() for backend_class in self.filter_backends):
                if isinstance(backend, DjangoFilterBackend):
                    filterset = backend.get_filterset_class(self, self.get_queryset())
                    allowed.update(filterset.base_filters if filterset else ())
                else:
                    allowed.update(p["name"] for p in backend.get_schema_operation_parameters(self))
        if getattr(self, "action", None) in self.paginated_actions and self.pagination_class:
            # The documented ones: `page`, `page_size` and `cursor`, with a cursor too.
            paginator = self.pagination_class()
            allowed.update(p["name"] for p in paginator.get_schema_operation_parameters(self))
        return allowed


def positive_id(value: str) -> int:
    """An id from the URL; a 404 for anything no row can have (before any query)."""
    if not positive_int_text(value, maximum=MAX_ID):
        raise NotFound()
    return int(value)


def example(summary: str, value: dict) -> OpenApiExample:
    """A request body for the docs' "Try it out", one that succeeds on a freshly seeded
    database (`manage.py seed_products`; products/tests/test_schema_examples.py)."""
    return OpenApiExample(summary, value=value, request_only=True)
