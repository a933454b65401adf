"""Who may do what: every endpoint and method against every kind of caller."""

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.throttling import AnonRateThrottle, UserRateThrottle
from products.models import Product, StockMovement

from .conftest import make_product, make_user, token_client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
CALLERS = ["anonymous", "no_role", "staff", "admin", "superuser"]
EVERYONE = {"staff", "admin", "superuser"}
MANAGERS = {"admin", "superuser"}


def client_for(caller: str) -> APIClient:
    if caller == "anonymous":
        return APIClient()
    if caller == "no_role":
        return token_client(make_user())
    if caller == "superuser":
        return token_client(make_user(superuser=True))
    return token_client(make_user(caller))


def snapshot() -> tuple[list, list]:
    return (
        list(Product.objects.order_by("pk").values_list()),
        list(StockMovement.objects.order_by("pk").values_list()),
    )


# (method, path, body, callers allowed, status when allowed)
MATRIX = [
    ("get", "/api/products/", None, EVERYONE, 200),
    ("get", "/api/products/below_requirement/", None, EVERYONE, 200),
    ("get", "/api/products/{id}/", None, EVERYONE, 200),
    ("post", "/api/products/", {"sku": "NEW-1", "name": "New"}, MANAGERS, 201),
    ("put", "/api/products/{id}/", {"sku": "P-1", "name": "Renamed"}, MANAGERS, 200),
    ("patch", "/api/products/{id}/", {"low_stock_threshold": 99}, MANAGERS, 200),
    ("patch", "/api/products/{id}/", {"price": "1.00"}, MANAGERS, 200),
    ("patch", "/api/products/{id}/", {"stock_quantity": 0}, MANAGERS, 200),
    ("delete", "/api/products/{id}/", None, MANAGERS, 204),
    ("post", "/api/products/{id}/increment/", {"quantity": 1}, EVERYONE, 200),
    ("patch", "/api/products/{id}/increment/", {"quantity": 1}, EVERYONE, 200),
    ("post", "/api/products/{id}/decrement/", {"quantity": 1}, EVERYONE, 200),
    ("patch", "/api/products/{id}/decrement/", {"quantity": 1}, EVERYONE, 200),
    ("post", "/api/products/{id}/count/", {"counted_quantity": 3}, MANAGERS, 200),
    ("get", "/api/products/{id}/movements/", None, MANAGERS, 200),
    ("get", "/api/movements/", None, MANAGERS, 200),
    ("get", "/api/movements/{movement}/", None, MANAGERS, 200),
    (
        "post",
        "/api/stock-adjustments/",
        {"lines": [{"sku": "P-0", "delta": -1}]},
        EVERYONE,
        200,
    ),
    ("get", "/api/", None, EVERYONE | {"no_role"}, 200),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path", "body", "allowed", "success"), MATRIX)
def test_permission_matrix(caller, method, path, body, allowed, success):
    product = make_product(sku="P-0", stock_quantity=10)
    movement = product.movements.get()
    client = client_for(caller)
    before = snapshot()

    url = path.format(id=product.pk, movement=movement.pk)
    response = getattr(client, method)(url, body, format="json")

    if caller in allowed:
        assert response.status_code == success, response.content
        return
    expected, code = (
        (401, "not_authenticated") if caller == "anonymous" else (403, "permission_denied")
    )
    assert response.status_code == expected
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    if expected == 401:
        assert response["WWW-Authenticate"] == "Token"
    assert snapshot() == before


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_are_open_to_everyone(caller, path):
    assert client_for(caller).get(path).status_code == 200


def test_a_wrong_token_is_401_authentication_failed():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/products/")

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_session_login_works_for_the_browsable_api(client):
    user = make_user("staff")
    client.force_login(user)

    response = client.get("/api/products/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200


def test_session_writes_need_the_csrf_token():
    product = make_product(stock_quantity=5)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user("staff"))

    response = client.post(f"/api/products/{product.pk}/increment/", {"quantity": 1}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    product.refresh_from_db()
    assert product.stock_quantity == 5


# The token endpoint


def test_token_endpoint_exchanges_credentials_for_the_users_token():
    user = get_user_model().objects.create_user("scanner7", password="s3cret-pass-9")

    response = APIClient().post(
        "/api/auth/token/", {"username": "scanner7", "password": "s3cret-pass-9"}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}
    again = APIClient().post(
        "/api/auth/token/", {"username": "scanner7", "password": "s3cret-pass-9"}, format="json"
    )
    assert again.json() == response.json()


@pytest.mark.parametrize("body", ["[]", '"scanner7"', "5", "null"])
def test_token_endpoint_answers_a_body_that_is_not_an_object_with_400(body):
    response = APIClient().post("/api/auth/token/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "scanner7", "password": "wrong"}, 401, "authentication_failed"),
        ({"username": "nobody", "password": "s3cret-pass-9"}, 401, "authentication_failed"),
        ({"username": "scanner7"}, 400, "validation_error"),
        ({}, 400, "validation_error"),
        (
            {"username": "scanner7", "password": "s3cret-pass-9", "extra": 1},
            400,
            "validation_error",
        ),
    ],
)
def test_token_endpoint_refuses_bad_credentials(body, status, code):
    get_user_model().objects.create_user("scanner7", password="s3cret-pass-9")

    response = APIClient().post("/api/auth/token/", body, format="json")

    assert response.status_code == status
    assert response.json()["code"] == code
    assert "token" not in response.json()
    assert not Token.objects.exists()


def test_drf_create_token_command_makes_a_working_token():
    make_user("staff", username="picker")

    call_command("drf_create_token", "picker", stdout=io.StringIO())

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get().key}")
    assert client.get("/api/products/").status_code == 200


