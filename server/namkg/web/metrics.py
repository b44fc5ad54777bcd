"""Prometheus metrics through ``prometheus_client``, one registry per app (tests run several
apps in one process); the executor's figures are read at scrape time.

Requests and their durations are counted per thread (:class:`_Tally`: plain ints, which only
their own thread writes, so no lock) and summed into ``prometheus_client``'s metric families
at scrape time. Its ``Counter`` and ``Histogram`` took three locks and a Python loop a
request, ~1.8 us where this takes ~0.7 (tests/test_operability.py proves the figures equal
to theirs for the same requests).

>>> m = Metrics()
>>> m.observe("/sparql", 200, 0.004)
>>> 'namkg_requests_total{route="/sparql",status="200"} 1.0' in m.render({"workers": 2})
True
>>> "namkg_executor_workers 2.0" in m.render({"workers": 2})
True
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from itertools import accumulate

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

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
        self.tallies: list[_Tally] = []  # one per thread that has answered a request
        self._local = threading.local()
        self.registry.register(_Requests(self.tallies))
        self.counters = {name: Counter(name.removesuffix("_total"), help_,
                                       registry=self.registry)
                         for name, help_ in COUNTERS.items()}
        self._lock = threading.Lock()
        self._executor = _ExecutorFigures()
        self.registry.register(self._executor)

    def observe(self, route: str, status: int, seconds: float) -> None:
        try:
            tally = self._local.tally
        except AttributeError:
            tally = self._local.tally = _Tally()
            with self._lock:
                self.tallies.append(tally)
        tally.add(route, status, seconds)
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


class _Tally:
    """One thread's requests by (route, status), and per route the count in each of
    ``BUCKETS`` (then +Inf) and the sum of their seconds. Only its thread writes it, by single
    item assignments; a scrape copies each dict and list whole (atomic under the GIL)."""

    __slots__ = ("requests", "seconds")

    def __init__(self):
        self.requests: dict[tuple[str, int], int] = {}
        self.seconds: dict[str, list] = {}

    def add(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        counts = self.seconds.get(route)
        if counts is None:
            counts = self.seconds[route] = _no_seconds()
        counts[bisect_left(BUCKETS, seconds)] += 1  # the first bucket it is <= to: its "le"
        counts[-1] += seconds


def _no_seconds() -> list:
    """Counts per bucket of ``BUCKETS``, then +Inf, then the sum of seconds: all zero."""
    return [0] * (len(BUCKETS) + 1) + [0.0]


class _Requests:
    """``namkg_requests_total`` and ``namkg_request_seconds`` summed over the tallies, as
    ``prometheus_client``'s ``Counter`` and ``Histogram`` of those names would expose them."""

    LE = [*map(floatToGoString, BUCKETS), "+Inf"]

    def __init__(self, tallies: list[_Tally]):
        self.tallies = tallies

    def describe(self):
        return []  # labelled series come and go; nothing to register up front

    def collect(self):
        requests: dict[tuple[str, int], int] = {}
        seconds: dict[str, list] = {}
        for tally in list(self.tallies):
            for key, n in dict(tally.requests).items():
                requests[key] = requests.get(key, 0) + n
            for route, counts in dict(tally.seconds).items():
                total = seconds.get(route)
                if total is None:
                    total = seconds[route] = _no_seconds()
                for i, n in enumerate(list(counts)):
                    total[i] += n
        family = CounterMetricFamily("namkg_requests", "HTTP requests by route and status",
                                     labels=["route", "status"])
        for (route, status), n in requests.items():
            family.add_metric([route, str(status)], n)
        yield family
        family = HistogramMetricFamily("namkg_request_seconds", "time to answer, by route",
                                       labels=["route"])
        for route, counts in seconds.items():
            family.add_metric([route], list(zip(self.LE, accumulate(counts[:-1]), strict=True)),
                              sum_value=counts[-1])
        yield family


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
