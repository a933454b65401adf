"""The negotiation's shortcut gives DRF's own answer, and leaves the rest to DRF."""

import pytest
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from core.negotiation import ContentNegotiation
from products.exports import CSVRenderer

RENDERER_LISTS = [
    [JSONRenderer(), BrowsableAPIRenderer()],
    [JSONRenderer(), BrowsableAPIRenderer(), CSVRenderer()],
    [BrowsableAPIRenderer(), JSONRenderer()],  # not JSON first: DRF decides
]
ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "text/html",
    "text/csv",
    "application/json; indent=4",
    "application/*",
    "text/html, */*;q=0.1",
]


def answer(negotiation, accept, renderers, query=""):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get(f"/api/products/{query}", **headers))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except Exception as exc:  # NotAcceptable, Http404: compared by type
        return type(exc)
    return type(renderer), media_type


@pytest.mark.parametrize("renderers", RENDERER_LISTS)
@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?format=api", "?format=csv"])
def test_the_shortcut_answers_as_drf_would(renderers, accept, query):
    ours = answer(ContentNegotiation(), accept, renderers, query)
    assert ours == answer(DefaultContentNegotiation(), accept, renderers, query)


def test_the_common_case_takes_the_shortcut(monkeypatch):
    monkeypatch.setattr(
        DefaultContentNegotiation, "select_renderer", lambda *args: pytest.fail("not short")
    )
    for accept in (None, "*/*", "application/json"):
        assert answer(ContentNegotiation(), accept, RENDERER_LISTS[0]) == (
            JSONRenderer,
            "application/json",
        )
