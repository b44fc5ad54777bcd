"""The WSGI fast path for /sparql queries (namkg.web.edge.FastQueries) answers exactly as the Flask
route and hooks behind it: same status line, headers (in order), body, access-log line and
metrics, over a real store and real query workers."""

from __future__ import annotations

import gzip
import json
import logging
from urllib.parse import urlencode

import flask
import pytest
from namkg.config import Config
from namkg.web.app import create_app
from werkzeug.test import Client

LIMIT, MAX_BODY = 5, 5000
GRAPH = "https://w3id.org/nam-kg/graph/facts"
SELECT = "SELECT ?s ?p ?o WHERE { ?s ?p ?o } LIMIT 3"
MANY = "SELECT ?s ?p ?o WHERE { ?s ?p ?o } LIMIT 200"  # truncated at LIMIT
FORM = "application/x-www-form-urlencoded"
RUNAWAY = ("SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l . "
           "?m ?n1 ?o . ?q ?r ?t }")


def get(query: str | None = None, **params) -> dict:
    pairs = ([("query", query)] if query is not None else []) + list(params.items())
    return {"method": "GET", "query_string": urlencode(pairs)}


def form(body: bytes | str, **kw) -> dict:
    return {"method": "POST", "data": body, "content_type": FORM, **kw}


# name -> werkzeug test-client arguments; every one of these is a query request
QUERIES = {
    "form-json": form(urlencode({"query": SELECT}),
                      headers={"Accept": "application/sparql-results+json"}),
    "get-xml": {**get(SELECT), "headers": {"Accept": "application/sparql-results+xml"}},
    "get-csv-format-param": get(SELECT, format="csv"),
    "direct-tsv": {"method": "POST", "data": SELECT, "content_type": "application/sparql-query",
                   "headers": {"Accept": "text/tab-separated-values"}},
    "head": {**get(SELECT), "method": "HEAD"},
    "ask": get("ASK { ?s ?p ?o }"),
    "construct-turtle": {**get("CONSTRUCT WHERE { ?s ?p ?o } LIMIT 2"),
                         "headers": {"Accept": "text/turtle"}},
    "describe-jsonld": get("DESCRIBE <https://w3id.org/nam-kg/id/azerbaijan>", format="jsonld"),
    "truncated-gzip": {**get(MANY), "headers": {"Accept-Encoding": "gzip, deflate"}},
    "small-no-gzip": {**get("ASK {}"), "headers": {"Accept-Encoding": "gzip"}},
    "browser-accept": {**get(SELECT), "headers": {
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}},
    "unicode": get('SELECT ?x WHERE { BIND("أذربيجان" AS ?x) }'),
    "default-graph": get("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }",
                         **{"default-graph-uri": GRAPH}),
    "named-graph": form(urlencode([("query", "SELECT ?g WHERE { GRAPH ?g {} }"),
                                   ("named-graph-uri", GRAPH)])),
    "bodiless-post": {"method": "POST", "query_string": urlencode({"query": SELECT})},
    "syntax-error-curl": {**get("ASK?s?p?o"), "headers": {"User-Agent": "curl/8.5.0"}},
    "syntax-error-post": form(urlencode({"query": "SELECT * WHERE { ?s ?p }"})),
    "service-refused": get("SELECT * WHERE { SERVICE <http://127.0.0.1:9/> { ?s ?p ?o } }"),
    "not-acceptable": {**get(SELECT), "headers": {"Accept": "image/png"}},
    "construct-as-csv": {**get("CONSTRUCT WHERE { ?s ?p ?o }"), "headers": {"Accept": "text/csv"}},
    "unknown-format-long-gzip": {**get(SELECT, format="x" * 2000),
                                 "headers": {"Accept-Encoding": "gzip"}},
    "wrong-content-type": {"method": "POST", "data": SELECT, "content_type": "text/plain"},
    "latin1-charset": {"method": "POST", "data": SELECT,
                       "content_type": "application/sparql-query; charset=latin-1"},
    "body-too-large": {"method": "POST", "data": "#" * (MAX_BODY + 1) + "\nASK {}",
                       "content_type": "application/sparql-query"},
    "invalid-utf8": {"method": "POST", "data": b"ASK {} # \xff\xfe",
                     "content_type": "application/sparql-query"},
    "missing-query": form(b""),
    "repeated-query": form(urlencode([("query", "ASK {}"), ("query", "ASK {}")])),
    "query-in-url-and-body": {"method": "POST", "data": "ASK {}",
                              "query_string": urlencode({"query": "ASK {}"}),
                              "content_type": "application/sparql-query"},
    "bad-graph-iri": get(SELECT, **{"default-graph-uri": "not an iri"}),
    "deep-nesting": form(urlencode({"query": "SELECT * WHERE " + "{" * 100})),
    "absurd-accept": {**get("ASK {}"), "headers": {"Accept": ";;;,,,q=,=;"}},
    "odd-host": {**get("ASK {}"), "headers": {"Host": "evil example"}},  # invalid characters
    "deadline": get(RUNAWAY),
}

