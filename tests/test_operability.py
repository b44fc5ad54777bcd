"""Operability: one structured log line per request, Prometheus metrics, the rate limit."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from namkg import cli
from namkg.config import Config
from namkg.web.metrics import BUCKETS, Metrics
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Server


@pytest.fixture(scope="module")
def limited(built_store):
    server = Server(built_store, env={"NAMKG_RATE_LIMIT": "2"})
    yield server
    server.stop()


def test_rate_limit_answers_429_with_retry_after(limited):
    statuses = [requests.get(f"{limited.url}/sparql", timeout=10,
                             params={"query": "ASK {}"}).status_code for _ in range(12)]
    assert 429 in statuses and 200 in statuses
    refused = requests.get(f"{limited.url}/sparql", params={"query": "ASK {}"}, timeout=10)
    if refused.status_code == 429:
        assert int(refused.headers["Retry-After"]) >= 1
    assert "namkg_rate_limited_total" in requests.get(f"{limited.url}/metrics", timeout=10).text


def test_access_log_is_one_json_line_per_request_with_query_hash(built_store):
    server = Server(built_store)
    try:
        query = "SELECT * WHERE { ?s ?p ?o } LIMIT 1"
        assert requests.post(f"{server.url}/sparql", data={"query": query},
                             timeout=10).status_code == 200
        assert requests.get(f"{server.url}/sparql", params={"query": "SELEC"},
                            timeout=10).status_code == 400
        scrape = requests.get(f"{server.url}/metrics", timeout=10)
    finally:
        server.stop()
    lines = [json.loads(ln) for ln in server.log_text().splitlines()
             if ln.startswith("{")]
    sparql = [ln for ln in lines if ln["path"] == "/sparql"]
    assert [ln["status"] for ln in sparql] == [200, 400]
    assert all(len(ln["query"]) == 16 and ln["ms"] >= 0 for ln in sparql)
    assert sparql[0]["query"] != sparql[1]["query"]
    # The text format as prometheus_client's own handler labels it, read by its reference parser.
    assert scrape.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    assert {name: families[name].type for name in (
        "namkg_requests", "namkg_request_seconds", "namkg_refused", "namkg_executor_queries",
        "namkg_executor_workers")} == {
        "namkg_requests": "counter", "namkg_request_seconds": "histogram",
        "namkg_refused": "counter", "namkg_executor_queries": "counter",
        "namkg_executor_workers": "gauge"}
    samples = [s for family in families.values() for s in family.samples]
    assert not [s.name for s in samples if s.name.endswith("_created")]
    bounds = [s.labels["le"] for s in families["namkg_request_seconds"].samples
              if s.name.endswith("_bucket") and s.labels["route"] == "/sparql"]
    assert [float(b) for b in bounds] == [*map(float, BUCKETS), float("inf")]
    assert {s.name: s.value for s in families["namkg_refused"].samples} == {
        "namkg_refused_total": 1}
    counted = {(s.labels.get("route"), s.labels.get("status")): s.value for s in samples
               if s.name == "namkg_requests_total"}
    assert counted[("/sparql", "400")] == 1 and counted[("/sparql", "200")] >= 1
    assert any(s.name == "namkg_request_seconds_bucket" for s in samples)


def test_serve_help_states_the_defaults_in_force():
    """Regression: ``namkg serve --help`` said 16 HTTP threads while 32 were used."""
    text = " ".join(CliRunner().invoke(cli.main, ["serve", "--help"]).output.split())
    defaults = Config()
    for name in ("host", "port", "http_threads", "query_workers"):
        assert f"[NAMKG_{name.upper()}, {getattr(defaults, name)}]" in text
    assert f"[NAMKG_QUERY_TIMEOUT, {defaults.query_timeout:g}]" in text


def test_access_lines_reach_the_log_while_the_server_runs(built_store):
    """The access log is written in batches (namkg.web.logbatch): a line still comes out
    within a fraction of a second, not only when the server stops."""
    server = Server(built_store)
    try:
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        deadline = time.monotonic() + 5
        while '"path": "/healthz"' not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert '"path": "/healthz"' in server.log_text()
    finally:
        server.stop()


@pytest.mark.parametrize("name, raw", [("NAMKG_CLIENT_TIMEOUT", "0"), ("NAMKG_QUERY_TIMEOUT", "-1"),
                                       ("NAMKG_QUERY_WORKERS", "0"), ("NAMKG_QUERY_TIMEOUT", "inf"),
                                       ("NAMKG_MAX_BODY", "0"), ("NAMKG_RATE_LIMIT", "nan")])
def test_a_setting_that_cannot_work_is_refused_by_name(name, raw):
    """Regression: NAMKG_CLIENT_TIMEOUT=0 was taken (the body gate's timer then spun)."""
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        Config.from_env({name: raw})


def test_zero_still_turns_off_what_it_documents():
    cfg = Config.from_env({"NAMKG_RATE_LIMIT": "0", "NAMKG_RESPONSE_CACHE_MB": "0",
                           "NAMKG_WORKER_MEMORY_MB": "0"})
    assert (cfg.rate_limit, cfg.response_cache_mb, cfg.worker_memory_mb) == (0, 0, 0)


def test_serve_refuses_a_zero_deadline_before_starting():
    done = CliRunner().invoke(cli.main, ["serve", "--timeout", "0"])
    assert done.exit_code == 2 and "NAMKG_QUERY_TIMEOUT must be a finite number" in done.output


OBSERVED = st.tuples(st.sampled_from(["/sparql", "/id/<path:slug>", "unmatched"]),
                     st.sampled_from([200, 304, 400, 503]),
                     st.one_of(st.sampled_from(BUCKETS), st.floats(0, 30), st.just(0.0)))


def samples(text: str, names=("namkg_requests", "namkg_request_seconds")) -> list:
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                  for f in text_string_to_metric_families(text) if f.name in names
                  for s in f.samples)


@settings(max_examples=150, deadline=None)
@given(st.lists(OBSERVED, max_size=60), st.integers(1, 4))
def test_request_metrics_equal_prometheus_clients_own(observed, threads):
    """Our per-thread tallies, exposed, read as prometheus_client's Counter and Histogram
    read for the same requests (bucket edges included), whatever thread counted them."""
    reference = CollectorRegistry()
    counter = Counter("namkg_requests", "HTTP requests by route and status",
                      ["route", "status"], registry=reference)
    histogram = Histogram("namkg_request_seconds", "time to answer, by route", ["route"],
                          buckets=BUCKETS, registry=reference)
    ours = Metrics()
    for route, status, seconds in observed:
        counter.labels(route, str(status)).inc()
        histogram.labels(route).observe(seconds)

    def observe(part):
        for route, status, seconds in part:
            ours.observe(route, status, seconds)

    workers = [threading.Thread(target=observe, args=(observed[i::threads],))
               for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    expected = samples(generate_latest(reference).decode())
    got = samples(ours.render({}))
    assert [s[:2] for s in got] == [s[:2] for s in expected]
    assert [s[2] for s in got] == pytest.approx([s[2] for s in expected])
