"""Token authentication loads the user's permissions with the token, in one query
(products/authentication.py): the same answers as Django's ModelBackend."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token

from products import roles
from products.authentication import TokenAuthentication

from .conftest import make_product, make_user, role_group, token_client

pytestmark = pytest.mark.django_db


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def decrement(client, product):
    return client.post(f"/api/products/{product.pk}/decrement/", {"quantity": 1}, format="json")


def test_the_token_query_loads_exactly_the_permissions_model_backend_would():
    user = make_user("staff")
    user.user_permissions.add(permission(roles.COUNT_STOCK))
    user.groups.add(role_group("admin"))  # a permission in two groups comes once
    key = Token.objects.create(user=user).key

    authenticated, _ = TokenAuthentication().authenticate_credentials(key)

    fresh = type(user).objects.get(pk=user.pk)
    assert authenticated.get_all_permissions() == fresh.get_all_permissions()
    assert authenticated.get_user_permissions() == {roles.COUNT_STOCK}
    assert authenticated.get_group_permissions() == set(roles.ROLES[roles.INVENTORY_ADMIN])


def test_a_superusers_permissions_are_all_of_them_as_with_model_backend():
    user = make_user(superuser=True, username="root")
    key = Token.objects.create(user=user).key

    authenticated, _ = TokenAuthentication().authenticate_credentials(key)

    fresh = type(user).objects.get(pk=user.pk)
    assert authenticated.get_all_permissions() == fresh.get_all_permissions()
    assert authenticated.get_user_permissions() == fresh.get_user_permissions()
    assert roles.COUNT_STOCK in authenticated.get_all_permissions()


def test_a_permission_granted_to_the_user_alone_is_honoured():
    user = make_user()  # in no group
    user.user_permissions.add(permission(roles.ADJUST_STOCK))
    product = make_product(stock_quantity=5)

    assert decrement(token_client(user), product).status_code == 200


def test_a_role_taken_away_applies_to_the_next_request():
    user = make_user("staff")
    client = token_client(user)
    product = make_product(stock_quantity=5)
    assert decrement(client, product).status_code == 200

    user.groups.clear()

    assert decrement(client, product).status_code == 403
    product.refresh_from_db()
    assert product.stock_quantity == 4


def test_a_superuser_in_no_group_may_do_everything():
    client = token_client(make_user(superuser=True, email="root@example.com", password="x" * 12))
    product = make_product(stock_quantity=5)

    assert decrement(client, product).status_code == 200
    assert client.get(f"/api/products/{product.pk}/movements/").status_code == 200


def test_an_inactive_users_token_is_401():
    user = make_user("admin")
    client = token_client(user)
    user.is_active = False
    user.save()

    response = client.get("/api/products/")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_codename_with_a_comma_grants_only_itself():
    user = make_user()
    odd = Permission.objects.create(
        codename="x,products.delete_product",
        name="An oddly named permission",
        content_type=permission(roles.ADJUST_STOCK).content_type,
    )
    user.user_permissions.add(odd)
    key = Token.objects.create(user=user).key

    authenticated, _ = TokenAuthentication().authenticate_credentials(key)

    assert authenticated.get_all_permissions() == {"products.x,products.delete_product"}
    assert not authenticated.has_perm("products.delete_product")
