"""OpenAPI documentation of the problem responses every endpoint can give."""

import inspect
import re

from drf_spectacular.openapi import AutoSchema

from core.errors import PROBLEM_CONTENT_TYPE
from core.limits import MAX_ID
from core.pagination import DECIMAL

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "properties": {
        "type": {"type": "string", "description": "`urn:inventory:problem:` + `code`."},
        "title": {"type": "string", "description": "The status's reason phrase."},
        "status": {"type": "integer", "description": "The HTTP status."},
        "detail": {"type": "string", "description": "What went wrong, for people."},
        "code": {
            "type": "string",
            "description": "Stable machine-readable name of the problem, e.g. "
            "`validation_error`, `parse_error`, `not_found`, `insufficient_stock`.",
        },
        "instance": {"type": "string", "description": "The request path."},
        "errors": {
            "type": "object",
            "description": "Validation errors: field name to a list of messages.",
            "additionalProperties": True,
        },
        "available": {"type": "integer", "description": "Units in stock (stock conflicts)."},
        "requested": {"type": "integer", "description": "Units asked for (stock conflicts)."},
    },
    "required": ["type", "title", "status", "detail", "code"],
}

ERROR_DESCRIPTIONS = {
    "400": "Invalid input: `validation_error` with per-field `errors` (including unknown "
    "or repeated query parameters), or `parse_error` for a body that is not JSON.",
    "404": "`not_found`: no product has this id, or the page is past the end.",
    "401": "`not_authenticated` or `authentication_failed`: send "
    "`Authorization: Token <key>` (or log in for the browsable API).",
    "403": "`permission_denied`: your role does not allow this.",
    "415": "`unsupported_media_type`: the body must be `application/json`.",
    "429": "`throttled`: too many requests; retry after `Retry-After` seconds.",
}


# Request bodies that take exactly one of two fields (their serializers refuse both or
# neither), which a serializer cannot say in the schema itself.
EXACTLY_ONE_OF = {"AdjustmentLineRequest": ("product", "sku")}


def document_problem_responses(result, generator, request, public):
    """Postprocessing hook: give every operation its error responses as problem JSON,
    and say that request bodies take no fields beyond the documented ones."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name, schema in schemas.items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema["additionalProperties"] = False  # unknown fields are a 400
        if name in EXACTLY_ONE_OF:
            schema["oneOf"] = [{"required": [field]} for field in EXACTLY_ONE_OF[name]]
        for prop in schema.get("properties", {}).values():
            _collapse_blank_alternative(prop)
    problem_content = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                    _document_id(parameter)
                if parameter["name"] == "ordering" and "cursor" in names:
                    parameter["description"] += " Has no effect with `cursor` (id order)."
            responses = operation.setdefault("responses", {})
            expected = ["400", "429"]
            if {} not in operation.get("security", [{}]):  # anonymous not allowed
                expected += ["401", "403"]
            paginated = any(p["name"] == "page" for p in operation.get("parameters", []))
            if "{" in path or paginated:
                expected.append("404")
            if "requestBody" in operation:
                expected.append("415")
            for status in expected:
                responses.setdefault(status, {"description": ERROR_DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = problem_content
    return result


def _document_id(parameter: dict) -> None:
    """An id in a URL: what views.positive_id accepts; anything else is a 404."""
    parameter["schema"].update({"format": "int64", "minimum": 1, "maximum": MAX_ID})
    what = parameter.get("description", "").rstrip(".")
    parameter["description"] = f"{what}. {DECIMAL}: `01`, like any id no row can have, is a 404."


def _collapse_blank_alternative(prop: dict) -> None:
    """drf-spectacular writes a blank-allowed string with a pattern as
    `oneOf: [{pattern…}, {maxLength: 0}]`; when the pattern itself admits "", both
    branches match "" and the oneOf is violated. Keep the one branch that says it all."""
    branches = prop.get("oneOf", [])
    if len(branches) == 2 and branches[1] == {"type": "string", "maxLength": 0}:
        inner = branches[0]
        if inner.get("minLength", 0) == 0 and re.search(inner.get("pattern", ""), ""):
            del prop["oneOf"]
            prop.update(inner)


class InventoryAutoSchema(AutoSchema):
    """drf-spectacular's schema, except that a PATCH on an action is not a partial update.

    The stock actions accept PATCH as an alias of POST (the original service used
    PATCH) with the very same, complete body; only `partial_update` is partial.
    """

    def get_description(self):
        """An operation's description is its action's own docstring, else its view
        class's own; never one inherited from a mixin or from DRF, which is written for
        the code's readers (drf-spectacular would take those too)."""
        view_class = type(self.view)
        action = view_class.__dict__.get(getattr(self.view, "action", None) or self.method.lower())
        doc = getattr(action, "__doc__", None) or view_class.__dict__.get("__doc__")
        return inspect.cleandoc(doc) if doc else ""

    def _get_response_for_code(
        self, serializer, status_code, media_types=None, direction="response"
    ):
        """A `text/csv` answer (the list endpoints, products/exports.py) is CSV text, not
        the paginated JSON drf-spectacular would describe for every renderer."""
        response = super()._get_response_for_code(serializer, status_code, media_types, direction)
        csv = response.get("content", {}).get("text/csv")
        if csv is not None:
            csv["schema"] = {
                "type": "string",
                "description": "Every matching row (not one page), with a header line; "
                "text cells starting with =, +, - or @ are prefixed with '.",
            }
        return response

    def _get_request_for_media_type(self, serializer, direction="request"):
        if self.method != "PATCH" or getattr(self.view, "action", None) == "partial_update":
            return super()._get_request_for_media_type(serializer, direction)
        self.method = "POST"
        try:
            return super()._get_request_for_media_type(serializer, direction)
        finally:
            self.method = "PATCH"
