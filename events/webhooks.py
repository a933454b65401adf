"""Webhook delivery: fan-out of published events, the SSRF rule, signing and sending.

`fan_out` runs inside `services.publish()`'s transaction: the Delivery rows and their
procrastinate jobs commit with the feed positions, or not at all. `attempt` is what the
worker's `deliver` task runs (events/tasks.py): one signed HTTP request, recorded.
"""

import base64
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import groupby
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from core.metrics import WEBHOOK_DELIVERIES

from .models import Delivery, DeliveryAttempt, DeliveryStatus, Event, WebhookEndpoint
from .serializers import EventSerializer

logger = logging.getLogger(__name__)

DELIVER_TASK = "events.tasks.deliver"
QUEUE = "webhooks"
EXCERPT_BYTES = 1024
USER_AGENT = "inventory-webhooks/1"
# A job records its successful deliveries together, at most this many at a time and
# never later than this many seconds after the first of them.
RECORD_BATCH = 50
RECORD_SECONDS = 1.0
GONE = "The endpoint answered 410 Gone: it asked for no more deliveries."


# Secrets


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one while a
    rotation's overlap lasts."""
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        found.append(endpoint.previous_secret)
    return found


def sign(secrets_: list[str], *, msg_id: str, timestamp: datetime, body: str) -> str:
    """The `webhook-signature` header: one `v1,` signature per secret, space-separated."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets_)


def webhook_id(event: Event) -> str:
    """The `webhook-id` of an event: the same on every attempt and to every endpoint."""
    return f"msg_{event.uid.hex}"


# The SSRF rule


class UrlRefused(Exception):
    """The URL may not be called: its scheme, or an address its host resolves to."""


@dataclass(frozen=True)
class Target:
    """A URL checked against the SSRF rule, with the addresses it was checked at."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def _allowed(name: str) -> bool:
    return name.lower().strip("[]") in settings.WEBHOOK_ALLOWED_HOSTS


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> Target:
    """Resolve the URL's host and check it: https (http only if WEBHOOK_ALLOW_HTTP or for
    a host of WEBHOOK_ALLOWED_HOSTS), no credentials, and every address it resolves to
    public, unless WEBHOOK_ALLOWED_HOSTS names the host or the address. Raises UrlRefused.

    Called when an endpoint is saved and again before every delivery attempt (DNS can
    change); the attempt connects to the addresses checked here, never resolving again.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"The URL is not valid: {exc}.") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise UrlRefused("The URL must be https://host/….")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("The URL must not contain credentials.")
    if parts.scheme == "http" and not (settings.WEBHOOK_ALLOW_HTTP or _allowed(host)):
        raise UrlRefused("The URL must be https (plain http is not allowed).")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UrlRefused(f"The host {host} does not resolve.") from None
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
    if not _allowed(host):
        for address in addresses:
            if not (_is_public(address) or _allowed(address)):
                raise UrlRefused(
                    f"The host {host} resolves to {address}, which is not a public address "
                    "(loopback, private, link-local or reserved); WEBHOOK_ALLOWED_HOSTS can "
                    "allow it."
                )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, path, addresses)


# Fan-out


def deliveries_supported() -> bool:
    """Deliveries are queued in PostgreSQL (procrastinate): none on SQLite."""
    return connection.vendor == "postgresql"


def fan_out(event_ids: list[int]) -> int:
    """One Delivery per (active endpoint, subscribed event), and their jobs, in the
    caller's transaction; events in feed order. Returns how many deliveries."""
    if not event_ids or not deliveries_supported():
        return 0
    endpoints = list(WebhookEndpoint.objects.filter(is_active=True).only("id", "event_types"))
    if not endpoints:
        return 0
    events = Event.objects.filter(pk__in=event_ids).order_by("position")
    deliveries = Delivery.objects.bulk_create(
        Delivery(endpoint=endpoint, event=event, webhook_id=webhook_id(event))
        for event in events
        for endpoint in endpoints
        if endpoint.subscribes_to(event.type)
    )
    queue_deliveries(deliveries)
    return len(deliveries)


