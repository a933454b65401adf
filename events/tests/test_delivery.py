"""One delivery attempt, as the worker's task makes it, against a real local receiver:
Standard Webhooks headers and signatures, what each answer leads to, the SSRF rule at
delivery time, bounded timeouts, and the recorded attempts."""

import json
import socket

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from events import services, webhooks
from events.models import Delivery, DeliveryStatus, Event, WebhookEndpoint
from products import services as products

from .conftest import make_product, requires_postgres
from .webhook_support import Receiver, subscribe

pytestmark = [pytest.mark.django_db, requires_postgres]


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WEBHOOK_CONNECT_TIMEOUT = 0.5
    settings.WEBHOOK_TOTAL_TIMEOUT = 1
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    receiver = Receiver()
    yield receiver
    receiver.close()


def queued(endpoint: WebhookEndpoint) -> list[Delivery]:
    services.publish()
    return list(Delivery.objects.filter(endpoint=endpoint).select_related("event").order_by("id"))


def jobs() -> list[tuple[str, str, dict]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT task_name, lock, args::text FROM procrastinate_jobs ORDER BY id")
        return [(task, lock, json.loads(args)) for task, lock, args in cursor.fetchall()]


def test_publishing_queues_a_delivery_per_subscribed_event_and_a_locked_job_per_lane(
    receiver, settings
):
    settings.WEBHOOK_LANES = 4
    everything = subscribe(receiver)
    low_only = subscribe(receiver, event_types=["stock.low"])
    subscribe(receiver, is_active=False)
    product = make_product(stock_quantity=5, low_stock_threshold=4)
    products.decrement_stock(product_id=product.pk, quantity=1)

    all_events = queued(everything)
    low_events = queued(low_only)

    assert [d.event.type for d in all_events] == [
        "product.created", "stock.changed", "stock.changed", "stock.low",
    ]  # fmt: skip
    assert [d.event.type for d in low_events] == ["stock.low"]
    assert Delivery.objects.count() == 5
    assert [d.webhook_id for d in all_events] == [f"msg_{d.event.uid.hex}" for d in all_events]
    lane = product.pk % 4
    assert jobs() == [
        (
            "events.tasks.deliver",
            f"webhook:{everything.pk}:lane:{lane}",
            {"delivery_ids": [d.pk for d in all_events]},
        ),
        (
            "events.tasks.deliver",
            f"webhook:{low_only.pk}:lane:{lane}",
            {"delivery_ids": [low_events[0].pk]},
        ),
    ]
    assert services.publish() == 0  # published once, fanned out once


def test_a_product_keeps_its_lane_and_each_lane_is_one_job(receiver, settings):
    settings.WEBHOOK_LANES = 2
    endpoint = subscribe(receiver)
    made = [make_product(sku=f"LANE-{n}") for n in range(4)]
    for product in made:
        products.increment_stock(product_id=product.pk, quantity=1)

    deliveries = queued(endpoint)

    by_lane = {}
    for delivery in deliveries:
        by_lane.setdefault(delivery.event.product_id % 2, []).append(delivery.pk)
    assert sorted(jobs(), key=lambda job: job[1]) == [
        ("events.tasks.deliver", f"webhook:{endpoint.pk}:lane:{lane}", {"delivery_ids": ids})
        for lane, ids in sorted(by_lane.items())
    ]
    assert sum(map(len, by_lane.values())) == len(deliveries) == 12


def test_a_delivery_is_signed_per_standard_webhooks_and_carries_the_event(receiver):
    endpoint = subscribe(receiver)
    product = make_product(stock_quantity=5)
    delivery = queued(endpoint)[1]

    webhooks.deliver([delivery.pk])

    [request] = receiver.all()
    assert request.verified
    assert request.id == delivery.webhook_id
    assert abs(int(request.headers["webhook-timestamp"]) - timezone.now().timestamp()) < 5
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    event = api_event(delivery.event)
    assert request.event == event
    assert request.event["data"]["product"]["id"] == product.pk
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 204)
    [attempt] = delivery.attempts_made.all()
    assert (attempt.status_code, attempt.response_excerpt, attempt.error) == (204, "", "")


def three_events(product) -> None:
    """product.created and stock.changed (initial), then another stock.changed."""
    products.decrement_stock(product_id=product.pk, quantity=1)


def api_event(event: Event) -> dict:
    from events.serializers import EventSerializer

    return json.loads(json.dumps(EventSerializer(Event.objects.get(pk=event.pk)).data))


def test_during_a_rotation_both_secrets_sign(receiver):
    endpoint = subscribe(receiver)
    old = endpoint.secret
    make_product()
    delivery = queued(endpoint)[0]
    rotated = services.rotate_secret(endpoint_id=endpoint.pk, overlap_seconds=60)
    receiver.secrets = [rotated.secret]  # a receiver that switched already

    webhooks.deliver([delivery.pk])

    [request] = receiver.all()
    assert request.verified
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    receiver.secrets = [old]  # and one that has not yet
    assert receiver.verify(request.body, request.headers)


