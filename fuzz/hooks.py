"""Schemathesis hooks for `make fuzz`: each one works around a limit of the tool, never a
fault of the API. Every hook says why; keep it that way.

What they no longer need to narrow: `cursor` (the schema's pattern, `a<id>` or `b<id>`,
is exactly what the API accepts) and `cursor` with `page` or `ordering` (the cursor
wins; see core/pagination.py).
"""

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
def map_case(context, case):
    """A fresh valid Idempotency-Key for every request that sends a valid one.

    Schemathesis draws few distinct keys (the coverage phase sends `0` every time), so
    nearly every request would replay an earlier key with another body and get 422
    `idempotency_key_reused` — the API doing what a key is for, which no schema can
    describe. Creates and stock operations would go untested. Replays and reuse have
    their own tests (products/tests/test_idempotency.py). An invalid key is left as it
    is, so that its 400 is still checked.
    """
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = str(uuid.uuid4())
    return _drop_mislabelled_if_match(case)


def _drop_mislabelled_if_match(case):
    """Schemathesis' coverage phase (4.32.5) draws header values from letters and digits
    only. For an optional header whose pattern needs other characters (`If-Match: "7"`
    needs quotes) it has no valid value: it seeds its first invalid one, `0`, into the
    cases it builds for the other parameters, and still labels them positive
    (schemathesis/specs/openapi/coverage/_operation.py: a negative seed marks a case
    unsatisfiable only for a required parameter). `If-Match: 0` is not schema-valid, and
    its 400 is right (the negative cases check it); so the header is dropped from
    positive cases (it is optional; the fuzzing and stateful phases send valid values).
    """
    if not _is_positive(case):
        return case
    if_match = case.headers.get("If-Match") if case.headers else None
    if if_match is not None and not IF_MATCH.fullmatch(str(if_match)):
        del case.headers["If-Match"]
    return case
