"""What the throttle costs per request (`make bench-throttle`): DRF's, which keeps a list
of timestamps, against ours (core/throttling.py), which keeps a count.

    .venv/bin/python bench/throttle_cost.py [--requests 1000] [--repeat 5]
        [--redis-url redis://127.0.0.1:6379/15] [--busy-per-second 250]

One user's allowed requests go through each throttle class (`UserRateThrottle`), with
the in-process cache (locmem) and with Redis, at 3000/minute (the production default)
and at 100000000/minute. The client is busy: at 3000/minute it sends 2,999 requests a
minute, just under its limit; at 100000000/minute, --busy-per-second (15,000 a minute
at 250). DRF's history starts full, as such a client's would be, and the throttles'
clock moves on by one request's share of the minute per request, so that the history
keeps its length. An idle client (one request a minute) is the other row. Everything
runs in this process, warm, no network but Redis's.

Prints, per request, the median over --repeat runs (with the lowest and highest) of
this process's CPU time (time.process_time: the server's cost, not waiting for Redis),
Redis's own CPU time (from INFO; it includes whatever else Redis serves meanwhile),
and the bytes of the value read and written.
"""

import argparse
import itertools
import pickle
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

settings.configure(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"anon": None, "user": "3000/minute"}},
)
django.setup()

from django.core.cache.backends.locmem import LocMemCache  # noqa: E402
from django.core.cache.backends.redis import RedisCache  # noqa: E402
from rest_framework import throttling as drf_throttling  # noqa: E402

from core import throttling  # noqa: E402

RATES = ["3000/minute", "100000000/minute"]
THROTTLES = {
    "DRF (list)": drf_throttling.UserRateThrottle,
    "ours (count)": throttling.UserRateThrottle,
}
# A user of each run's own, so that no run sees another's counts (Redis keeps them two
# minutes), nor one row another's.
USERS = itertools.count(uuid.uuid4().int % 10**12 * 1000)
WARMUP = 50


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per row")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--busy-per-second", type=int, default=250)
    args = parser.parse_args()

    caches = {"locmem": lambda: LocMemCache(f"bench-throttle-{next(USERS)}", {})}
    redis = RedisCache(args.redis_url, {"KEY_PREFIX": "bench-throttle"})
    try:
        redis.get("ping")
        caches["redis"] = lambda: redis
    except Exception as exc:
        print(f"Redis at {args.redis_url} does not answer ({exc}): locmem only.\n")

    print(
        f"{'cache':<7} {'rate':<17} {'client':<22} {'throttle':<13} "
        f"{'CPU µs/req (min–max)':>24} {'Redis CPU µs':>13} {'value bytes':>12}"
    )
    for cache_name, make_cache in caches.items():
        for rate, client, per_minute in clients(args.busy_per_second):
            for throttle_name, base in THROTTLES.items():
                cache = make_cache()
                cost, server, size = measure(
                    base, rate, per_minute, cache, args.requests, args.repeat
                )
                low, mid, high = min(cost), statistics.median(cost), max(cost)
                server_text = f"{statistics.median(server):.1f}" if server else "–"
                print(
                    f"{cache_name:<7} {rate:<17} {client:<22} {throttle_name:<13} "
                    f"{f'{mid:.1f} ({low:.1f}–{high:.1f})':>24} {server_text:>13} {size:>12,}"
                )


def clients(busy_per_second: int) -> list[tuple[str, str, int]]:
    """(rate, description, the client's requests per minute)."""
    return [
        ("3000/minute", "busy: 2,999 a minute", 2999),
        ("100000000/minute", f"busy: {busy_per_second * 60:,} a minute", busy_per_second * 60),
        ("3000/minute", "idle: 1 a minute", 1),
    ]


def measure(base, rate, per_minute, cache, requests, repeat):
    """CPU µs per request of each run, Redis's CPU µs per request, the value's bytes."""
    clock = Clock(29_000_000 * 60.0)
    throttle_class = type("Throttle", (base,), {"rate": rate, "cache": cache, "timer": clock})
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=next(USERS)))
    key = throttle_class().get_cache_key(request, None)
    step = 60 / per_minute
    if not issubclass(base, throttling.SlidingWindowRateThrottle):
        # A busy client's history: one timestamp per request of the last minute.
        history = [clock.now - n * step for n in range(per_minute if per_minute > 1 else 0)]
        cache.set(key, history, 60)
    clock.now += step

    def send() -> None:
        if not throttle_class().allow_request(request, None):
            raise SystemExit(f"{base.__module__} refused a request at {rate}: the bench is wrong")
        clock.now += step

    for _ in range(WARMUP):
        send()
    cost, server = [], []
    for _ in range(repeat):
        redis_before = redis_cpu(cache)
        start = time.process_time()
        for _ in range(requests):
            send()
        cost.append((time.process_time() - start) / requests * 1e6)
        if redis_before is not None:
            server.append((redis_cpu(cache) - redis_before) / requests * 1e6)
    last_window = int((clock.now - step) // 60)  # the last request's
    size = value_size(cache, key, last_window)
    # The older windows' counts expire on their own, within two minutes.
    cache.delete_many([key, *(f"{key}:{last_window + n}" for n in (-1, 0))])
    return cost, server, size


def redis_cpu(cache) -> float | None:
    if not isinstance(cache, RedisCache):
        return None
    info = cache._cache.get_client(None).info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def value_size(cache, key: str, window: int) -> int:
    """Bytes of the value a request reads and writes, as the cache stores it."""
    value = cache.get(key)
    if value is None:  # ours: the window's count
        value = cache.get(f"{key}:{window}")
    if isinstance(cache, RedisCache) and isinstance(value, int):
        return len(str(value))  # Redis keeps an integer as its digits
    return len(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
