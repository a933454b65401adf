"""The API's throttles: DRF's `anon` and `user` scopes, counted in the cache with one
integer per client and window, so that a request costs the same whatever the rate.

DRF's own SimpleRateThrottle keeps a timestamp for every request of the last period in
one cache value, and reads and writes the whole list on every request: 3,000 floats per
request at 3000/minute, more at higher rates.
"""

import contextlib
import math

from rest_framework import throttling


class SlidingWindowRateThrottle(throttling.SimpleRateThrottle):
    """At most `num_requests` per `duration`, judged over a sliding window estimated from
    two fixed windows' counts.

    Time is cut into fixed windows of `duration` (a minute for `/minute`). A request is
    allowed while the requests counted before it are fewer than `num_requests`, as in
    DRF's throttle: the current window's count plus the previous window's, weighted by
    the part of the previous window still inside the last `duration` (its requests are
    taken as spread evenly over it). Chosen over a plain fixed window, which lets a
    client send its whole limit at the end of one window and again at the start of the
    next, twice the limit within a second; here, as with DRF's throttle, a client that
    has used its limit gets requests back gradually.

    Each window's count is an integer in the cache under `<DRF's key>:<window number>`,
    kept for two windows. A request reads both windows' counts (one `get_many`); if
    they already reach the limit it is refused there, uncounted. Otherwise it is
    counted with `cache.incr` (`cache.add` for the window's first request), both atomic
    on Redis so that every server process counts together, and judged again on the
    count `incr` returns; if others' requests got there first it is refused and taken
    off again (`cache.decr`). As with DRF's throttle, only allowed requests count.
    """

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        previous_key, current_key = f"{self.key}:{window - 1}", f"{self.key}:{window}"
        counts = self.cache.get_many([previous_key, current_key])
        self.previous = counts.get(previous_key, 0)
        self.current = counts.get(current_key, 0)  # the others in this window
        if self._counted() >= self.num_requests:
            return self.throttle_failure()  # refused without a write
        self.current = self._count(current_key, new=current_key not in counts) - 1
        if self._counted() < self.num_requests:
            return self.throttle_success()
        self._uncount(current_key)  # others' requests were counted first
        return self.throttle_failure()

    def _counted(self) -> float:
        """The requests counted in the last `duration`, this one left out."""
        return self.current + self.previous * (self.window_end - self.now) / self.duration

    def throttle_success(self) -> bool:
        return True  # counted already

    def wait(self) -> int | None:
        """Whole seconds after which a request would be allowed, if the client sent
        none meanwhile: the 429's Retry-After."""
        limit, duration = self.num_requests, self.duration
        if limit == 0:
            return None  # never
        if self.current < limit and self.previous:
            # Later in this window, once the previous window's weighted count is small
            # enough.
            allowed_after = self.window_end - duration * (limit - self.current) / self.previous
        else:
            # In the next window, once this window's weighted count is below the limit.
            share = 1 - limit / self.current if self.current > limit else 0.0
            allowed_after = self.window_end + duration * share
        # Allowed from just after `allowed_after`: the next whole second.
        return math.floor(max(allowed_after - self.now, 0.0)) + 1

    def _count(self, key: str, *, new: bool) -> int:
        """Count this request in the window at `key`; return the window's count.

        `add` first if the key was `new` a moment ago, else `incr` first: on Redis each
        failed attempt is one more round trip.
        """
        timeout = 2 * self.duration
        if new and self.cache.add(key, 1, timeout):
            return 1
        for _ in range(3):
            try:
                return self.cache.incr(key)
            except ValueError:
                # The key vanished (expired, evicted, cache cleared) after the `get`
                # or another request's `add`.
                if self.cache.add(key, 1, timeout):
                    return 1
        # The key keeps vanishing: the cache is keeping nothing. Count afresh.
        self.cache.set(key, 1, timeout)
        return 1

    def _uncount(self, key: str) -> None:
        with contextlib.suppress(ValueError):  # gone already: nothing to take off
            self.cache.decr(key)


class AnonRateThrottle(SlidingWindowRateThrottle, throttling.AnonRateThrottle):
    """DRF's `anon` throttle (per client address, anonymous requests only)."""


class UserRateThrottle(SlidingWindowRateThrottle, throttling.UserRateThrottle):
    """DRF's `user` throttle (per user; per client address for anonymous requests)."""
