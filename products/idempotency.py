"""Idempotency keys for the stock-changing POSTs (IETF httpapi-idempotency-key draft,
the way Stripe does it).

The first request with a key stores its status and body in the same transaction
as the stock change it made, so either both are committed or neither is. A retry
with the same key and body gets the stored response and changes nothing (a refusal,
a 409 or a 412 for a stale If-Match, is stored and replayed like a success); the same
key with another body or another If-Match is a 422; a retry while the first request
still runs (its row is locked) is a 409. A 5xx is not stored: the client may retry
with the key. A body or If-Match that fails validation never gets here (the views
validate them first), so it uses up no key, as with Stripe.
"""

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, OperationalError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.response import Response

from core.statements import Insert, RowByKey, Update

from .models import IdempotencyKey

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # 1–255 visible ASCII characters
REPLAYED_HEADER = "Idempotent-Replayed"

PARAMETER = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    description="Optional. A unique value per operation (e.g. a UUID): a retry with the "
    "same key and body returns the first response and changes nothing. Keys are kept for "
    "`IDEMPOTENCY_KEY_TTL_HOURS` (24 h by default).",
    pattern=KEY_PATTERN,
)


class KeyReused(exceptions.APIException):
    status_code = 422
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used with a different request."


class RequestInProgress(exceptions.APIException):
    status_code = 409
    default_code = "idempotency_request_in_progress"
    default_detail = "A request with this Idempotency-Key is still in progress; retry shortly."


def ttl() -> timedelta:
    return timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)


def run_idempotently(view, request, execute: Callable[[], Response]) -> Response:
    """Run `execute` (which changes stock and returns a Response) at most once per key."""
    key = request.headers.get(HEADER)
    if key is None:
        return execute()
    if not re.fullmatch(KEY_PATTERN, key):
        raise exceptions.ValidationError(
            {HEADER: ["Must be 1 to 255 visible ASCII characters (e.g. a UUID)."]}
        )
    scope = f"user:{request.user.pk}"
    fingerprint = _fingerprint(request)
    fresh = _claim(scope, key, fingerprint)

    with transaction.atomic():
        record = _lock(scope, key, wait=fresh)
        if record.status_code is not None and record.is_expired(ttl()):
            record.fingerprint, record.status_code, record.response_body = fingerprint, None, None
            record.created_at = timezone.now()
        if record.fingerprint != fingerprint:
            raise KeyReused()
        if record.status_code is not None:
            return _replay(record)

        try:
            response = execute()
        except DatabaseError as exc:  # the transaction is broken: store nothing
            transaction.set_rollback(True)
            return view.handle_exception(exc)
        except Exception as exc:  # a refusal (4xx) is the operation's answer: store it
            response = view.handle_exception(exc)
        if response.status_code >= 500:
            transaction.set_rollback(True)  # nothing happened; the client may retry
            return response
        record.status_code = response.status_code
        record.response_body = response.data
        _UPDATE_KEY.save(record)
    return response


def _fingerprint(request) -> str:
    """The request a key stands for: method, path and body, and its If-Match precondition
    if it has one (a retry with another If-Match is another request: 422, not a replay)."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    if_match = request.headers.get("If-Match")
    condition = "" if if_match is None else "\nIf-Match: " + if_match.strip(" \t")
    return hashlib.sha256(
        f"{request.method} {request.path}{condition}\n{body}".encode()
    ).hexdigest()


def _claim(scope: str, key: str, fingerprint: str) -> bool:
    """Insert the key, committed at once so that retries can see it. False if it exists."""
    try:
        with transaction.atomic():
            _INSERT_KEY.save(IdempotencyKey(scope=scope, key=key, fingerprint=fingerprint))
    except IntegrityError:
        return False
    return True


def _lock(scope: str, key: str, *, wait: bool) -> IdempotencyKey:
    """Lock the key's row for the rest of the transaction.

    The request that claimed the key waits for the lock; a retry does not (NOWAIT):
    a held lock means the first request is still running.
    """
    try:
        return _LOCKED_KEY[wait].get(scope, key)
    except IdempotencyKey.DoesNotExist:  # purged between claim and lock
        raise RequestInProgress() from None
    except OperationalError as exc:
        # lock_not_available: `sqlstate` under psycopg 3 (which Django prefers when it is
        # installed, as the webhook worker needs), `pgcode` under psycopg2.
        cause = exc.__cause__
        if (getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)) == "55P03":
            raise RequestInProgress() from None
        raise


# The statements of a keyed request, compiled once (core/statements.py).
_INSERT_KEY = Insert(IdempotencyKey)
_LOCKED_KEY = {
    wait: RowByKey(
        IdempotencyKey,
        lambda wait=wait: IdempotencyKey.objects.select_for_update(nowait=not wait),
        by=("scope", "key"),
    )
    for wait in (True, False)
}
_UPDATE_KEY = Update(IdempotencyKey, ["fingerprint", "status_code", "response_body", "created_at"])


def _replay(record: IdempotencyKey) -> Response:
    response = Response(
        record.response_body, status=record.status_code, headers={REPLAYED_HEADER: "true"}
    )
    if record.status_code >= 400:
        response.content_type = "application/problem+json"
    return response
