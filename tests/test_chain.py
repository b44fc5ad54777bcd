"""The one middleware chain (namkg.web.chain) over the one route table (namkg.web.routes): every
route, plain or Flask, gets CORS, gzip, Content-Length, one access-log line and its metrics;
the rate limit spares only monitoring; cached routes are answered once per build (pages
included), with their validators; over a real store and real query workers."""

from __future__ import annotations

import gc
import gzip
import io
import json
import logging
import re
from urllib.parse import urlencode

import flask
import pytest
from namkg.config import Config
from namkg.web.app import create_app
from namkg.web.routes import ROUTES
from werkzeug.test import Client

# a path for each rule of the table (a test below checks that none is missing)
SAMPLES = {
    "/sparql": ["/sparql?" + urlencode({"query": "SELECT * WHERE { ?s ?p ?o } LIMIT 50"}),
                "/sparql"],
    "/update": ["/update"],
    "/": ["/"],
    "/id/<path:slug>": ["/id/azerbaijan"],
    "/ontology": ["/ontology"],
    "/ontology.<ext>": ["/ontology.ttl"],
    "/ontology/<version>": ["/ontology/0.1.0"],
    "/graph/<name>": ["/graph/facts"],
    "/build": ["/build"],
    "/build.<ext>": ["/build.ttl"],
    "/dataset": ["/dataset"],
    "/.well-known/void": ["/.well-known/void"],
    "/dumps/<name>": ["/dumps/nam-kg.nt"],
    "/robots.txt": ["/robots.txt"],
    "/sitemap.xml": ["/sitemap.xml"],
    "/static/yasgui/<path:filename>": ["/static/yasgui/namkg.css"],
    "/healthz": ["/healthz"],
    "/metrics": ["/metrics"],
}


@pytest.fixture(scope="module")
def app(built_store):
    app = create_app(Config(store=built_store, query_workers=2, query_timeout=5.0))
    yield app
    app.extensions["namkg"]["executor"].close()


def requests_counted(app) -> dict[tuple[str, str], float]:
    """namkg_requests_total by (route, status), read from the /metrics text."""
    text = app.extensions["namkg"]["metrics"].render({})
    pattern = r'^namkg_requests_total\{route="([^"]*)",status="(\d+)"\} (\S+)$'
    return {(m[1], m[2]): float(m[3]) for m in re.finditer(pattern, text, re.M)}


def exchange(app, caplog, path: str, **kw):
    before = requests_counted(app)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="namkg.access"):
        resp = Client(app).open(path, **kw)
    body = resp.get_data()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "namkg.access"]
    after = requests_counted(app)
    grown = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    return resp, body, lines, grown


def test_the_samples_cover_the_table():
    assert {r.rule for r in ROUTES} == set(SAMPLES)


@pytest.mark.parametrize("rule, path", [(r, p) for r, ps in SAMPLES.items() for p in ps])
def test_every_route_passes_the_chain_once(app, caplog, rule, path):
    resp, body, lines, grown = exchange(app, caplog, path,
                                        headers={"Accept-Encoding": "gzip"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Result-Count" in resp.headers["Access-Control-Expose-Headers"]
    assert len(lines) == 1 and lines[0]["path"] == path.split("?")[0]
    assert lines[0]["status"] == resp.status_code
    assert grown == {(rule, str(resp.status_code)): 1}
    assert int(resp.headers["Content-Length"]) == len(body)
    if resp.headers.get("Content-Encoding") == "gzip":
        assert "Accept-Encoding" in resp.headers["Vary"]
        gzip.decompress(body)


def test_a_query_request_leaves_no_reference_cycle(app):
    """Regression: the plain route's werkzeug request and its WSGI environ referred to each
    other, so every query's environ, body and headers waited for the cyclic collector, whose
    passes under load held the GIL for up to ~100 ms."""
    body = b"query=" + b"SELECT+%2A+WHERE+%7B+%3Fs+%3Fp+%3Fo+%7D+LIMIT+3"
    statuses = []
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # unreachable objects are kept in gc.garbage, not freed
    try:
        for i in range(5):
            environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/sparql", "QUERY_STRING": "",
                       "SERVER_NAME": "localhost", "SERVER_PORT": "80",
                       "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                       "CONTENT_TYPE": "application/x-www-form-urlencoded",
                       "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                       "HTTP_ACCEPT": "application/sparql-results+json", f"test.{i}": True}
            answer = b"".join(app(environ, lambda status, headers, exc=None:
                                  statuses.append(status)))
            assert statuses[-1] == "200 OK" and b'"bindings"' in answer
        del environ
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, dict) and "wsgi.input" in o]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