@pytest.mark.parametrize("status", [500, 503, 408, 429])
def test_5xx_408_and_429_are_retried_later(receiver, status):
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    receiver.then(status)

    with pytest.raises(webhooks.RetryLater) as retry:
        webhooks.deliver([delivery.pk])

    assert 8 <= retry.value.delay <= 12  # 10 s ± 20 %
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("pending", status)
    assert delivery.next_attempt_at > timezone.now()
    assert WebhookEndpoint.objects.get().failing_since is not None


def test_a_429_retry_after_is_honoured(receiver):
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    receiver.then(429, headers={"Retry-After": "120"})

    with pytest.raises(webhooks.RetryLater) as retry:
        webhooks.deliver([delivery.pk])

    assert retry.value.delay == 120


def test_the_backoff_doubles_to_its_cap_and_totals_about_a_day(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 10
    settings.WEBHOOK_RETRY_MAX_SECONDS = 3 * 3600
    waits = [webhooks.backoff(n) for n in range(settings.WEBHOOK_MAX_ATTEMPTS - 1)]

    assert 8 <= waits[0] <= 12
    assert 16 <= waits[1] <= 24
    assert max(waits) <= 3 * 3600 * 1.2
    assert 18 * 3600 < sum(waits) < 30 * 3600


def test_other_4xx_fail_without_retry_and_410_disables_the_endpoint(receiver):
    endpoint = subscribe(receiver)
    three_events(make_product(stock_quantity=5))
    first, second, third = queued(endpoint)[:3]
    receiver.then(400).then(410)

    webhooks.deliver([first.pk, second.pk, third.pk])

    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert [statuses[d.pk] for d in (first, second, third)] == ["failed"] * 3
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "410" in endpoint.disabled_reason
    third.refresh_from_db()
    assert third.attempts == 0  # not sent: the endpoint was disabled
    assert len(receiver.all()) == 2


def test_an_endpoint_failing_for_the_whole_period_is_disabled_with_the_reason(receiver, settings):
    settings.WEBHOOK_DISABLE_AFTER_SECONDS = 3600
    endpoint = subscribe(receiver)
    make_product()
    first, second = queued(endpoint)[:2]
    receiver.then(500).then(500)

    with pytest.raises(webhooks.RetryLater):
        webhooks.deliver([first.pk])
    WebhookEndpoint.objects.update(failing_since=timezone.now() - timezone.timedelta(hours=2))
    with pytest.raises(webhooks.RetryLater):
        webhooks.deliver([second.pk])

    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert endpoint.disabled_reason.startswith("Every delivery failed for 1 h")
    assert "HTTP 500" in endpoint.disabled_reason


def test_a_success_ends_a_failing_streak(receiver):
    endpoint = subscribe(receiver)
    make_product()
    first, second = queued(endpoint)[:2]
    receiver.then(500)

    with pytest.raises(webhooks.RetryLater):
        webhooks.deliver([first.pk])
    webhooks.deliver([second.pk])

    assert WebhookEndpoint.objects.get().failing_since is None


def test_the_last_attempt_gives_up(receiver, settings):
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    receiver.then(500)

    Delivery.objects.filter(pk=delivery.pk).update(
        attempts_since_queued=settings.WEBHOOK_MAX_ATTEMPTS - 1
    )

    webhooks.deliver([delivery.pk])

    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)


def test_a_job_stops_at_the_first_delivery_to_retry_and_its_next_run_goes_on_from_there(
    receiver,
):
    endpoint = subscribe(receiver)
    three_events(make_product(stock_quantity=5))
    first, second, third = queued(endpoint)[:3]
    stream = [first.pk, second.pk, third.pk]
    receiver.then(204).then(503)

    with pytest.raises(webhooks.RetryLater):
        webhooks.deliver(stream)
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    sent = [r.id for r in receiver.all()]
    webhooks.deliver(stream)  # the job's retry

    assert [statuses[pk] for pk in stream] == ["succeeded", "pending", "pending"]
    assert sent == [first.webhook_id, second.webhook_id]
    assert [r.id for r in receiver.all()] == [
        first.webhook_id, second.webhook_id, second.webhook_id, third.webhook_id,
    ]  # fmt: skip
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}


def test_the_backoff_counts_the_attempts_since_the_delivery_was_last_queued(receiver, api_client):
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    receiver.then(500).then(500).then(400)
    for _ in range(2):
        with pytest.raises(webhooks.RetryLater) as retry:
            webhooks.deliver([delivery.pk])
    webhooks.deliver([delivery.pk])  # 400: failed
    api_client.post(f"/api/webhook-deliveries/{delivery.pk}/redeliver/")
    receiver.then(500)

    with pytest.raises(webhooks.RetryLater) as again:
        webhooks.deliver([delivery.pk])

    assert 16 <= retry.value.delay <= 24  # the second attempt: 20 s ± 20 %
    assert 8 <= again.value.delay <= 12  # the first since it was redelivered
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.attempts_since_queued) == (4, 1)