def queue_deliveries(deliveries: list[Delivery]) -> None:
    """Queue the deliveries, given in feed order, through the Django connection, so that
    the jobs commit (or roll back) with the caller's transaction.

    An endpoint's deliveries go out in WEBHOOK_LANES lanes, a product always in the same
    one; one `deliver` job per lane carries its deliveries in order. Jobs of one lane
    share a lock, so the worker runs them one at a time in the order queued
    (procrastinate fetches no job while an earlier one with its lock is waiting or
    running, a retry included): each product's deliveries go out in sequence order.
    Lanes go out in parallel, and a job carries many deliveries, so the queue stays
    short and its cost is shared.
    """
    if not deliveries:
        return
    from procrastinate import jobs, manager
    from procrastinate.contrib.django.django_connector import DjangoConnector

    lanes: dict[str, list[int]] = {}
    for delivery in deliveries:
        lane = delivery.event.product_id % settings.WEBHOOK_LANES
        lanes.setdefault(f"webhook:{delivery.endpoint_id}:lane:{lane}", []).append(delivery.pk)
    manager.JobManager(DjangoConnector()).batch_defer_jobs(
        [
            jobs.Job(
                id=None,
                queue=QUEUE,
                lock=lock,
                queueing_lock=None,
                task_name=DELIVER_TASK,
                task_kwargs={"delivery_ids": delivery_ids},
            )
            for lock, delivery_ids in lanes.items()
        ]
    )


# Delivery


