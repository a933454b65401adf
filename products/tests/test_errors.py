"""Every error is an RFC 9457 problem document with a stable `code`."""

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