# requests on /sparql that are not queries: the fast path must leave them to Flask
TO_FLASK = {
    "service-description": {"method": "GET", "headers": {"Accept": "text/turtle"}},
    "ui-for-a-browser": {"method": "GET", "headers": {"Accept": "text/html"}},
    "preflight": {"method": "OPTIONS", "headers": {"Access-Control-Request-Method": "POST"}},
    "put": {"method": "PUT", "data": SELECT},
    "head-without-query": {"method": "HEAD"},
    "trailing-slash": {**get(SELECT), "path": "/sparql/"},
}


@pytest.fixture(scope="module")
def app(built_store):
    app = create_app(Config(store=built_store, query_workers=2, query_timeout=1.0,
                            result_limit=LIMIT, max_body=MAX_BODY))
    yield app
    app.extensions["namkg"]["executor"].close()


@pytest.fixture
def flask_calls(app):
    """Requests Flask dispatched (its request_started signal): the fast path sends none."""
    calls: list[str] = []

    def seen(sender, **_):
        calls.append(flask.request.path)

    flask.request_started.connect(seen, app)
    yield calls
    flask.request_started.disconnect(seen, app)


def exchange(wsgi, app, caplog, spec: dict) -> tuple:
    """(status, headers, body, access-log line less time and ms, metrics increments)."""
    spec = dict(spec)
    path = spec.pop("path", "/sparql")
    metrics = app.extensions["namkg"]["metrics"]
    before = dict(metrics.requests)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="namkg.access"):
        resp = Client(wsgi).open(path, **spec)
    body = resp.get_data()
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "namkg.access"]
    assert len(lines) == 1
    line = {k: v for k, v in lines[0].items() if k not in ("time", "ms")}
    grown = {k: n - before.get(k, 0) for k, n in metrics.requests.items() if n != before.get(k)}
    return resp.status, resp.headers.to_wsgi_list(), body, line, grown


@pytest.mark.parametrize("spec", QUERIES.values(), ids=QUERIES)
def test_fast_path_answers_as_flask_does(app, caplog, flask_calls, spec):
    fast = exchange(app, app, caplog, spec)
    assert flask_calls == []  # the fast path answered
    slow = exchange(app.wsgi_app.app, app, caplog, spec)  # Flask's own wsgi_app
    assert flask_calls == ["/sparql"]
    assert fast == slow
    status, headers, body, line, grown = fast
    assert grown == {("/sparql", int(status.split()[0])): 1}
    assert line["path"] == "/sparql" and line["bytes"] == int(dict(headers)["Content-Length"])


def test_the_table_covers_what_it_claims(app, caplog):
    """Guards against a vacuous table: the cases do reach gzip, truncation, errors, 503."""
    results = {name: exchange(app, app, caplog, spec)
               for name, spec in QUERIES.items() if name != "deadline"}

    def header(name, key):
        return dict(results[name][1]).get(key)

    gz = results["truncated-gzip"]
    assert header("truncated-gzip", "Content-Encoding") == "gzip"
    assert header("truncated-gzip", "Vary") == "Accept, Accept-Encoding"
    assert header("truncated-gzip", "X-Result-Limit") == str(LIMIT)
    assert len(json.loads(gzip.decompress(gz[2]))["results"]["bindings"]) == LIMIT
    assert header("unknown-format-long-gzip", "Vary") == "Accept-Encoding"
    assert header("small-no-gzip", "Content-Encoding") is None
    assert results["head"][2] == b"" and header("head", "Content-Length") != "0"
    assert results["form-json"][0] == "200 OK" and results["form-json"][3]["query"]
    assert "curl -g" in results["syntax-error-curl"][2].decode()
    assert results["missing-query"][3]["query"] is None  # nothing parsed: no hash
    statuses = {name: r[0].split()[0] for name, r in results.items()}
    assert statuses["body-too-large"] == "413" and statuses["not-acceptable"] == "406"
    assert statuses["wrong-content-type"] == "415" and statuses["service-refused"] == "400"


def test_deadline_answer_carries_retry_after(app, caplog):
    status, headers, *_ = exchange(app, app, caplog, QUERIES["deadline"])
    assert status.startswith("503") and int(dict(headers)["Retry-After"]) >= 1


@pytest.mark.parametrize("spec", TO_FLASK.values(), ids=TO_FLASK)
def test_other_requests_go_to_flask(app, caplog, flask_calls, spec):
    status, headers, *_ = exchange(app, app, caplog, spec)
    assert flask_calls, "the fast path took a request that is not a query"
    assert ("Access-Control-Allow-Origin", "*") in headers


def test_rate_limit_is_shared_and_answered_alike(built_store, caplog):
    app = create_app(Config(store=built_store, query_workers=1, rate_limit=0.001))  # burst 1
    try:
        spec = get("ASK {}")
        first = exchange(app, app, caplog, spec)
        assert first[0] == "200 OK"
        fast = exchange(app, app, caplog, spec)
        slow = exchange(app.wsgi_app.app, app, caplog, spec)
        assert fast == slow and fast[0].startswith("429")
        assert ("Retry-After", "1") in fast[1]
        assert app.extensions["namkg"]["metrics"].counters["namkg_rate_limited_total"] == 2
        # monitoring is never limited, on either path
        assert Client(app).get("/healthz").status_code == 200
    finally:
        app.extensions["namkg"]["executor"].close()
