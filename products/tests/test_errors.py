"""Every error is an RFC 9457 problem document with a stable `code`."""

import io
import json
import logging

import pytest

from products import services

from .conftest import make_product

pytestmark = pytest.mark.django_db

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "instance"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:inventory:problem:{code}"
    assert body["detail"]
    return body


def test_validation_error_has_per_field_messages(api_client):
    body = assert_problem(
        api_client.post("/api/products/", {"name": ""}, format="json"), 400, "validation_error"
    )
    assert body["title"] == "Bad Request"
    assert body["instance"] == "/api/products/"
    assert body["errors"]["sku"] == ["This field is required."]
    assert body["errors"]["name"] == ["This field may not be blank."]


def test_malformed_json_is_a_parse_error(api_client):
    response = api_client.generic(
        "POST", "/api/products/", b"{oops", content_type="application/json"
    )

    body = assert_problem(response, 400, "parse_error")
    assert "JSON parse error" in body["detail"]


@pytest.mark.parametrize("raw", [b"[]", b'"a string"', b"42", b"null"])
def test_json_that_is_not_an_object_is_400(api_client, raw):
    response = api_client.generic("POST", "/api/products/", raw, content_type="application/json")

    body = assert_problem(response, 400, "validation_error")
    assert "non_field_errors" in body["errors"]


@pytest.mark.parametrize(
    "path", ["/api/nothing-here/", "/api/products/1/unknown-action/", "/api/products/x/y/z"]
)
def test_unknown_api_url_is_a_json_404(api_client, path):
    assert_problem(api_client.get(path), 404, "not_found")


def test_unknown_url_outside_the_api_is_a_json_404(client):
    assert_problem(client.get("/no-such-page/"), 404, "not_found")


def test_unknown_product_is_a_json_404(api_client):
    assert_problem(api_client.get("/api/products/424242/"), 404, "not_found")


def test_wrong_method_is_a_json_405(api_client):
    assert_problem(api_client.delete("/api/products/"), 405, "method_not_allowed")


def test_insufficient_stock_is_a_409_problem(api_client):
    product = make_product(stock_quantity=1)

    response = api_client.post(
        f"/api/products/{product.pk}/decrement/", {"quantity": 2}, format="json"
    )

    body = assert_problem(response, 409, "insufficient_stock")
    assert (body["available"], body["requested"]) == (1, 2)


