"""What a newcomer clicks in /api/docs/: every request example, sent as it is to a
freshly seeded database, succeeds; optional filters carry no example that would filter;
"Authorize" takes the key as printed (HTTP bearer)."""

import pytest
from django.core.management import call_command

from products.models import Product
from reservations import services as reservation_services

from .conftest import make_user, token_client

pytestmark = pytest.mark.django_db

# Examples that cannot succeed as they are: the user's own credentials, and a webhook
# URL, which must resolve to a public address (no DNS in the tests; and on the SQLite
# default an endpoint is refused with 409 deliveries_need_postgresql).
NOT_AS_IS = {"/api/auth/token/", "/api/webhook-endpoints/"}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def request_examples(schema) -> list[tuple[str, str, str, dict]]:
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for name, example in content.get("application/json", {}).get("examples", {}).items():
                found.append((method, path, name, example["value"]))
    return found


def test_every_operation_with_a_body_has_an_example(schema):
    with_body = {
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    with_example = {(method, path) for method, path, _, _ in request_examples(schema)}

    assert with_body - with_example == set()


def test_every_request_example_succeeds_on_a_freshly_seeded_database(schema):
    call_command("seed_products", count=20, verbosity=0)
    client = token_client(make_user("admin"))
    first = Product.objects.get(sku="SEED-000000001")
    in_stock = Product.objects.filter(stock_quantity__gte=50).order_by("id").first()
    results = []
    for method, path, name, body in request_examples(schema):
        if any(path.startswith(prefix) for prefix in NOT_AS_IS):
            continue
        # A product a user would pick from the list: for PUT, the one the example names;
        # for a reservation's operations, a reservation of it just made.
        product = first if method == "put" else in_stock
        target = product.pk
        if path.startswith("/api/reservations/"):
            target = reservation_services.reserve(
                product_id=product.pk, quantity=2, expires_in=900
            ).pk
        url = path.replace("{id}", str(target))
        response = getattr(client, method)(url, body, format="json")
        results.append((method, path, name, response.status_code, response.content[:300]))

    failures = [r for r in results if not 200 <= r[3] < 300]
    assert len(results) >= 9  # products: create, PUT, PATCH; the stock actions; bulk
    assert failures == []


def test_optional_filters_carry_no_example_value(schema):
    with_examples = [
        (path, parameter["name"])
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
        and ("example" in parameter or "example" in parameter.get("schema", {}))
    ]

    assert with_examples == []


def test_authorize_is_http_bearer_and_a_bearer_key_works(schema):
    user = make_user("staff")
    key = token_client(user)._credentials["HTTP_AUTHORIZATION"].split()[1]
    bearer, wrong = token_client(), token_client()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer\t{key}")  # any white space, as Token
    wrong.credentials(HTTP_AUTHORIZATION="Bearer " + "0" * 40)

    ok = bearer.get("/api/products/")
    refused = wrong.get("/api/products/")

    assert schema["components"]["securitySchemes"]["tokenAuth"]["scheme"] == "bearer"
    assert ok.status_code == 200
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"


def test_operations_are_described_for_users_not_by_the_code_s_docstrings(schema):
    descriptions = " ".join(
        operation.get("description", "")
        for operations in schema["paths"].values()
        for operation in operations.values()
    )

    for internal in ("Count each request against the throttles", "csv_actions", "services"):
        assert internal not in descriptions
