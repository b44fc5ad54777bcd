"""Property tests (hypothesis) against a real server: whatever the query text, parameters,
headers, body or path, the answer is never a 5xx other than 503 (deadline or busy), never
a hang, a 200 is a well-formed document, and the server is healthy at the end.

Derandomized and without an example database, so a CI run is reproducible.
"""

from __future__ import annotations

import json
import re
import string
from urllib.parse import quote

import pyoxigraph as ox
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from namkg.config import Config

from .conftest import REPO
from .test_faults import health, served, settled, wait_for

WORKERS = Config().query_workers

DEADLINE = 3.0  # s: NAMKG_QUERY_TIMEOUT of the fuzzed server, as the live server's
TIMEOUT = DEADLINE + 5  # a request that takes longer counts as a hang
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no .hypothesis/ files
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
QUERIES = [p.read_text("utf-8") for p in sorted((REPO / "queries").glob("*.rq"))]
TOKENS = ["SELECT", "ASK", "CONSTRUCT", "DESCRIBE", "WHERE", "{", "}", "(", ")", "[", "]", ".",
          ";", ",", "?x", "$y", "*", "OPTIONAL", "UNION", "MINUS", "FILTER", "BIND", "AS",
          "VALUES", "GRAPH", "SERVICE", "LIMIT 1", "ORDER BY", "GROUP BY", "COUNT(*)", "<>",
          "<http://example.org/x>", "prov:x", '"lit"', "'''", '"""', "#", "\\u0041", "a", "^",
          "/", "|", "!", "&&", "NOT EXISTS", "FROM <urn:x>", "BASE <urn:b/>", "PREFIX p: <urn:>",
          "1e9", "-0.5", "@en", "^^xsd:int", "_:b", "()", "\x00", "\ufeff", "\u202e", "سلام"]
FORMATS = ["json", "xml", "csv", "tsv", "ttl", "nt", "nq", "trig", "rdf", "jsonld", "turtle",
           "text/csv", "application/sparql-results+json", "text/html", "*/*", "", " ", "n3"]
MEDIA = ["application/sparql-results+json", "application/sparql-results+xml", "text/csv",
         "text/tab-separated-values", "text/turtle", "application/n-triples",
         "application/ld+json", "application/rdf+xml", "text/html", "*/*", "text/*",
         "application/*", "image/png", "application/json", "application/xml"]
CONTENT_TYPES = ["application/sparql-query", "application/sparql-update",
                 "application/x-www-form-urlencoded", "text/plain", "multipart/form-data",
                 "application/json", "", "application/sparql-query; charset=utf-8",
                 "application/x-www-form-urlencoded; charset=UTF-8",
                 "application/sparql-query; charset=latin1"]
HEADER_TEXT = st.text("".join(c for c in string.printable if c not in "\r\n\x0b\x0c"),
                      max_size=300).map(str.strip)  # what requests lets through


@pytest.fixture(scope="module")
def url(built_store):
    env = {"NAMKG_QUERY_TIMEOUT": str(DEADLINE), "NAMKG_UPDATE_TOKEN": ""}
    with served(built_store, env) as srv:
        yield srv.url


class ServerError(AssertionError):
    """A 5xx other than 503: what no input may cause."""


def check(resp: requests.Response) -> None:
    """The properties every answer has."""
    if resp.status_code >= 500 and resp.status_code != 503:
        raise ServerError(resp.status_code, resp.request.body, resp.text[:300])
    if resp.status_code != 200 or resp.request.method == "HEAD":
        return
    media = resp.headers.get("Content-Type", "").split(";")[0]
    body = resp.content
    if media.endswith("json"):
        json.loads(body)
    elif media == "text/csv":  # pyoxigraph does not read CSV results (lossy)
        assert body.decode("utf-8").strip()
    elif media in ("text/tab-separated-values", "application/sparql-results+xml"):
        ox.parse_query_results(body, ox.QueryResultsFormat.from_media_type(media))
    elif media != "text/html":
        list(ox.parse(body, ox.RdfFormat.from_media_type(media)))


def ask(url: str, query: str, **kw) -> requests.Response:
    resp = requests.post(url + "/sparql", data={"query": query}, timeout=TIMEOUT, **kw)
    check(resp)
    return resp


# --------------------------------------------------------------------------- query text

@FUZZ
@given(text=st.text(max_size=300))
def test_random_text(url, text):
    resp = ask(url, text)
    if not text.strip():
        assert resp.status_code == 400


@FUZZ
@given(parts=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=25))
def test_random_token_soup(url, parts):
    ask(url, " ".join(parts))


