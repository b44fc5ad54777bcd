"""Prometheus metrics through ``prometheus_client``, one registry per app (tests run several
apps in one process); the executor's figures are read at scrape time.

>>> m = Metrics()
>>> m.observe("/sparql", 200, 0.004)
>>> 'namkg_requests_total{route="/sparql",status="200"} 1.0' in m.render({"workers": 2})
True
>>> "namkg_executor_workers 2.0" in m.render({"workers": 2})
True
"""

from __future__ import annotations

import threading

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# No *_created samples: they double every series for a start time scrapers rarely use.
disable_created_metrics()

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# What generate_latest() writes, as prometheus_client's own handler labels it. Not its
# CONTENT_TYPE_LATEST: from 0.22 that says version=1.0.0, meant with an escaping= parameter.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COUNTERS = {  # name -> help; count() of another name makes a counter of that name
    "namkg_unavailable_total": "answers 503 or 504 (busy, shed, timed out)",
    "namkg_refused_total": "answers 400 (bad or refused queries)",
    "namkg_rate_limited_total": "requests refused by the rate limit",
    "namkg_response_cache_hits_total": "answers given from the response cache",
}
EXECUTOR = (("timeouts", "counter"), ("crashes", "counter"), ("queries", "counter"),
            ("workers", "gauge"), ("busy", "gauge"))


class Metrics:
    """Requests by route and status, their durations, and named counters."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("namkg_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.seconds = Histogram("namkg_request_seconds", "time to answer, by route",
                                 ["route"], buckets=BUCKETS, registry=self.registry)
        self.counters = {name: Counter(name.removesuffix("_total"), help_,
                                       registry=self.registry)
                         for name, help_ in COUNTERS.items()}
        self._children: dict[tuple[str, int], tuple] = {}  # labels() looked up once
        self._lock = threading.Lock()
        self._executor = _ExecutorFigures()
        self.registry.register(self._executor)

    def observe(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = (self.requests.labels(route, str(status)), self.seconds.labels(route))
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)
        if status in (503, 504):
            self.counters["namkg_unavailable_total"].inc()
        elif status == 400:
            self.counters["namkg_refused_total"].inc()

    def count(self, name: str, n: int = 1) -> None:
        counter = self.counters.get(name)
        if counter is None:
            with self._lock:
                counter = self.counters.get(name) or Counter(
                    name.removesuffix("_total"), name, registry=self.registry)
                self.counters[name] = counter
        counter.inc(n)

    def render(self, executor_stats: dict) -> str:
        """The text exposition of every metric, with ``executor_stats`` as they are now."""
        with self._lock:  # one scrape at a time sees its own figures
            self._executor.stats = executor_stats
            return generate_latest(self.registry).decode("utf-8")


class _ExecutorFigures:
    """The executor's counts (``stats()``) as Prometheus families, at scrape time."""

    stats: dict = {}  # set by Metrics.render for the scrape it makes

    def describe(self):
        return []  # figures come and go with the executor's stats

    def collect(self):
        stats = self.stats
        for key, kind in EXECUTOR:
            if key not in stats:
                continue
            if kind == "counter":
                yield CounterMetricFamily(f"namkg_executor_{key}", f"executor {key}",
                                          value=stats[key])
            else:
                yield GaugeMetricFamily(f"namkg_executor_{key}", f"executor {key}",
                                        value=stats[key])
