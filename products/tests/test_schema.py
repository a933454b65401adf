import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_validates_with_no_warnings(tmp_path):
    # --fail-on-warn turns any warning into a SystemExit, so this fails on a warning.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", tmp_path / "s.yaml")

    assert "openapi: 3" in (tmp_path / "s.yaml").read_text()


def test_schema_is_served_and_documents_the_stock_actions(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    decrement = schema["paths"]["/api/products/{id}/decrement/"]
    for method in ("post", "patch"):
        operation = decrement[method]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].endswith("/StockChangeRequest")
        assert {"200", "400", "404", "409", "415"} <= operation["responses"].keys()
        conflict = operation["responses"]["409"]["content"]
        assert conflict["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    quantity = schema["components"]["schemas"]["StockChangeRequest"]["properties"]["quantity"]
    assert quantity["minimum"] == 1
    below = schema["paths"]["/api/products/below_requirement/"]["get"]
    assert below["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PaginatedProductList"
    )


def test_schema_declares_the_constraints_the_api_enforces(api_client):
    # Each of these was once missing, and the fuzzer (make fuzz) found a valid-looking
    # request the API refused.
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    line = components["AdjustmentLineRequest"]
    assert line["oneOf"] == [{"required": ["product"]}, {"required": ["sku"]}]
    assert line["properties"]["delta"]["not"] == {"enum": [0]}
    assert components["StockChangeRequest"]["properties"]["note"]["pattern"] == r"^[^\u0000]*$"
    products = {
        p["name"]: p["schema"] for p in schema["paths"]["/api/products/"]["get"]["parameters"]
    }
    assert products["sku"]["maxLength"] == 64
    assert products["name"]["maxLength"] == 200
    assert products["search"]["maxLength"] == 200
    assert products["price__gte"]["type"] == "string"
    movements = schema["paths"]["/api/products/{id}/movements/"]["get"]["parameters"]
    assert {p["name"] for p in movements} == {"id", "page", "page_size", "cursor", "format"}


def test_docs_page_serves_swagger_ui_from_local_static_files(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    # No asset from elsewhere (a word match on "cdn" was flaky: CSRF tokens are random).
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_models_and_migrations_agree():
    # makemigrations --check exits non-zero when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def test_the_fuzz_hooks_use_the_patterns_the_schema_declares():
    # fuzz/hooks.py keeps its own copies (it runs outside Django): they must not drift.
    import importlib.util
    from pathlib import Path

    from products.idempotency import KEY_PATTERN
    from products.views import IF_MATCH_PATTERN

    path = Path(__file__).resolve().parents[2] / "fuzz" / "hooks.py"
    spec = importlib.util.spec_from_file_location("fuzz_hooks", path)
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)

    assert f"^{hooks.IF_MATCH.pattern}$" == IF_MATCH_PATTERN
    assert f"^{hooks.IDEMPOTENCY_KEY.pattern}$" == KEY_PATTERN


@pytest.mark.parametrize(
    ("path", "documented"),
    [
        # `format`: json or csv (the movements as CSV, products/exports.py).
        ("/api/products/{id}/movements/", {"page", "page_size", "cursor", "format"}),
        ("/api/movements/{id}/", set()),
        ("/api/products/{id}/", set()),
    ],
)
def test_the_schema_documents_exactly_the_query_parameters_a_get_accepts(
    api_client, path, documented
):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    parameters = schema.json()["paths"][path]["get"].get("parameters", [])

    assert {p["name"] for p in parameters if p["in"] == "query"} == documented
