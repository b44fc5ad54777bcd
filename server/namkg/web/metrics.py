"""Prometheus metrics in the text exposition format, without a client library.

>>> m = Metrics()
>>> m.observe("/sparql", 200, 0.004)
>>> 'namkg_requests_total{route="/sparql",status="200"} 1' in m.render({})
True
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)
        self.counters: dict[str, int] = defaultdict(int)

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(route, status)] += 1
            counts = self.hist[route]
            counts[bisect_left(BUCKETS, seconds)] += 1  # the first bucket with seconds <= bound
            self.sums[route] += seconds
            if status in (503, 504):
                self.counters["namkg_unavailable_total"] += 1
            elif status == 400:
                self.counters["namkg_refused_total"] += 1

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] += n

    def render(self, executor_stats: dict) -> str:
        out = ["# TYPE namkg_requests_total counter"]
        with self.lock:
            for (route, status), n in sorted(self.requests.items()):
                out.append(f'namkg_requests_total{{route="{route}",status="{status}"}} {n}')
            out.append("# TYPE namkg_request_seconds histogram")
            for route, counts in sorted(self.hist.items()):
                acc = 0
                for bound, n in zip((*BUCKETS, "+Inf"), counts, strict=True):
                    acc += n
                    labels = f'route="{route}",le="{bound}"'
                    out.append(f"namkg_request_seconds_bucket{{{labels}}} {acc}")
                out.append(f'namkg_request_seconds_sum{{route="{route}"}} {self.sums[route]:.6f}')
                out.append(f'namkg_request_seconds_count{{route="{route}"}} {acc}')
            for name, n in sorted(self.counters.items()):
                out += [f"# TYPE {name} counter", f"{name} {n}"]
        for key in ("timeouts", "crashes", "queries"):
            if key in executor_stats:
                out += [f"# TYPE namkg_executor_{key}_total counter",
                        f"namkg_executor_{key}_total {executor_stats[key]}"]
        for key in ("workers", "busy"):
            if key in executor_stats:
                name = f"namkg_executor_{key}"
                out += [f"# TYPE {name} gauge", f"{name} {executor_stats[key]}"]
        return "\n".join(out) + "\n"