def test_a_job_makes_the_same_few_queries_however_many_deliveries_it_carries(receiver):
    """Loaded together, recorded together: no query per delivery (a field the body
    needs left out of the load would cost one each)."""
    from django.test.utils import CaptureQueriesContext

    endpoint = subscribe(receiver)
    for n in range(4):
        products.increment_stock(product_id=make_product(sku=f"Q-{n}").pk, quantity=1)
    deliveries = [d.pk for d in queued(endpoint)]

    with CaptureQueriesContext(connection) as few:
        webhooks.deliver(deliveries[:3])
    with CaptureQueriesContext(connection) as many:
        webhooks.deliver(deliveries[3:])

    assert len(deliveries[3:]) == 9
    assert len(many.captured_queries) == len(few.captured_queries)
    assert len(receiver.delivered()) == 12


def test_a_hanging_receiver_times_out_within_the_total_timeout(receiver):
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    receiver.then(204, hang=3)

    with pytest.raises(webhooks.RetryLater):
        webhooks.deliver([delivery.pk])

    attempt = Delivery.objects.get(pk=delivery.pk).attempts_made.get()
    assert attempt.status_code is None
    assert "No answer within 1 s" in attempt.error
    assert 900 <= attempt.duration_ms < 2000


def test_a_closed_port_is_a_connection_error_retried(receiver):
    endpoint = subscribe(receiver)
    receiver.close()
    make_product()
    delivery = queued(endpoint)[0]

    with pytest.raises(webhooks.RetryLater):
        webhooks.deliver([delivery.pk])

    assert "Could not connect" in Delivery.objects.get(pk=delivery.pk).last_error


def test_a_redirect_is_not_followed(receiver):
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    receiver.then(302, headers={"Location": "http://169.254.169.254/"})

    webhooks.deliver([delivery.pk])

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "redirects are not followed" in delivery.last_error
    assert len(receiver.all()) == 1


