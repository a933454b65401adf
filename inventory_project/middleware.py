"""Rules of the HTTP layer that hold whatever server runs the app."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
