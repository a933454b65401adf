"""WSGI entry point: `gunicorn inventory_project.wsgi`."""

import codecs
import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver
from django.utils.http import parse_header_parameters

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_project.settings")

django_application = get_wsgi_application()

# Everything loaded so far lives as long as the process: out of the garbage collector's
# sight, a full collection (which a busy worker runs every few seconds) no longer walks
# the hundreds of thousands of objects of Django, DRF and the URL patterns (loaded here
# first, rather than by the first request).
URL_PATTERNS = get_resolver().url_patterns
gc.freeze()


def charset_is_usable(content_type: str) -> bool:
    """Whether the Content-Type's charset, if any, is a text encoding that decodes ASCII.

    Django builds its request object before any middleware runs, and crashes with a
    bare 500 on a charset such as `rot13` (a codec, not a text encoding), `punycode`,
    `undefined`, or one with a NUL in it; so such requests are refused here.
    """
    charset = parse_header_parameters(content_type)[1].get("charset")
    if charset is None:
        return True
    try:
        codec = codecs.lookup(charset)
        # Decode as Django will (a query string): some "text" codecs still cannot.
        return codec._is_text_encoding and b"a=1&b=%20".decode(codec.name) == "a=1&b=%20"
    except (LookupError, ValueError, UnicodeError):
        return False


def application(environ, start_response):
    if charset_is_usable(environ.get("CONTENT_TYPE", "")):
        return django_application(environ, start_response)

    from core.errors import PROBLEM_CONTENT_TYPE, problem_bytes

    body = problem_bytes(
        415,
        "unsupported_media_type",
        "Unknown or unusable charset in Content-Type.",
        instance=environ.get("PATH_INFO", ""),
    )
    headers = [("Content-Type", PROBLEM_CONTENT_TYPE), ("Content-Length", str(len(body)))]
    start_response("415 Unsupported Media Type", headers)
    return [body]
