"""The optional rate limit (``NAMKG_RATE_LIMIT``): a token bucket per client address."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """A token bucket per client address: ``rate`` requests per second, bursts of 2x.

    A bucket idle long enough to have refilled is the same as no bucket, so such buckets are
    dropped (swept once the map passes ``SWEEP_AT`` entries, then twice what a sweep left, so
    that sweeps stay rare however many clients are active): memory follows the clients seen in
    the last refill time, not every address ever seen.

    >>> r = RateLimiter(rate=1000.0)
    >>> [r.allow(f"10.0.0.{i}") for i in range(5)]
    [True, True, True, True, True]
    >>> time.sleep(0.01)  # a bucket of 2,000 refills one token in 1 ms
    >>> r.SWEEP_AT = r.sweep_at = 3
    >>> r.allow("10.0.0.9"), sorted(r.buckets), r.sweep_at
    (True, ['10.0.0.9'], 3)
    """

    SWEEP_AT = 10_000  # entries

    def __init__(self, rate: float):
        self.rate, self.enabled = rate, rate > 0
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()
        self.sweep_at = self.SWEEP_AT

    def allow(self, client: str) -> bool:
        now, burst = time.monotonic(), max(1.0, 2 * self.rate)
        with self.lock:
            tokens, last = self.buckets.get(client, (burst, now))
            tokens = min(burst, tokens + (now - last) * self.rate)
            ok = tokens >= 1
            self.buckets[client] = (tokens - 1 if ok else tokens, now)
            if len(self.buckets) > self.sweep_at:
                self._sweep(now, burst)
            return ok

    def _sweep(self, now: float, burst: float) -> None:
        full = [c for c, (tokens, last) in self.buckets.items()
                if tokens + (now - last) * self.rate >= burst]
        for c in full:
            del self.buckets[c]
        self.sweep_at = max(self.SWEEP_AT, 2 * len(self.buckets))