@st.composite
def mutated(draw) -> str:
    """A real competency query with a few character and token insertions and deletions."""
    text = draw(st.sampled_from(QUERIES))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert-char", "delete-chars", "insert-token",
                                     "delete-token", "duplicate-token"]))
        if edit == "insert-char":
            text = text[:pos] + draw(st.characters()) + text[pos:]
        elif edit == "delete-chars":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)):]
        elif edit == "insert-token":
            text = text[:pos] + f" {draw(st.sampled_from(TOKENS))} " + text[pos:]
        else:
            spans = [m.span() for m in re.finditer(r"\S+", text)]
            if spans:
                a, b = draw(st.sampled_from(spans))
                text = text[:a] + (text[a:b] * 2 if edit == "duplicate-token" else "") + text[b:]
    return text


@FUZZ
@given(query=mutated())
def test_mutated_competency_queries(url, query):
    ask(url, query, headers={"Accept": "application/sparql-results+json, text/turtle"})


# --------------------------------------------------------------------------- parameters

IRIS = st.one_of(st.sampled_from(["https://w3id.org/nam-kg/graph/facts", "urn:x", "http://a/b",
                                  "", "not an iri", "<http://a/>", "http://a/\x00"]),
                 st.text(max_size=40))


@FUZZ
@given(params=st.lists(st.tuples(
    st.sampled_from(["query", "format", "default-graph-uri", "named-graph-uri", "output",
                     "timeout", "query ", "QUERY", "", "x"]),
    st.one_of(st.sampled_from(QUERIES[:3] + ["ASK {}", "SELECT * {?s ?p ?o} LIMIT 2"]),
              st.sampled_from(FORMATS), IRIS)), max_size=6),
    how=st.sampled_from(["get", "post", "head"]))
def test_random_parameters(url, params, how):
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    if how == "post":
        resp = requests.post(url + "/sparql", data=encoded.encode(), timeout=TIMEOUT,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        resp = requests.request(how.upper(), f"{url}/sparql?{encoded}", timeout=TIMEOUT)
    check(resp)
    queries = [v for k, v in params if k == "query"]
    if how != "head" and len(queries) > 1:
        assert resp.status_code == 400  # repeated query: ambiguous, refused


# --------------------------------------------------------------------------- headers, bodies

@FUZZ
@given(accept=st.one_of(HEADER_TEXT, st.lists(st.tuples(
    st.sampled_from(MEDIA), st.one_of(st.none(), st.sampled_from(
        ["0", "1", "0.5", "0.001", "1.0", "2", "-1", "abc", "", "0.0000", "1e3"])))).map(
    lambda rs: ", ".join(m if q is None else f"{m};q={q}" for m, q in rs))),
    query=st.sampled_from(["ASK {}", "SELECT * { ?s ?p ?o } LIMIT 3",
                           "CONSTRUCT WHERE { ?s ?p ?o } LIMIT 3", "DESCRIBE <urn:x>"]))
def test_random_accept_headers(url, accept, query):
    resp = ask(url, query, headers={"Accept": accept})
    assert resp.status_code in (200, 400, 406), (resp.status_code, resp.text[:300])


@FUZZ
@given(content_type=st.one_of(st.sampled_from(CONTENT_TYPES), HEADER_TEXT),
       body=st.one_of(st.binary(max_size=500), st.sampled_from(QUERIES).map(str.encode),
                      st.sampled_from(QUERIES).map(lambda q: b"query=" + quote(q).encode())),
       path=st.sampled_from(["/sparql", "/update"]))
def test_random_bodies(url, content_type, body, path):
    resp = requests.post(url + path, data=body, timeout=TIMEOUT,
                         headers={"Content-Type": content_type})
    check(resp)
    if path == "/update":  # this server is read-only, whatever is sent
        assert resp.status_code in (400, 401, 403, 413, 415), resp.status_code


# --------------------------------------------------------------------------- paths

SEGMENT = st.one_of(st.text(max_size=30).map(lambda s: quote(s, safe="")),
                    st.sampled_from(["..", ".", "%2e%2e", "%2f", "%00", "%c0%ae", "%5c", "~",
                                     "azerbaijan", "united-nations.ttl", "nam-kg.nq"]))


@FUZZ
@given(route=st.sampled_from(["/id/", "/ontology.", "/dumps/", "/static/yasgui/", "/"]),
       segments=st.lists(SEGMENT, min_size=1, max_size=4),
       accept=st.sampled_from(["text/html", "text/turtle", "*/*", "application/ld+json"]))
def test_random_paths(url, route, segments, accept):
    resp = requests.get(url + route + "/".join(segments), timeout=TIMEOUT, allow_redirects=False,
                        headers={"Accept": accept})
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert b"root:x:0:0" not in resp.content and b"def create_app" not in resp.content


# --------------------------------------------------------------------------- at the end

def test_server_is_healthy_after_the_fuzzing(url):
    stats = wait_for(lambda: settled(url, WORKERS)) or health(url)["executor"]
    assert health(url)["status"] == "ok" and stats["workers"] == WORKERS and stats["busy"] == 0
    assert stats["crashes"] == 0, "some input crashed a query worker"
    assert stats["queries"] > 300  # the fuzzing did reach the query workers
