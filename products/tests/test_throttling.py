"""The throttles' counting (core/throttling.py), on a clock the tests move: the limit,
Retry-After, windows rolling over, counts shared through the cache, and a count that
stays one integer whatever the rate."""

import threading
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.test import RequestFactory
from rest_framework.request import Request
from rest_framework.test import APIClient

from core.throttling import AnonRateThrottle, UserRateThrottle

from .conftest import make_user, token_client
from .test_auth import REDIS_URL, redis_is_up

MINUTE = 60
# 10 seconds into a minute window.
START = 29_000_000 * MINUTE + 10.0


class Clock:
    """A throttle's `timer` that tests move by hand."""

    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now


def locmem() -> LocMemCache:
    return LocMemCache(f"throttle-{uuid.uuid4()}", {})


def redis() -> RedisCache:
    """A client of its own (its own connections), as another server process has."""
    return RedisCache(REDIS_URL, {"KEY_PREFIX": "test-throttling"})


def anonymous_request(address: str = "192.0.2.1") -> Request:
    request = Request(RequestFactory().get("/api/products/", REMOTE_ADDR=address))
    request.user = AnonymousUser()
    return request


class Client:
    """One client address's requests through fresh throttle instances, as DRF makes
    one per request."""

    def __init__(self, rate: str, cache, clock: Clock, address: str = "192.0.2.1"):
        self.throttle_class = type(
            "Throttle", (AnonRateThrottle,), {"rate": rate, "cache": cache, "timer": clock}
        )
        self.request = anonymous_request(address)
        self.last = None

    def send(self) -> bool:
        self.last = self.throttle_class()
        return self.last.allow_request(self.request, None)

    def retry_after(self) -> int:
        return self.last.wait()

    def count_key(self) -> str:
        return f"{self.last.key}:{int(self.last.now // self.last.duration)}"


def test_the_rate_is_allowed_and_the_next_request_refused_until_retry_after():
    clock = Clock()
    client = Client("3/minute", locmem(), clock)

    assert [client.send() for _ in range(4)] == [True, True, True, False]

    # The window ends in 50 s; from then on the three requests count less and less.
    assert client.retry_after() == 51
    clock.now += 50
    assert not client.send()
    clock.now += 1
    assert client.send()


@pytest.mark.parametrize("rate", ["3/minute", "10/second", "60/minute", "3000/minute"])
def test_retry_after_is_the_first_whole_second_a_request_is_allowed_again(rate):
    """A busy client's requests at uneven times; after each refusal, a request one second
    before Retry-After is refused and one at Retry-After is allowed."""
    clock = Clock()
    client = Client(rate, locmem(), clock)
    limit = client.throttle_class().num_requests
    refusals = 0
    for step in range(4 * limit):
        clock.now += (step * 7919 % 13) / 13 * 2 * client.throttle_class().duration / limit
        if client.send():
            continue
        refusals += 1
        wait = client.retry_after()
        assert wait >= 1
        start = clock.now
        if wait > 1:
            clock.now = start + wait - 1
            assert not client.send()
        clock.now = start + wait
        assert client.send()

    assert refusals > 0


def test_retry_after_holds_when_the_rate_was_lowered_below_this_windows_count():
    clock, cache = Clock(), locmem()
    before = Client("10/minute", cache, clock)
    assert all(before.send() for _ in range(10))
    after = Client("3/minute", cache, clock)

    assert not after.send()

    # Ten requests count 3 once 30 % of them are left, 42 s into the next window.
    assert after.retry_after() == 50 + 42 + 1
    clock.now += 92
    assert not after.send()
    clock.now += 1
    assert after.send()


def test_refused_requests_do_not_count():
    clock = Clock()
    client = Client("3/minute", locmem(), clock)
    for _ in range(3):
        client.send()

    assert not any(client.send() for _ in range(100))
    assert client.retry_after() == 51


def test_a_client_at_its_rate_is_never_refused_across_windows():
    clock = Clock(START - 10 + 0.5)
    client = Client("60/minute", locmem(), clock)
    allowed = []
    for _ in range(5 * 60):
        allowed.append(client.send())
        clock.now += 1

    assert all(allowed)


def test_a_burst_at_a_window_end_is_not_followed_by_another_at_the_next_start():
    """A fixed window would allow 60 + 60 within a second here."""
    clock = Clock(START + 49)  # a second before the window ends
    client = Client("60/minute", locmem(), clock)
    assert all(client.send() for _ in range(60))

    clock.now += 1.5
    assert sum(client.send() for _ in range(60)) == 1


def test_all_requests_are_allowed_again_two_windows_later():
    clock = Clock()
    client = Client("3/minute", locmem(), clock)
    assert [client.send() for _ in range(4)] == [True, True, True, False]

    clock.now += 2 * MINUTE

    assert [client.send() for _ in range(4)] == [True, True, True, False]


def test_clients_are_counted_apart():
    clock, cache = Clock(), locmem()
    first = Client("2/minute", cache, clock, "192.0.2.1")
    second = Client("2/minute", cache, clock, "192.0.2.2")

    assert [first.send() for _ in range(3)] == [True, True, False]
    assert [second.send() for _ in range(3)] == [True, True, False]