# Throttling


def test_authenticated_requests_over_the_rate_get_429_with_retry_after(monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "rate", "3/minute", raising=False)
    client = token_client(make_user("staff"))

    statuses = [client.get("/api/products/").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/products/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["code"] == "throttled"
    assert body["retry_after"] > 0
    assert response["Content-Type"] == "application/problem+json"


def test_anonymous_requests_over_the_rate_get_429(monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "rate", "2/minute", raising=False)
    client = APIClient()
    body = {"username": "x", "password": "y"}

    statuses = [client.post("/api/auth/token/", body, format="json").status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


@pytest.mark.parametrize("path", ["/api/products/", "/api/movements/", "/api/products/1/"])
def test_anonymous_requests_to_protected_endpoints_are_throttled_too(monkeypatch, path):
    monkeypatch.setattr(AnonRateThrottle, "rate", "2/minute", raising=False)
    client = APIClient()

    statuses = [client.get(path).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


@pytest.mark.parametrize(
    "credentials",
    [{"HTTP_AUTHORIZATION": "Token " + "0" * 40}, {"HTTP_AUTHORIZATION": "Token"}],
)
def test_requests_with_wrong_credentials_are_throttled_too(monkeypatch, credentials):
    monkeypatch.setattr(AnonRateThrottle, "rate", "2/minute", raising=False)
    client = APIClient()

    statuses = [client.get("/api/products/", **credentials).status_code for _ in range(4)]

    assert statuses == [401, 401, 429, 429]


def test_a_browsable_api_page_counts_once(monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "rate", "3/minute", raising=False)
    client = token_client(make_user("admin"))
    product = make_product()

    statuses = [
        client.get(f"/api/products/{product.pk}/", HTTP_ACCEPT="text/html").status_code
        for _ in range(4)
    ]

    assert statuses == [200, 200, 200, 429]


def test_throttle_rates_come_from_the_environment():
    code = (
        "import django; django.setup();"
        "from rest_framework.settings import api_settings as s;"
        "print(s.DEFAULT_THROTTLE_RATES['user'], s.DEFAULT_THROTTLE_RATES['anon'])"
    )
    env = {**os.environ, "THROTTLE_USER": "7/hour", "THROTTLE_ANON": "2/second"}
    env["DJANGO_SETTINGS_MODULE"] = "inventory_project.settings"

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert result.stdout.split() == ["7/hour", "2/second"], result.stderr


def redis_is_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), 1).close()
    except OSError:
        return False
    return True


# Its own Redis database; TEST_REDIS_URL lets parallel runs on one machine use others.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.mark.skipif(not redis_is_up(), reason="needs Redis on 127.0.0.1:6379")
def test_throttle_counts_are_shared_between_processes_through_the_cache(monkeypatch, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    cache.clear()
    monkeypatch.setattr(AnonRateThrottle, "rate", "3/minute", raising=False)
    # Both processes on one clock, 10 s into a window: if the window changed between
    # them, the first two requests would count for a little less in the next one.
    now = 29_000_000 * 60 + 10.0
    monkeypatch.setattr(AnonRateThrottle, "timer", staticmethod(lambda: now))
    client = APIClient()
    for _ in range(2):
        client.post("/api/auth/token/", {}, format="json")

    # Another process, configured only by CACHE_URL, sees those two requests: it may
    # allow one more from this address, then refuses.
    code = (
        "import django; django.setup();"
        "from django.contrib.auth.models import AnonymousUser;"
        "from django.test import RequestFactory;"
        "from rest_framework.request import Request;"
        "from core.throttling import AnonRateThrottle as T;"
        "T.rate = '3/minute';"
        f"T.timer = staticmethod(lambda: {now!r});"
        "r = Request(RequestFactory().post('/api/auth/token/', REMOTE_ADDR='127.0.0.1'));"
        "r.user = AnonymousUser();"
        "print(T().allow_request(r, None), T().allow_request(r, None))"
    )
    env = {
        **os.environ,
        "CACHE_URL": REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "inventory_project.settings",
    }
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.stdout.split() == ["True", "False"], result.stderr
    finally:
        cache.clear()


# create_api_user


def create_api_user(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_user", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


@pytest.mark.parametrize(
    ("role", "group"), [("admin", "Inventory admin"), ("staff", "Warehouse staff")]
)
def test_create_api_user_prints_a_working_token_once(role, group):
    token, message = create_api_user("scanner1", "--role", role)

    user = get_user_model().objects.get(username="scanner1")
    assert [g.name for g in user.groups.all()] == [group]
    assert user.is_staff
    assert not user.has_usable_password()
    assert token == Token.objects.get(user=user).key
    assert "printed only once" in message
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/products/").status_code == 200

    with pytest.raises(CommandError, match="printed no token: it has one already"):
        create_api_user("scanner1", "--role", role)  # TOKEN=$(…) would be empty: exit 1
    again, message = create_api_user("scanner1", "--role", role, "--keep-token")
    assert again == ""
    assert "existing token is unchanged" in message
    again, message = create_api_user("scanner1", "--role", role, "--password", "a-long-pass-42")
    assert again == ""
    assert "with the new password; its existing token is unchanged" in message


def test_create_api_user_takes_away_superuser_powers_and_stray_permissions():
    from django.contrib.auth.models import Permission

    boss = make_user(superuser=True, username="boss")
    boss.is_active = False
    boss.save()
    boss.user_permissions.add(Permission.objects.get(codename="delete_product"))

    create_api_user("boss", "--role", "staff")

    boss.refresh_from_db()
    assert not boss.is_superuser
    assert boss.is_active
    assert not boss.user_permissions.exists()
    assert not boss.has_perm("products.delete_product")
    assert boss.has_perm("products.adjust_stock")


def test_anonymous_throttle_ignores_a_spoofed_forwarded_for(monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "rate", "2/minute", raising=False)
    body = {"username": "x", "password": "y"}

    statuses = [
        APIClient()
        .post("/api/auth/token/", body, format="json", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
        .status_code
        for i in range(3)
    ]

    assert statuses == [401, 401, 429]


def test_create_api_user_changes_role_and_rotates_the_token_on_request():
    first, _ = create_api_user("ann", "--role", "admin")

    second, _ = create_api_user("ann", "--role", "staff", "--rotate-token")

    user = get_user_model().objects.get(username="ann")
    assert [g.name for g in user.groups.all()] == ["Warehouse staff"]
    assert second
    assert second != first
    assert Token.objects.get(user=user).key == second


def test_create_api_user_with_a_password_can_log_in_to_the_admin(client):
    create_api_user("boss", "--role", "admin", "--password", "a-long-pass-phrase-42")

    assert client.login(username="boss", password="a-long-pass-phrase-42")
    assert client.get("/admin/products/product/").status_code == 200


def test_create_api_user_refuses_a_weak_password_or_unknown_role():
    with pytest.raises(CommandError, match=r"too short|too common"):
        create_api_user("weak", "--role", "staff", "--password", "abc")
    with pytest.raises(CommandError):
        create_api_user("x", "--role", "owner")
    assert not get_user_model().objects.filter(username="weak").exists()


# Production settings


PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "0123456789-abcdefghijklmnopqrstuvwxyz-XYZ",
    "ALLOWED_HOSTS": "inventory.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
}


def check_deploy(env: dict) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )


def test_check_deploy_is_clean_with_the_production_variables():
    result = check_deploy(PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_them():
    result = check_deploy({"DEBUG": "false", "SECRET_KEY": PRODUCTION_ENV["SECRET_KEY"]})

    assert result.returncode != 0
    assert "security.W004" in result.stderr  # HSTS
    assert "security.W008" in result.stderr  # SSL redirect