def test_unexpected_exception_is_a_500_problem_without_internals(api_client, monkeypatch, caplog):
    product = make_product()

    def broken(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(services, "increment_stock", broken)
    response = api_client.post(
        f"/api/products/{product.pk}/increment/", {"quantity": 1}, format="json"
    )

    body = assert_problem(response, 500, "server_error")
    assert "secret" not in response.content.decode()
    assert body["title"] == "Internal Server Error"
    assert "secret internal detail" in caplog.text


def test_browsable_api_still_renders_errors_as_html(api_client):
    response = api_client.get("/api/products/424242/", HTTP_ACCEPT="text/html")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_lone_surrogate_in_a_field_name_is_a_400_not_a_crash(api_client):
    response = api_client.generic(
        "POST", "/api/products/", b'{"\\ud800": 1}', content_type="application/json"
    )

    body = assert_problem(response, 400, "validation_error")
    assert list(body["errors"]) == ["\\ud800"]


def test_json_nested_too_deeply_is_a_parse_error(api_client):
    raw = b"[" * 100_000 + b"]" * 100_000

    response = api_client.generic("POST", "/api/products/", raw, content_type="application/json")

    assert_problem(response, 400, "parse_error")


def test_a_body_over_the_size_limit_is_413(api_client, settings):
    product = make_product(stock_quantity=5)
    raw = b'{"quantity": 1}' + b" " * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    response = api_client.generic(
        "POST", f"/api/products/{product.pk}/increment/", raw, content_type="application/json"
    )

    assert_problem(response, 413, "request_too_large")
    product.refresh_from_db()
    assert product.stock_quantity == 5


@pytest.mark.parametrize(
    "raw",
    [
        b'{"quantity": 1' + b"0" * 5_000 + b"}",  # past Python's int digit limit
        b'{"quantity": 1e999}',  # parses as infinity
        b'{"quantity": 1, "note": "' + b"x" * 2_000_000 + b'"}',
        b'{"quantity": 1, "' + b"k" * 2_000_000 + b'": 1}',
        b'{"quantity": 1, "note": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    ],
    ids=["huge-integer", "infinity", "huge-string", "huge-key", "deep-array"],
)
def test_huge_json_within_the_size_limit_is_a_clean_400(api_client, raw):
    product = make_product(stock_quantity=5)

    response = api_client.generic(
        "POST", f"/api/products/{product.pk}/increment/", raw, content_type="application/json"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] in ("validation_error", "parse_error")
    product.refresh_from_db()
    assert product.stock_quantity == 5


def test_a_bulk_adjustment_of_100000_lines_is_400_without_touching_stock(api_client):
    product = make_product(stock_quantity=5)
    # Id 1 whatever the product's: a long id would take the body past its size limit (413).
    lines = [{"product": 1, "delta": 1}] * 100_000

    response = api_client.post("/api/stock-adjustments/", {"lines": lines}, format="json")

    body = assert_problem(response, 400, "validation_error")
    assert "lines" in body["errors"]
    product.refresh_from_db()
    assert product.stock_quantity == 5


def test_too_many_query_parameters_is_400(api_client):
    query = "&".join(f"k{i}=1" for i in range(1001))

    response = api_client.get(f"/api/products/?{query}")

    assert_problem(response, 400, "validation_error")


def test_a_method_not_allowed_is_405_whatever_the_query_string(api_client):
    response = api_client.generic("TRACE", "/api/products/below_requirement/?page=1")

    assert_problem(response, 405, "method_not_allowed")


@pytest.mark.parametrize("product_id", ["0", "abc", "9" * 20])
def test_a_stock_operation_on_an_impossible_id_is_404_whatever_the_body(api_client, product_id):
    url = f"/api/products/{product_id}/decrement/"

    response = api_client.post(url, {"quantity": "x"}, format="json")

    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unknown_api_url_is_a_404_for_every_method_not_a_csrf_failure(method):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    response = getattr(client, method)("/api/products", {"quantity": 1}, format="json")

    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=rot13",
        "application/json; charset=base64",
        "application/json; charset=punycode",
        "application/json; charset=undefined",
        "text/x; charset=\x00",
    ],
)
def test_the_wsgi_app_refuses_an_unusable_charset_with_a_415_problem(content_type):
    from inventory_project.wsgi import application

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/products/",
        "QUERY_STRING": "page=1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": "2",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(b"{}"),
        "wsgi.url_scheme": "http",
    }
    started = {}

    body = b"".join(
        application(environ, lambda status, headers: started.update(s=status, h=headers))
    )

    assert started["s"] == "415 Unsupported Media Type"
    assert ("Content-Type", "application/problem+json") in started["h"]
    assert json.loads(body)["code"] == "unsupported_media_type"


def test_the_wsgi_app_passes_usable_charsets_through():
    from inventory_project.wsgi import charset_is_usable

    assert charset_is_usable("application/json; charset=utf-8")
    assert charset_is_usable("application/json")
    assert not charset_is_usable("application/json; charset=no-such-codec")


def test_a_value_the_database_refuses_is_a_400_not_a_500(api_client, monkeypatch):
    from django.db import DataError

    product = make_product()

    def refused(**kwargs):
        raise DataError("value out of range")

    monkeypatch.setattr(services, "increment_stock", refused)
    response = api_client.post(
        f"/api/products/{product.pk}/increment/", {"quantity": 1}, format="json"
    )

    assert_problem(response, 400, "invalid_value")


@pytest.mark.parametrize(
    ("path", "formats"),
    [
        ("/api/products/", "json, api, csv"),
        ("/api/movements/", "json, api, csv"),
        ("/api/products/1/", "json, api"),
    ],
)
def test_an_unknown_format_parameter_is_400(api_client, path, formats):
    make_product()

    response = api_client.get(path, {"format": "xml"})

    assert response.status_code == 400
    assert response.json()["errors"] == {"format": [f"One of: {formats}."]}


@pytest.mark.parametrize("format_", ["csv", "xml"])
def test_a_method_a_view_lacks_is_405_whatever_format_it_asks_for(api_client, format_):
    response = api_client.generic("TRACE", f"/api/movements/?format={format_}")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_a_request_for_an_unknown_host_is_a_400_that_logs_no_traceback(client):
    """Any client can send any Host: Django's ERROR with a traceback for each would let
    it fill the error log. (pytest hangs its own capture handlers on every logger, so
    the test looks at the logger's configuration rather than at captured records.)"""
    logger = logging.getLogger("django.security.DisallowedHost")

    response = client.get("/api/products/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert logger.propagate is False
    assert not [h for h in logger.handlers if not type(h).__module__.startswith("_pytest")]
