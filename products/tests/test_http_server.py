"""The HTTP layer (issue 12): request bodies are read or refused."""

import pytest

from .conftest import make_product, make_user, token_client

# The middleware, through the Django test client.


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [{}, {"CONTENT_LENGTH": "36"}])
def test_a_chunked_patch_is_refused_with_411_and_changes_nothing(headers):
    product = make_product(name="before", stock_quantity=5)
    client = token_client(make_user("admin"))

    response = client.generic(
        "PATCH",
        f"/api/products/{product.pk}/",
        b'{"name": "after", "stock_quantity": 99}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        **headers,
    )

    assert response.status_code == 411
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "length_required"
    assert response.json()["instance"] == f"/api/products/{product.pk}/"
    # No Content-Length: the development server closes the connection after it.
    assert not response.has_header("Content-Length")
    product.refresh_from_db()
    assert (product.name, product.stock_quantity) == ("before", 5)


@pytest.mark.django_db
def test_a_chunked_increment_is_refused_with_411_not_a_missing_field():
    product = make_product(stock_quantity=5)
    client = token_client(make_user("admin"))

    response = client.generic(
        "POST",
        f"/api/products/{product.pk}/increment/",
        b'{"quantity": 3}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )

    assert response.status_code == 411
    assert response.json()["code"] == "length_required"
    product.refresh_from_db()
    assert product.stock_quantity == 5


@pytest.mark.django_db
def test_a_body_with_a_content_length_still_goes_through():
    product = make_product(name="before")
    client = token_client(make_user("admin"))

    response = client.patch(f"/api/products/{product.pk}/", {"name": "after"}, format="json")

    assert response.status_code == 200
    product.refresh_from_db()
    assert product.name == "after"
