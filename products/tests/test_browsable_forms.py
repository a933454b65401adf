"""The browsable API's forms start from a body that the API accepts once the required
fields are filled in: no `null` for an optional field."""

import html
import json
import re

import pytest

from .conftest import make_product

pytestmark = pytest.mark.django_db


def prefilled(client, url: str) -> dict:
    page = client.get(url, HTTP_ACCEPT="text/html").content.decode()
    forms = re.findall(r'<textarea[^>]*name="_content"[^>]*>(.*?)</textarea>', page, re.S)
    assert forms, "no raw-data form on the page"
    return json.loads(html.unescape(forms[0]))


def test_the_new_product_form_submits_with_only_the_required_fields_filled(api_client):
    body = prefilled(api_client, "/api/products/")
    body.update(sku="FORM-1", name="Filled in the form")

    response = api_client.post("/api/products/", body, format="json")

    assert None not in body.values()
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("action", ["increment", "decrement"])
def test_the_stock_action_forms_submit_as_they_are(api_client, action):
    product = make_product(stock_quantity=5)
    url = f"/api/products/{product.pk}/{action}/"
    body = prefilled(api_client, url)

    response = api_client.post(url, body, format="json")

    assert body["quantity"] == 1
    assert response.status_code == 200, response.content


def test_the_pages_carry_the_project_s_name_not_the_framework_s(api_client, admin_client):
    root = api_client.get("/api/", HTTP_ACCEPT="text/html").content.decode()
    login = api_client.get("/api-auth/login/").content.decode()
    admin = admin_client.get("/admin/").content.decode()

    assert "Warehouse inventory API" in root
    assert "Django REST framework" not in root
    assert "DefaultRouter" not in root
    assert "Warehouse inventory API" in login
    assert "Django REST framework" not in login
    assert "Warehouse inventory" in admin
    assert "Django administration" not in admin