def test_large_answers_are_gzipped_on_both_kinds_of_route(app, caplog):
    for path in (SAMPLES["/sparql"][0], "/id/azerbaijan", "/ontology.ttl"):
        resp, body, *_ = exchange(app, caplog, path, headers={"Accept-Encoding": "gzip"})
        assert resp.status_code == 200 and resp.headers["Content-Encoding"] == "gzip", path
        assert len(gzip.decompress(body)) > len(body)


def test_a_dump_is_sent_as_its_file(app, caplog):
    """Files that answer Range requests are never re-encoded (their ETag names the bytes)."""
    resp, body, *_ = exchange(app, caplog, "/dumps/nam-kg.nt",
                              headers={"Accept-Encoding": "gzip", "Range": "bytes=0-99"})
    assert resp.status_code == 206 and len(body) == 100
    assert "Content-Encoding" not in resp.headers


def test_preflight_is_answered_for_any_route(app, caplog):
    for path in ("/sparql", "/id/azerbaijan", "/update"):
        resp, *_ = exchange(app, caplog, path, method="OPTIONS", headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type"})
        assert resp.status_code in (200, 204), path
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert resp.headers["Access-Control-Allow-Headers"] == "Content-Type"


@pytest.fixture
def flask_calls(app):
    """Requests Flask dispatched (its request_started signal)."""
    calls: list[str] = []

    def seen(sender, **_):
        calls.append(flask.request.path)

    flask.request_started.connect(seen, app)
    yield calls
    flask.request_started.disconnect(seen, app)


def test_queries_are_plain_and_the_rest_of_sparql_is_flask(app, caplog, flask_calls):
    exchange(app, caplog, "/sparql?" + urlencode({"query": "ASK { ?s ?p ?o }"}))
    exchange(app, caplog, "/sparql", method="POST", data="ASK {}",
             content_type="application/sparql-query")
    assert flask_calls == []
    resp, *_ = exchange(app, caplog, "/sparql", headers={"Accept": "text/turtle"})
    assert resp.status_code == 200 and resp.mimetype == "text/turtle"  # service description
    assert flask_calls == ["/sparql"]


def test_a_page_is_rendered_once_per_build(app, caplog):
    executor = app.extensions["namkg"]["executor"]
    path, accept = "/id/united-nations", {"Accept": "text/turtle"}
    first, body, *_ = exchange(app, caplog, path, headers=accept)
    queries = executor.stats()["queries"]
    again, again_body, *_ = exchange(app, caplog, path, headers=accept)
    assert executor.stats()["queries"] == queries  # no query ran
    assert again_body == body and again.headers["ETag"] == first.headers["ETag"]
    html, *_ = exchange(app, caplog, path, headers={"Accept": "text/html"})
    assert html.mimetype == "text/html" and executor.stats()["queries"] > queries
    # the kept page still answers conditional requests with 304 and its validators
    cond, cond_body, *_ = exchange(app, caplog, path, headers={
        **accept, "If-None-Match": first.headers["ETag"]})
    assert cond.status_code == 304 and cond_body == b""
    assert cond.headers["ETag"] == first.headers["ETag"] and "Last-Modified" in cond.headers


def test_a_kept_page_is_kept_per_host(app, caplog):
    """Pages name their own URL (foaf:primaryTopic of the document): a page asked under one
    host is not given to another."""
    a, body_a, *_ = exchange(app, caplog, "/id/bali", headers={"Accept": "text/turtle"},
                             base_url="http://a.example")
    b, body_b, *_ = exchange(app, caplog, "/id/bali", headers={"Accept": "text/turtle"},
                             base_url="http://b.example")
    assert b"http://a.example/id/bali" in body_a and b"http://a.example" not in body_b
    assert b"http://b.example/id/bali" in body_b


def test_rate_limit_applies_to_every_route_but_monitoring(built_store, caplog):
    app = create_app(Config(store=built_store, query_workers=1, rate_limit=0.001))  # burst 1
    try:
        for path in ("/sparql?query=ASK%7B%7D", "/id/azerbaijan"):
            Client(app).get("/robots.txt", environ_base={"REMOTE_ADDR": "10.0.0.1"})
            resp = Client(app).get(path, environ_base={"REMOTE_ADDR": "10.0.0.1"})
            assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
        text = app.extensions["namkg"]["metrics"].render({})
        assert re.search(r"^namkg_rate_limited_total \S+", text, re.M)
        for path in ("/healthz", "/metrics"):
            resp = Client(app).get(path, environ_base={"REMOTE_ADDR": "10.0.0.1"})
            assert resp.status_code == 200, path
    finally:
        app.extensions["namkg"]["executor"].close()
