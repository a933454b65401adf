"""Rules of the HTTP layer that hold whatever server runs the app."""

from collections.abc import Callable

from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from core.errors import PROBLEM_CONTENT_TYPE, problem_bytes

LENGTH_REQUIRED_DETAIL = (
    "A request body must be sent with a Content-Length header; "
    "Transfer-Encoding (chunked) bodies are not accepted."
)


class LengthRequiredMiddleware:
    """Refuse a request that frames its body with Transfer-Encoding: 411 `length_required`.

    Django reads a body only as far as Content-Length says, so a chunked body reached
    the views as an empty one (a PATCH answered 200 and changed nothing). Django's
    development server cannot decode one at all, so rather than accept chunked bodies
    under gunicorn only, every server refuses them, before anything reads the body.

    The body was not read, so the connection cannot carry another request: the
    response has no Content-Length, which makes the development server close the
    connection after it; the gunicorn worker (inventory_project.gunicorn_worker)
    closes it too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "HTTP_TRANSFER_ENCODING" in request.META:
            body = problem_bytes(
                411, "length_required", LENGTH_REQUIRED_DETAIL, instance=request.path
            )
            return HttpResponse(body, status=411, content_type=PROBLEM_CONTENT_TYPE)
        return self.get_response(request)


class LazyMessageMiddleware(MessageMiddleware):
    """Django's messages (for the admin), their storage made when a request first uses
    it: an API request, which never does, no longer builds one (cookie and session
    stores and a cookie signer; 2 % of a GET's CPU). A storage never used has nothing to
    save, so the response is left alone then, as Django's would be."""

    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        messages = getattr(request, "_messages", None)
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)