class RetryLater(Exception):
    """The attempt failed in a way worth retrying: the worker runs it again in `delay`
    seconds (the task's retry strategy reads it)."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.1f} s")
        self.delay = delay


@dataclass
class Outcome:
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    retry_after: float | None = None
    duration_ms: int = 0
    refused: bool = False  # by the SSRF rule: nothing was sent


def backoff(attempt: int) -> float:
    """Seconds before retry number `attempt` + 1: doubling from WEBHOOK_RETRY_BASE_SECONDS,
    capped at WEBHOOK_RETRY_MAX_SECONDS, with +-20 % jitter (so that deliveries that failed
    together do not all come back at once)."""
    wait = min(
        settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** min(attempt, 40),
        settings.WEBHOOK_RETRY_MAX_SECONDS,
    )
    return wait * random.uniform(0.8, 1.2)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds, capped at a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value) if value.isdigit() else None
        if seconds is None:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(seconds, 0.0), 86400.0)


class Sender:
    """Sends one job's deliveries: each endpoint URL checked once (resolved, and its
    addresses checked), and one kept-alive connection per address, closed at the end."""

    def __init__(self) -> None:
        self.targets: dict[str, Target | UrlRefused] = {}
        self.pools: dict[tuple, urllib3.HTTPConnectionPool] = {}
        self.serializer = EventSerializer()  # its fields built once for the job

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc_info) -> None:
        for pool in self.pools.values():
            pool.close()

    def body(self, event: Event) -> str:
        """The event as the API shows it, in compact JSON."""
        return json.dumps(self.serializer.to_representation(event), separators=(",", ":"))

    def target(self, url: str) -> Target:
        """check_url(url), once per job; raises UrlRefused."""
        if url not in self.targets:
            try:
                self.targets[url] = check_url(url)
            except UrlRefused as exc:
                self.targets[url] = exc
        found = self.targets[url]
        if isinstance(found, UrlRefused):
            raise found
        return found

    def pool(self, target: Target, address: str) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, address, target.port, target.host)
        if key not in self.pools:
            timeout = urllib3.Timeout(
                connect=settings.WEBHOOK_CONNECT_TIMEOUT, total=settings.WEBHOOK_TOTAL_TIMEOUT
            )
            options = {"timeout": timeout, "retries": False, "maxsize": 1}
            if target.scheme == "https":
                self.pools[key] = urllib3.HTTPSConnectionPool(
                    address, target.port, server_hostname=target.host,
                    assert_hostname=target.host, cert_reqs="CERT_REQUIRED", **options,
                )  # fmt: skip
            else:
                self.pools[key] = urllib3.HTTPConnectionPool(address, target.port, **options)
        return self.pools[key]

    def drop(self, pool: urllib3.HTTPConnectionPool) -> None:
        """Close a pool, so that the next delivery to its address connects afresh."""
        pool.close()
        self.pools = {key: kept for key, kept in self.pools.items() if kept is not pool}

    def send(self, target: Target, headers: dict[str, str], body: bytes) -> Outcome:
        """POST the body to the checked address (not the name: no second DNS lookup), TLS
        verified against the host name; no redirect followed; at most
        WEBHOOK_CONNECT_TIMEOUT to connect and WEBHOOK_TOTAL_TIMEOUT for the answer's
        status and headers; then at most the first KB of its body, until the same
        deadline. A connection is kept for the next delivery only if the answer was
        read to its end."""
        at, started = _now(), time.monotonic()
        total = settings.WEBHOOK_TOTAL_TIMEOUT
        default_port = 443 if target.scheme == "https" else 80
        host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
        if ":" in target.host and target.port == default_port:
            host_header = f"[{target.host}]"
        outcome = Outcome()
        for address in target.addresses[:2]:  # a second address only if the first is down
            pool = self.pool(target, address)
            try:
                response = pool.urlopen(
                    "POST",
                    target.path,
                    body=body,
                    headers={**headers, "Host": host_header},
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                    decode_content=False,
                )
                excerpt = read_excerpt(response, deadline=started + total)
                outcome = Outcome(
                    status_code=response.status,
                    excerpt=excerpt.decode("utf-8", "replace").replace("\x00", ""),
                    retry_after=retry_after_seconds(response.headers.get("Retry-After"), _now()),
                )
                if response.length_remaining == 0:
                    response.release_conn()  # read to its end: the connection is reused
                else:  # unread (or unknown) rest: never waited for, the connection dropped
                    response.close()
                    self.drop(pool)
                break
            except urllib3.exceptions.NewConnectionError as exc:  # a ConnectTimeoutError too
                outcome = Outcome(error=f"Could not connect to {address}: {_reason(exc)}")
            except urllib3.exceptions.ConnectTimeoutError:
                outcome = Outcome(error=f"Timed out connecting to {address}.")
            except urllib3.exceptions.ReadTimeoutError:
                outcome = Outcome(error=f"No answer within {total:g} s.")
                break
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                outcome = Outcome(error=f"{type(exc).__name__}: {_reason(exc)}")
                break
            if time.monotonic() - started >= total:
                break
        outcome.at = at
        outcome.duration_ms = round((time.monotonic() - started) * 1000)
        return outcome


def read_excerpt(response, *, deadline: float) -> bytes:
    """The first EXCERPT_BYTES of the answer, read as they arrive until `deadline`: an
    answer dripping a byte at a time holds the lane no longer than the total timeout."""
    excerpt = b""
    try:
        while len(excerpt) < EXCERPT_BYTES and time.monotonic() < deadline:
            chunk = response.read1(EXCERPT_BYTES - len(excerpt))
            if not chunk:
                break
            excerpt += chunk
    except (urllib3.exceptions.HTTPError, OSError):
        pass
    return excerpt


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)[:300]


def _now() -> datetime:
    return datetime.now(UTC)


def deliver(delivery_ids: list[int]) -> None:
    """What the worker's `deliver` job runs: the pending deliveries among `delivery_ids`
    (one endpoint's lane), attempted in the order given. The first that must be tried
    again raises RetryLater, leaving those after it for then: sequence order holds. A
    delivery no longer pending (settled by an earlier run of the job, whose worker died
    before finishing it) is skipped."""
    with Sender() as sender, Recorder() as recorder:
        body_fields = [f"event__{field.source}" for field in sender.serializer.fields.values()]
        pending = (
            Delivery.objects.select_related("event")
            .filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING)
            .only("endpoint_id", "webhook_id", "attempts_since_queued", *body_fields)
            .in_bulk()
        )
        # One endpoint object for the job (a 410 disables it for the rest), loaded once.
        endpoints = WebhookEndpoint.objects.in_bulk({d.endpoint_id for d in pending.values()})
        for delivery_id in delivery_ids:
            if delivery := pending.get(delivery_id):
                delivery.endpoint = endpoints[delivery.endpoint_id]
                attempt(delivery, sender, recorder)


def give_up(delivery_ids: list[int], *, reason: str) -> int:
    """Fail the pending deliveries among `delivery_ids`, saying why; how many."""
    return Delivery.objects.filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED,
        next_attempt_at=None,
        last_error=reason[:1000],
        updated_at=timezone.now(),
    )


def attempt(delivery: Delivery, sender: Sender, recorder: "Recorder") -> None:
    """One attempt of a pending delivery: check the URL again, sign, send, record.
    Raises RetryLater when it should be tried again (timeouts, connection errors, 5xx,
    408, 429); any other answer settles it. Its `attempts_since_queued` sets the backoff."""
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        reason = endpoint.disabled_reason or "The endpoint was deactivated."
        outcome = Outcome(error=f"Not sent: {reason}")
        recorder.add(Settled(delivery, DeliveryStatus.FAILED, outcome, attempted=False))
        return
    now = _now()
    try:
        target = sender.target(endpoint.url)
    except UrlRefused as exc:
        outcome = Outcome(error=f"Refused: {exc}", refused=True)
    else:
        body = sender.body(delivery.event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": sign(
                signing_secrets(endpoint, now), msg_id=delivery.webhook_id,
                timestamp=now, body=body,
            ),
        }  # fmt: skip
        outcome = sender.send(target, headers, body.encode())

    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        recorder.add(Settled(delivery, DeliveryStatus.SUCCEEDED, outcome))
        return
    retryable = (code is None and not outcome.refused) or (
        code is not None and (code >= 500 or code in (408, 429))
    )
    tried = delivery.attempts_since_queued
    if not retryable or tried + 1 >= settings.WEBHOOK_MAX_ATTEMPTS:
        recorder.add(Settled(delivery, DeliveryStatus.FAILED, outcome, gone=code == 410))
        if code == 410:
            endpoint.is_active = False  # the rest of this job's deliveries are not sent
            endpoint.disabled_reason = GONE
        return
    delay = max(backoff(tried), outcome.retry_after or 0.0)
    recorder.add(Settled(delivery, DeliveryStatus.PENDING, outcome, retry_in=delay))
    raise RetryLater(delay)


@dataclass
class Settled:
    """What became of an attempt (or of a delivery not sent at all: `attempted` False)."""

    delivery: Delivery
    status: str
    outcome: Outcome
    retry_in: float | None = None
    gone: bool = False
    attempted: bool = True

    @property
    def error(self) -> str:
        return "" if self.status == DeliveryStatus.SUCCEEDED else _describe(self.outcome)[:1000]


class Recorder:
    """Records a job's attempts: successes together (one transaction for up to
    RECORD_BATCH of them, at most RECORD_SECONDS after the first), anything else at
    once, after the successes before it. What a worker that dies mid-job sent and had not
    recorded is sent again, with the same webhook-id (at least once)."""

    def __init__(self) -> None:
        self.unrecorded: list[Settled] = []
        self.since = 0.0

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.flush()

    def add(self, settled: Settled) -> None:
        if not self.unrecorded:
            self.since = time.monotonic()
        self.unrecorded.append(settled)
        if (
            settled.status != DeliveryStatus.SUCCEEDED
            or len(self.unrecorded) >= RECORD_BATCH
            or time.monotonic() - self.since >= RECORD_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        if self.unrecorded:
            _record(self.unrecorded)
            self.unrecorded = []


def _record(settled: list[Settled]) -> None:
    """Record attempts, the deliveries' state and the endpoints' health, together."""
    now = timezone.now()
    succeeded = [s for s in settled if s.status == DeliveryStatus.SUCCEEDED]
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                delivery=s.delivery,
                at=s.outcome.at,
                status_code=s.outcome.status_code,
                duration_ms=s.outcome.duration_ms,
                response_excerpt=s.outcome.excerpt[:EXCERPT_BYTES],
                error=s.error,
            )
            for s in settled
            if s.attempted
        )
        by_code = sorted(succeeded, key=lambda s: s.outcome.status_code)
        for code, group in groupby(by_code, key=lambda s: s.outcome.status_code):
            Delivery.objects.filter(pk__in=[s.delivery.pk for s in group]).update(
                status=DeliveryStatus.SUCCEEDED,
                attempts=F("attempts") + 1,
                attempts_since_queued=F("attempts_since_queued") + 1,
                next_attempt_at=None,
                last_status_code=code,
                last_error="",
                updated_at=now,
            )
        for endpoint_id in {s.delivery.endpoint_id for s in succeeded}:
            _record_health(endpoint_id, succeeded=True, gone=False, error="", now=now)
        for s in settled:
            if s.status == DeliveryStatus.SUCCEEDED:
                continue
            retry_at = now + timedelta(seconds=s.retry_in) if s.retry_in is not None else None
            Delivery.objects.filter(pk=s.delivery.pk).update(
                status=s.status,
                attempts=F("attempts") + int(s.attempted),
                attempts_since_queued=F("attempts_since_queued") + int(s.attempted),
                next_attempt_at=retry_at,
                last_status_code=s.outcome.status_code,
                last_error=s.error,
                updated_at=now,
            )
            if s.attempted:
                _record_health(
                    s.delivery.endpoint_id, succeeded=False, gone=s.gone, error=s.error, now=now
                )
    for s in settled:
        WEBHOOK_DELIVERIES.labels(_outcome(s)).inc()
        (logger.info if s in succeeded else logger.warning)(
            "Delivery %s (%s) to endpoint %s: %s%s",
            s.delivery.pk,
            s.delivery.webhook_id,
            s.delivery.endpoint_id,
            s.error or "delivered",
            f", retry in {s.retry_in:.1f} s" if s.retry_in is not None else "",
        )


def _outcome(settled: Settled) -> str:
    """The outcome label of inventory_webhook_deliveries_total."""
    if settled.status == DeliveryStatus.PENDING:
        return "retrying"
    return str(settled.status)  # succeeded or failed


def _describe(outcome: Outcome) -> str:
    if outcome.error:
        return outcome.error
    if outcome.status_code is not None and 300 <= outcome.status_code < 400:
        return f"HTTP {outcome.status_code}: redirects are not followed."
    return f"HTTP {outcome.status_code}"


def _record_health(
    endpoint_id: int, *, succeeded: bool, gone: bool, error: str, now: datetime
) -> None:
    """A success ends a failing streak; a failure starts one, and an endpoint failing
    for WEBHOOK_DISABLE_AFTER_SECONDS, or answering 410 Gone, is disabled. Conditional
    updates: concurrent deliveries to one endpoint need no lock."""
    endpoints = WebhookEndpoint.objects.filter(pk=endpoint_id)
    if succeeded:
        endpoints.filter(failing_since__isnull=False).update(failing_since=None)
        return
    endpoints.filter(failing_since__isnull=True).update(failing_since=now)
    if gone:
        endpoints.filter(is_active=True).update(
            is_active=False, disabled_reason=GONE, updated_at=now
        )
        return
    period = timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS)
    failing = endpoints.filter(is_active=True, failing_since__lte=now - period)
    failing.update(
        is_active=False,
        disabled_reason=(
            f"Every delivery failed for {_duration(period)} (since the first failure); "
            f"the last: {error}"
        )[:1000],
        updated_at=now,
    )


def _duration(period: timedelta) -> str:
    seconds = period.total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"