def test_dns_that_changes_to_a_private_address_is_refused_at_delivery(
    receiver, settings, monkeypatch
):
    """Saved while the name resolved to an allowed address; by delivery time it resolves
    to another: nothing is sent."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    answers = {"hooks.example.com": "127.0.0.1"}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    port = receiver.url.split(":")[2].split("/")[0]
    settings.WEBHOOK_ALLOW_HTTP = True
    endpoint = services.create_endpoint(url=f"http://hooks.example.com:{port}/hooks")
    make_product()
    delivery = queued(endpoint)[0]
    answers["hooks.example.com"] = "10.20.30.40"

    webhooks.deliver([delivery.pk])

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert "10.20.30.40" in delivery.last_error
    assert receiver.all() == []


def test_the_response_excerpt_is_capped_at_a_kilobyte(receiver, monkeypatch):
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    outcome = webhooks.Outcome(status_code=500, excerpt="x" * 5000, duration_ms=3)

    monkeypatch.setattr(webhooks.Sender, "send", lambda *args: outcome)
    with pytest.raises(webhooks.RetryLater):
        webhooks.deliver([delivery.pk])

    assert len(Delivery.objects.get(pk=delivery.pk).attempts_made.get().response_excerpt) == 1024


def test_a_delivery_already_settled_is_not_sent_again(receiver):
    """A job run again after its worker died having recorded the outcome sends nothing."""
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    webhooks.deliver([delivery.pk])

    webhooks.deliver([delivery.pk])

    assert len(receiver.all()) == 1


def test_redelivering_failed_deliveries_queues_them_again_in_order(receiver, api_client):
    endpoint = subscribe(receiver)
    three_events(make_product(stock_quantity=5))
    first, second, third = queued(endpoint)[:3]
    receiver.then(400).then(400)
    webhooks.deliver([first.pk])
    webhooks.deliver([second.pk])
    before = len(jobs())

    failed = api_client.get("/api/webhook-deliveries/", {"status": "failed"}).json()
    one = api_client.post(f"/api/webhook-deliveries/{first.pk}/redeliver/")
    again = api_client.post(f"/api/webhook-deliveries/{first.pk}/redeliver/")
    pending = api_client.post(f"/api/webhook-deliveries/{third.pk}/redeliver/")
    rest = api_client.post(f"/api/webhook-endpoints/{endpoint.pk}/redeliver-failed/")

    assert [d["id"] for d in failed["results"]] == [second.pk, first.pk]
    assert failed["results"][0]["last_status_code"] == 400
    assert (one.status_code, one.json()["status"]) == (202, "pending")
    assert (again.status_code, again.json()["code"]) == (409, "delivery_in_progress")
    assert pending.status_code == 409
    assert (rest.status_code, rest.json()) == (202, {"redelivered": 1})
    assert [args["delivery_ids"] for _, _, args in jobs()[before:]] == [[first.pk], [second.pk]]
    webhooks.deliver([first.pk])
    detail = api_client.get(f"/api/webhook-deliveries/{first.pk}/").json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [400, 204]
    assert detail["status"] == "succeeded"


def test_deliveries_filter_by_endpoint_status_and_event_type(receiver, api_client):
    endpoint = subscribe(receiver)
    other = subscribe(receiver)
    make_product(stock_quantity=0)
    queued(endpoint)

    mine = api_client.get("/api/webhook-deliveries/", {"endpoint": endpoint.pk}).json()
    low = api_client.get("/api/webhook-deliveries/", {"event_type": "stock.low"}).json()
    bad = api_client.get("/api/webhook-deliveries/", {"status": "lost"})

    assert {d["endpoint"] for d in mine["results"]} == {endpoint.pk}
    assert {d["endpoint"] for d in low["results"]} == {endpoint.pk, other.pk}
    assert all(d["event"]["type"] == "stock.low" for d in low["results"])
    assert bad.status_code == 400


def test_redelivering_to_a_disabled_endpoint_is_a_409(receiver, api_client):
    endpoint = subscribe(receiver)
    make_product()
    delivery = queued(endpoint)[0]
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)
    WebhookEndpoint.objects.update(is_active=False, disabled_reason="410")

    response = api_client.post(f"/api/webhook-deliveries/{delivery.pk}/redeliver/")
    bulk = api_client.post(f"/api/webhook-endpoints/{endpoint.pk}/redeliver-failed/")

    assert (response.status_code, response.json()["code"]) == (409, "endpoint_disabled")
    assert bulk.status_code == 409


def test_deliveries_are_counted_by_outcome_and_the_queue_depth_seen_at_scrape(receiver):
    def scrape() -> dict:
        text = Client().get("/metrics").content.decode()
        return {
            (sample.name, tuple(sample.labels.values())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    endpoint = subscribe(receiver, event_types=["product.created"])
    make_product()
    make_product()
    first, second = queued(endpoint)
    before = scrape()
    assert before[("inventory_webhook_deliveries_pending", ())] == 2
    assert before[("inventory_queue_jobs", ("webhooks", "todo"))] >= 1
    receiver.then(200)
    receiver.then(503)

    webhooks.deliver([first.pk])
    with pytest.raises(webhooks.RetryLater):
        webhooks.deliver([second.pk])

    after = scrape()
    counted = "inventory_webhook_deliveries_total"
    for outcome in ("succeeded", "retrying"):
        assert after.get((counted, (outcome,)), 0) - before.get((counted, (outcome,)), 0) == 1
    assert after[("inventory_webhook_deliveries_pending", ())] == 1


def test_an_answer_dripping_its_body_holds_the_lane_no_longer_than_the_total_timeout(receiver):
    """200 at once, then a 100 kB body at a byte every 0.1 s: the delivery succeeds and
    the job moves on by the total timeout (1 s here), the connection dropped."""
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def drip():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            for _ in range(300):
                conn.sendall(b"x")
                time.sleep(0.1)
        except OSError:
            pass
        conn.close()

    threading.Thread(target=drip, daemon=True).start()
    endpoint = services.create_endpoint(url=f"http://127.0.0.1:{port}/drip")
    make_product()
    delivery = queued(endpoint)[0]

    webhooks.deliver([delivery.pk])  # the server drips for 30 s

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == ("succeeded", 200)
    assert delivery.attempts_made.get().duration_ms < 5000
    listener.close()


def test_a_job_that_keeps_failing_for_another_reason_gives_its_deliveries_up(
    receiver, settings, monkeypatch
):
    from types import SimpleNamespace

    from events import tasks

    endpoint = subscribe(receiver)
    make_product()
    deliveries = [d.pk for d in queued(endpoint)]

    def broken(ids):
        raise KeyError("a bug")

    monkeypatch.setattr(webhooks, "deliver", broken)
    early = SimpleNamespace(job=SimpleNamespace(attempts=0))
    last = SimpleNamespace(job=SimpleNamespace(attempts=settings.WEBHOOK_MAX_ATTEMPTS - 1))
    with pytest.raises(KeyError):
        tasks.deliver.func(early, delivery_ids=deliveries)  # retried, with the backoff
    tasks.deliver.func(last, delivery_ids=deliveries)

    failed = Delivery.objects.filter(pk__in=deliveries)
    assert {d.status for d in failed} == {"failed"}
    assert all("KeyError" in d.last_error for d in failed)
