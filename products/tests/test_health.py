"""GET /healthz and GET /readyz: cheap JSON answers for load balancers, outside
authentication, throttling, host validation and HTTPS redirects."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from .conftest import assert_database_unavailable, requires_postgres


def test_healthz_answers_without_touching_the_database(client):
    # No database access is allowed in this test: a query would fail the request.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"status": "ok"}


def test_healthz_answers_while_the_database_is_down(client, database_unreachable):
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_readyz_is_200_when_the_database_answers_and_is_migrated(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"status": "ready"}


def test_readyz_is_503_while_the_database_is_unreachable(client, database_unreachable):
    response = client.get("/readyz")

    body = assert_database_unavailable(response)
    assert body["instance"] == "/readyz"
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_is_503_while_a_migration_is_not_applied(client):
    executor = MigrationExecutor(connection)
    app, name = next(node for node in executor.loader.graph.leaf_nodes() if node[0] == "products")
    MigrationRecorder(connection).record_unapplied(app, name)  # rolled back after the test

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["code"] == "migrations_pending"
    assert body["pending_migrations"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_checks_need_no_credentials_and_are_not_throttled(client, settings, path):
    anonymous_rate = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["anon"].split("/")[0])

    statuses = {client.get(path).status_code for _ in range(anonymous_rate + 5)}

    assert statuses == {200}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_checks_answer_any_host_name_over_plain_http(client, settings, path):
    # A load balancer probes each instance by its address, not by the public name.
    settings.SECURE_SSL_REDIRECT = True

    response = client.get(path, HTTP_HOST="10.1.2.3:8000")

    assert response.status_code == 200
    # Everything else still checks the host.
    assert client.get("/api/", HTTP_HOST="10.1.2.3:8000").status_code == 400


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_health_checks_refuse_other_methods_with_405(client, method):
    response = getattr(client, method)("/healthz")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["code"] == "method_not_allowed"


@requires_postgres
@pytest.mark.django_db
def test_readyz_costs_two_small_queries(client, django_assert_num_queries):
    # Does the migrations table exist, and what does it hold.
    with django_assert_num_queries(2):
        assert client.get("/readyz").status_code == 200
