"""Schemathesis hooks for `make fuzz`: each one works around a limit of the tool or of
OpenAPI 3, never a fault of the API. Every hook says why; keep it that way."""

import re
import uuid

import schemathesis

# The If-Match pattern the schema declares (products.views.IF_MATCH_PATTERN).
IF_MATCH = re.compile(r'(\*|(W/)?"[0-9]{1,20}"([ \t]*,[ \t]*(W/)?"[0-9]{1,20}")*)')
# The Idempotency-Key pattern the schema declares (products.idempotency.PARAMETER).
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def _is_positive(case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.hook
def filter_case(context, case):
    """OpenAPI 3 cannot say that two query parameters exclude each other: `cursor` walks
    in id order and cannot be combined with `page` or `ordering` (a 400, tested in
    products/tests/test_pagination.py). Positive cases that combine them are not valid
    requests, so they are dropped; negative cases keep them."""
    query = case.query or {}
    if _is_positive(case) and "cursor" in query:
        return "page" not in query and "ordering" not in query
    return True


@schemathesis.hook
def map_case(context, case):
    """A fresh valid Idempotency-Key for every request that sends a valid one.

    Schemathesis draws few distinct keys (the coverage phase sends `0` every time), so
    nearly every request would replay an earlier key with another body and get 422
    `idempotency_key_reused`, and creates and stock operations would go untested.
    Replays and reuse have their own tests (products/tests/test_idempotency.py). An
    invalid key is left as it is, so that its 400 is still checked.
    """
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
    return _make_positive_cases_valid(case)


def _make_positive_cases_valid(case):
    """Two values a schema cannot describe, made valid in positive cases:

    - `cursor` is opaque: the valid values are "" (the first page) and the ones the API
      hands out in `next`. Any other string is a 400 `Invalid cursor.` (tested in
      products/tests/test_pagination.py), so positive cases ask for the first page.
    - Schemathesis' coverage phase draws header values from letters and digits only; for
      an optional header whose pattern needs other characters (`If-Match: "7"` needs
      quotes) it has no valid value, seeds an invalid one such as `0` and still labels
      the case positive. Such a header is dropped from positive cases (it is optional;
      the fuzzing and stateful phases send valid If-Match values).
    """
    if not _is_positive(case):
        return case
    if case.query and case.query.get("cursor"):
        case.query["cursor"] = ""
    if_match = case.headers.get("If-Match") if case.headers else None
    if if_match is not None and not IF_MATCH.fullmatch(str(if_match)):
        del case.headers["If-Match"]
    return case