def test_throttle_instances_sharing_a_cache_count_together():
    clock, cache = Clock(), locmem()
    one, other = Client("3/minute", cache, clock), Client("3/minute", cache, clock)

    assert [one.send(), other.send(), one.send(), other.send()] == [True, True, True, False]


class Interleaving(LocMemCache):
    """Runs `meanwhile` once, just before its next `incr`: another server process's
    request arriving between this one's read of the counts and its increment."""

    meanwhile = None

    def incr(self, key, delta=1, version=None):
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return super().incr(key, delta, version)


def test_a_request_overtaken_between_reading_and_counting_is_refused_and_not_counted():
    clock, cache = Clock(), Interleaving(f"throttle-{uuid.uuid4()}", {})
    one, other = Client("3/minute", cache, clock), Client("3/minute", cache, clock)
    assert [one.send(), one.send()] == [True, True]
    overtaking = []
    cache.meanwhile = lambda: overtaking.append(other.send())

    assert not one.send()

    assert overtaking == [True]
    assert cache.get(one.count_key()) == 3
    assert one.retry_after() == 51


@pytest.mark.parametrize("backend", ["locmem", "redis"])
def test_concurrent_requests_are_allowed_exactly_up_to_the_limit(backend):
    if backend == "redis" and not redis_is_up():
        pytest.skip("needs Redis on 127.0.0.1:6379")
    clock, cache = Clock(), locmem() if backend == "locmem" else redis()
    address = f"192.0.2.{uuid.uuid4().int % 250}"
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    allowed = []

    def hammer() -> None:
        client = Client("50/minute", cache, clock, address)
        barrier.wait()
        allowed.extend(client.send() for _ in range(25))

    threads = [threading.Thread(target=hammer) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    probe = Client("50/minute", cache, clock, address)
    try:
        assert not probe.send()
        assert allowed.count(True) == 50
        assert cache.get(probe.count_key()) == 50
    finally:
        cache.delete(probe.count_key())


def test_the_count_stays_one_small_integer_at_any_rate():
    cache = locmem()
    client = Client("100000000/minute", cache, Clock())

    assert all(client.send() for _ in range(10_000))

    assert cache.get(client.count_key()) == 10_000
    assert len(cache._cache) == 1  # one key for this client: the window's count


class ForgetfulCache(LocMemCache):
    """A cache that loses every key just before an increment, as when it is cleared or
    evicts keys between one request's `add` and the next one's `incr`."""

    def incr(self, key, delta=1, version=None):
        self.clear()
        return super().incr(key, delta, version)


def test_a_count_that_vanishes_between_add_and_incr_is_started_again():
    clock = Clock()
    client = Client("3/minute", ForgetfulCache("forgetful", {}), clock)

    assert all(client.send() for _ in range(5))


@pytest.mark.django_db
def test_the_api_answers_429_with_the_windows_retry_after(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(UserRateThrottle, "rate", "3/minute", raising=False)
    monkeypatch.setattr(UserRateThrottle, "timer", clock)
    api = token_client(make_user("staff"))

    statuses = [api.get("/api/products/").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    response = api.get("/api/products/")
    assert response["Retry-After"] == "51"
    assert response.json()["retry_after"] == 51
    clock.now += 51
    assert api.get("/api/products/").status_code == 200


def test_anonymous_requests_are_counted_by_both_scopes(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(AnonRateThrottle, "rate", "5/minute", raising=False)
    monkeypatch.setattr(AnonRateThrottle, "timer", clock)
    monkeypatch.setattr(UserRateThrottle, "rate", "2/minute", raising=False)
    monkeypatch.setattr(UserRateThrottle, "timer", clock)

    statuses = [APIClient().get("/api/products/").status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


requires_redis = pytest.mark.skipif(not redis_is_up(), reason="needs Redis on 127.0.0.1:6379")


@requires_redis
def test_two_redis_clients_count_together():
    clock, address = Clock(), f"198.51.100.{uuid.uuid4().int % 250}"
    one = Client("3/minute", redis(), clock, address)
    other = Client("3/minute", redis(), clock, address)
    one.send()  # the key is new to Redis
    key = one.count_key()
    try:
        assert [other.send(), one.send(), other.send()] == [True, True, False]
        assert other.retry_after() == 51
    finally:
        redis().delete(key)


@requires_redis
def test_the_count_in_redis_is_one_small_integer_at_any_rate():
    cache = redis()
    client = Client("100000000/minute", cache, Clock(), f"203.0.113.{uuid.uuid4().int % 250}")
    client.send()
    key = client.count_key()
    try:
        assert all(client.send() for _ in range(999))

        assert cache.get(key) == 1000
        raw = cache._cache.get_client(key)
        assert raw.type(cache.make_key(key)) == b"string"
        assert raw.strlen(cache.make_key(key)) == 4  # "1000"
        assert raw.ttl(cache.make_key(key)) > MINUTE  # kept through the next window
    finally:
        cache.delete(key)
