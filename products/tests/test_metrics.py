"""/metrics: who may read it, and that the counters move for what they count."""

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.throttling import AnonRateThrottle

from core import metrics

from .conftest import make_product, requires_postgres

pytestmark = pytest.mark.django_db


def scrape(**extra) -> dict[tuple, float]:
    """Every sample of a scrape from 127.0.0.1, as {(name, sorted labels): value}."""
    response = Client().get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def stock_operations(samples: dict, kind: str, outcome: str) -> float:
    return value(samples, "inventory_stock_operations_total", kind=kind, outcome=outcome)


def test_metrics_are_served_to_a_local_address_by_default():
    response = Client().get("/metrics")

    assert response.status_code == 200
    assert b"inventory_http_request_duration_seconds" in response.content
    assert response["Cache-Control"] == "no-store"


def test_metrics_are_refused_to_other_addresses_with_a_problem_response():
    response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "permission_denied"
    assert b"inventory_" not in response.content


def test_an_allowed_network_lets_its_addresses_in(settings):
    settings.METRICS_ALLOWED_IPS = ("10.1.0.0/16",)

    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403


def test_the_metrics_token_opens_it_from_anywhere_and_a_wrong_one_does_not(settings):
    settings.METRICS_ALLOWED_IPS = ()
    settings.METRICS_TOKEN = "scrape-secret-0123456789"
    client = Client(REMOTE_ADDR="203.0.113.9")

    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION="Token scrape-secret-0123456789").status_code
        == 403
    )
    ok = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-0123456789")
    assert ok.status_code == 200


def test_metrics_take_only_get():
    assert Client().post("/metrics").status_code == 405


def test_stock_operations_are_counted_by_kind_and_outcome(api_client):
    product = make_product(stock_quantity=5)
    url = f"/api/products/{product.pk}/decrement/"
    before = scrape()

    assert api_client.post(url, {"quantity": 2}, format="json").status_code == 200
    insufficient = api_client.post(url, {"quantity": 50}, format="json")
    changed = api_client.post(url, {"quantity": 1, "expected_quantity": 99}, format="json")
    stale = api_client.post(url, {"quantity": 1}, format="json", HTTP_IF_MATCH='"1"')

    assert (insufficient.status_code, insufficient.json()["code"]) == (409, "insufficient_stock")
    assert (changed.status_code, changed.json()["code"]) == (409, "stock_changed")
    assert (stale.status_code, stale.json()["code"]) == (412, "precondition_failed")
    after = scrape()
    for outcome in ("ok", "insufficient_stock", "stock_changed", "precondition_failed"):
        moved = stock_operations(after, "decrement", outcome)
        assert moved - stock_operations(before, "decrement", outcome) == 1, outcome


def test_a_bulk_adjustment_is_counted_once(api_client):
    product = make_product(stock_quantity=5)
    before = scrape()

    response = api_client.post(
        "/api/stock-adjustments/", {"lines": [{"product": product.pk, "delta": -9}]}, format="json"
    )

    assert response.status_code == 409
    after = scrape()
    moved = stock_operations(after, "adjustment", "insufficient_stock")
    assert moved - stock_operations(before, "adjustment", "insufficient_stock") == 1


def test_requests_are_labelled_by_url_pattern_and_status(api_client):
    product = make_product(stock_quantity=5)
    route = "/api/products/{pk}/decrement/"
    labels = {"route": route, "method": "POST", "status": "409"}
    count = "inventory_http_request_duration_seconds_count"
    before = value(scrape(), count, **labels)

    api_client.post(f"/api/products/{product.pk}/decrement/", {"quantity": 50}, format="json")

    samples = scrape()
    assert value(samples, count, **labels) - before == 1
    bucket = "inventory_http_request_duration_seconds_bucket"
    assert value(samples, bucket, **labels, le="+Inf") == value(samples, count, **labels)
    routes = {dict(key[1]).get("route") for key in samples}
    assert not any(str(product.pk) in (route or "") for route in routes)


def test_unknown_urls_and_methods_share_one_label(api_client):
    api_client.get("/api/no-such-thing/12345/")
    api_client.generic("BREW", "/api/products/")

    samples = scrape()
    count = "inventory_http_request_duration_seconds_count"
    assert value(samples, count, route="unmatched", method="GET", status="404") >= 1
    assert value(samples, count, route="/api/products/", method="other", status="405") >= 1
    assert not any("no-such-thing" in str(key) for key in samples)


@pytest.mark.parametrize(
    ("route", "label"),
    [
        ("api/products/(?P<pk>[^/.]+)/decrement/$", "/api/products/{pk}/decrement/"),
        ("api/products\\.(?P<format>[a-z0-9]+)/?$", "/api/products.{format}"),
        (
            "admin/products/product/<path:object_id>/change/",
            "/admin/products/product/{object_id}/change/",
        ),
        ("api/auth/token/", "/api/auth/token/"),
    ],
)
def test_route_labels_are_the_patterns_with_named_parts(route, label):
    assert metrics.route_label(route) == label


def test_throttled_requests_are_counted(monkeypatch, anon_client):
    monkeypatch.setattr(AnonRateThrottle, "rate", "1/minute", raising=False)
    before = value(scrape(), "inventory_throttled_requests_total")

    statuses = [anon_client.get("/api/products/").status_code for _ in range(3)]

    assert statuses == [401, 429, 429]
    assert value(scrape(), "inventory_throttled_requests_total") - before == 2


@requires_postgres
def test_the_queue_depth_is_read_at_scrape_time():
    samples = scrape()

    assert ("inventory_webhook_deliveries_pending", ()) in samples
    assert value(samples, "inventory_queue_jobs", queue="webhooks", status="todo") >= 0
    assert ("inventory_queue_jobs", (("queue", "webhooks"), ("status", "doing"))) in samples


def test_a_request_relayed_by_a_proxy_is_not_trusted_by_its_address(settings):
    """Behind a proxy on the same host every request comes from 127.0.0.1."""
    settings.METRICS_TOKEN = "scrape-secret"
    local = Client(REMOTE_ADDR="127.0.0.1")

    relayed = local.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    forwarded = local.get("/metrics", HTTP_FORWARDED="for=203.0.113.9")
    with_token = local.get(
        "/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-secret"
    )

    assert (relayed.status_code, forwarded.status_code, with_token.status_code) == (403, 403, 200)
