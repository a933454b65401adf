"""/api/webhook-endpoints/: inventory admins subscribe URLs; the secret is shown once;
rotation; the SSRF rule at save time; SQLite refuses clearly."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from events import webhooks
from events.models import WebhookEndpoint

from .conftest import make_user, requires_postgres, token_client

pytestmark = [pytest.mark.django_db, requires_postgres]

URL = "/api/webhook-endpoints/"


@pytest.fixture
def loopback_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture
def resolves_to(monkeypatch):
    """Make a host name resolve to an address (DNS, not the database, is what we fake)."""
    real = socket.getaddrinfo
    names: dict[str, str] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def create(client, **body):
    return client.post(URL, body, format="json")


def test_an_admin_subscribes_a_url_and_gets_the_secret_once(api_client, loopback_allowed):
    response = create(
        api_client,
        url="http://127.0.0.1:8390/hooks",
        event_types=["stock.low", "stock.low", "stock.recovered"],
        description="ERP",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["stock.low", "stock.recovered"]
    assert body["is_active"] is True
    shown = api_client.get(f"{URL}{body['id']}/").json()
    listed = api_client.get(URL).json()["results"]
    assert "secret" not in shown
    assert all("secret" not in endpoint for endpoint in listed)
    assert WebhookEndpoint.objects.get().secret == body["secret"]


def test_no_event_types_means_all(api_client, loopback_allowed):
    body = create(api_client, url="http://127.0.0.1:8390/").json()

    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["event_types"] == []
    assert endpoint.subscribes_to("product.deleted")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8390/",  # loopback, without the setting
        "https://127.0.0.1/",
        "https://localhost/",  # a name resolving to loopback
        "https://10.1.2.3/",
        "https://192.168.0.10/",
        "https://172.16.5.4/",
        "https://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://0.0.0.0/",
        "https://100.64.0.1/",  # carrier-grade NAT
        "https://no-such-host.invalid/",
        "http://93.184.215.14/",  # public, but plain http
        "https://user:pw@93.184.215.14/",
        "ftp://93.184.215.14/",
    ],
)
def test_internal_or_unusable_urls_are_refused_with_422(api_client, url):
    response = create(api_client, url=url)

    assert response.status_code in (400, 422), response.json()
    if response.status_code == 422:
        assert response.json()["code"] == "webhook_url_refused"
    assert not WebhookEndpoint.objects.exists()


def test_a_host_name_that_resolves_to_a_private_address_is_refused(api_client, resolves_to):
    resolves_to["hooks.example.com"] = "10.0.0.7"

    response = create(api_client, url="https://hooks.example.com/in")

    assert response.status_code == 422
    assert "10.0.0.7" in response.json()["detail"]


def test_a_public_address_is_accepted_and_allowed_hosts_let_a_named_host_through(
    api_client, resolves_to, settings
):
    resolves_to["hooks.example.com"] = "93.184.215.14"
    resolves_to["erp.internal"] = "10.0.0.8"
    settings.WEBHOOK_ALLOWED_HOSTS = ["erp.internal"]

    public = create(api_client, url="https://hooks.example.com/in")
    named = create(api_client, url="http://erp.internal:8080/in")  # http too, for that host

    assert (public.status_code, named.status_code) == (201, 201)


def test_the_url_is_checked_again_when_it_changes(api_client, loopback_allowed):
    endpoint = create(api_client, url="http://127.0.0.1:8390/").json()

    moved = api_client.patch(f"{URL}{endpoint['id']}/", {"url": "https://10.0.0.1/"}, format="json")
    described = api_client.patch(
        f"{URL}{endpoint['id']}/", {"description": "still here"}, format="json"
    )

    assert moved.status_code == 422
    assert described.status_code == 200
    assert described.json()["url"] == "http://127.0.0.1:8390/"


def test_reactivating_a_disabled_endpoint_clears_its_reason(api_client, loopback_allowed):
    endpoint = create(api_client, url="http://127.0.0.1:8390/").json()
    WebhookEndpoint.objects.filter(pk=endpoint["id"]).update(
        is_active=False, disabled_reason="The endpoint answered 410 Gone.",
        failing_since=timezone.now(),
    )  # fmt: skip

    shown = api_client.get(f"{URL}{endpoint['id']}/").json()
    response = api_client.patch(f"{URL}{endpoint['id']}/", {"is_active": True}, format="json")

    assert shown["disabled_reason"] == "The endpoint answered 410 Gone."
    assert response.status_code == 200
    assert (response.json()["disabled_reason"], response.json()["failing_since"]) == ("", None)


def test_rotating_keeps_the_old_secret_signing_through_the_overlap(api_client, loopback_allowed):
    endpoint = create(api_client, url="http://127.0.0.1:8390/").json()

    rotated = api_client.post(
        f"{URL}{endpoint['id']}/rotate-secret/", {"overlap_seconds": 3600}, format="json"
    )

    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]
    saved = WebhookEndpoint.objects.get(pk=endpoint["id"])
    now = timezone.now()
    assert webhooks.signing_secrets(saved, now) == [new_secret, endpoint["secret"]]
    assert webhooks.signing_secrets(saved, now + timedelta(hours=2)) == [new_secret]
    at_once = api_client.post(
        f"{URL}{endpoint['id']}/rotate-secret/", {"overlap_seconds": 0}, format="json"
    )
    assert webhooks.signing_secrets(WebhookEndpoint.objects.get(), now) == [
        at_once.json()["secret"]
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"overlap_seconds": -1}, "overlap_seconds"),
        ({"overlap_seconds": 10**9}, "overlap_seconds"),
        ({"overlap_seconds": "soon"}, "overlap_seconds"),
        ({"overlap": 5}, "overlap"),
    ],
)
def test_a_bad_rotation_is_a_400(api_client, loopback_allowed, body, field):
    endpoint = create(api_client, url="http://127.0.0.1:8390/").json()

    response = api_client.post(f"{URL}{endpoint['id']}/rotate-secret/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "not a url"}, "url"),
        ({"url": "https://x.example/" + "a" * 2000}, "url"),
        ({"url": "https://x.example/", "event_types": ["stock.gone"]}, "event_types"),
        ({"url": "https://x.example/", "event_types": "stock.low"}, "event_types"),
        ({"url": "https://x.example/", "secret": "whsec_mine"}, "secret"),
        ({"event_types": []}, "url"),
    ],
)
def test_a_bad_endpoint_is_a_400(api_client, body, field):
    response = create(api_client, **body)

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_webhooks_are_for_inventory_admins_only(loopback_allowed):
    staff = token_client(make_user("staff"))

    assert staff.get(URL).status_code == 403
    assert create(staff, url="http://127.0.0.1:8390/").status_code == 403
    assert staff.get("/api/webhook-deliveries/").status_code == 403
    assert token_client().get(URL).status_code == 401


def test_deleting_an_endpoint(api_client, loopback_allowed):
    endpoint = create(api_client, url="http://127.0.0.1:8390/").json()

    assert api_client.delete(f"{URL}{endpoint['id']}/").status_code == 204
    assert api_client.get(f"{URL}{endpoint['id']}/").status_code == 404
    assert api_client.delete(f"{URL}{endpoint['id']}/").status_code == 404


def test_on_sqlite_creating_an_endpoint_is_a_clear_409(api_client, monkeypatch):
    """Where deliveries cannot be made (the embedded SQLite default), nothing is accepted
    and then silently dropped."""
    monkeypatch.setattr(webhooks, "deliveries_supported", lambda: False)

    response = create(api_client, url="https://93.184.215.14/")

    assert response.status_code == 409
    assert response.json()["code"] == "deliveries_need_postgresql"
    assert "PostgreSQL" in response.json()["detail"]
    assert not WebhookEndpoint.objects.exists()
