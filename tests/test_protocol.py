"""SPARQL Protocol layer: request parsing, content negotiation, service description."""

from __future__ import annotations

import io
from urllib.parse import unquote_to_bytes, urlencode

import pytest
import rdflib
from hypothesis import given, settings
from hypothesis import strategies as st
from namkg.iris import GRAPH_NAMES, Iris
from namkg.web.protocol import (
    BODY,
    Negotiated,
    ProtocolError,
    best_graph_quality,
    declared_length,
    negotiate,
    parse_accept,
    parse_query_request,
    parse_update_request,
    preferred_quality,
    unquote_form,
)
from namkg.web.service_description import SD, service_description
from rdflib.namespace import RDF
from werkzeug.sansio.utils import get_content_length
from werkzeug.test import EnvironBuilder

JSON, XML = "application/sparql-results+json", "application/sparql-results+xml"
CSV, TSV = "text/csv", "text/tab-separated-values"
TTL, NT = "text/turtle", "application/n-triples"
NQ, TRIG = "application/n-quads", "application/trig"
RDFXML, JSONLD = "application/rdf+xml", "application/ld+json"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

# accept, format param, chosen for SELECT/ASK, chosen for CONSTRUCT/DESCRIBE
NEGOTIATION = [
    (None, None, JSON, TTL),
    ("", None, JSON, TTL),
    ("*/*", None, JSON, TTL),
    ("*", None, JSON, TTL),
    ("*;q=0.5", None, JSON, TTL),
    ("garbage", None, JSON, TTL),  # nothing valid: as if absent
    (";;;,,,q=x/y, */x", None, JSON, TTL),
    (JSON, None, JSON, None),
    (XML, None, XML, None),
    ("text/csv", None, CSV, None),
    ("text/tab-separated-values", None, TSV, None),
    ("application/json", None, JSON, JSONLD),
    ("application/xml", None, XML, RDFXML),
    ("text/xml", None, XML, RDFXML),
    ("text/plain", None, CSV, NT),  # pyoxigraph's reading of text/plain
    (TTL, None, None, TTL),
    ("application/x-turtle", None, None, TTL),
    ("text/n3", None, None, TTL),  # Turtle is N3
    (NT, None, None, NT),
    (NQ, None, None, NQ),
    (TRIG, None, None, TRIG),
    (RDFXML, None, None, RDFXML),
    (JSONLD, None, None, JSONLD),
    ('application/ld+json;profile="http://www.w3.org/ns/json-ld#streaming"', None, None, JSONLD),
    ("TEXT/Turtle", None, None, TTL),  # media types are case-insensitive
    # q-values
    (f"{JSON};q=0.5, {XML}", None, XML, None),
    (f"{JSON};q=0.5, {XML};q=0.6, {CSV};q=0.7", None, CSV, None),
    (f"{TTL};q=0.2, {RDFXML};q=0.3", None, None, RDFXML),
    (f"{JSON};q=0, */*", None, XML, TTL),  # q=0 means "not this one"
    (f"{TTL};q=0, */*;q=0.5", None, JSON, NT),
    (f"{JSON};q=0.5;charset=utf-8, {XML};q=0.4", None, JSON, None),
    (f"{JSON};q=1.0001, {XML};q=0.1", None, XML, None),  # invalid q: range ignored
    # wildcards and specificity
    ("text/*", None, CSV, TTL),
    ("application/*", None, JSON, NT),
    (f"text/*;q=0.1, {TSV}", None, TSV, TTL),
    (f"*/*;q=0.1, text/*;q=0.5, {TTL};q=0.3", None, CSV, TTL),
    (f"text/*;q=0.9, {RDFXML}", None, CSV, RDFXML),
    (f"{JSON}, {TTL}", None, JSON, TTL),  # one header serving both query forms
    # ties go to the server's preference, but at equal q a named type beats a wildcard
    (f"{TSV}, {CSV}", None, CSV, None),
    (f"{JSONLD}, {NT}", None, None, NT),
    (f"{RDFXML}, */*", None, JSON, RDFXML),
    (f"text/*, {TSV}", None, TSV, TTL),
    # parameters: our formats are named through them (we write UTF-8 whatever the charset)
    (f"{TTL};charset=utf-8", None, None, TTL),
    ("text/plain;charset=utf-8;q=0.5, */*;q=0.1", None, CSV, NT),
    ("a/b," * 2000 + CSV, None, CSV, None),  # a long header of others: the one that counts
    # what real clients send
    (BROWSER, None, XML, RDFXML),
    (f"{XML}, {RDFXML}", None, XML, RDFXML),  # rdflib SPARQLStore
    (f"{JSON},application/json,text/javascript,application/javascript", None, JSON, JSONLD),
    ("application/turtle,text/turtle", None, None, TTL),  # SPARQLWrapper TURTLE
    # not acceptable at all: the caller answers 406
    ("image/png", None, None, None),
    (f"{JSON};q=0", None, None, None),
    # format= wins over Accept
    ("image/png", "json", JSON, JSONLD),
    (TTL, "xml", XML, RDFXML),
    (None, "csv", CSV, None),
    (None, "tsv", TSV, None),
    (None, "srj", JSON, None),
    (JSON, "ttl", None, TTL),
    (None, "turtle", None, TTL),
    (None, "n3", None, TTL),
    (None, "nt", None, NT),
    (None, "ntriples", None, NT),
    (None, "nq", None, NQ),
    (None, "nquads", None, NQ),
    (None, "trig", None, TRIG),
    (None, "rdf", None, RDFXML),
    (None, "rdfxml", None, RDFXML),
    (None, "rdf+xml", None, RDFXML),
    (None, "jsonld", None, JSONLD),
    (None, "json-ld", None, JSONLD),
    (None, "JSON", JSON, JSONLD),
    (None, TSV, TSV, None),
    (None, "application/ld+json", None, JSONLD),
    (None, "text/csv; charset=utf-8", CSV, None),
    (XML, "  ", XML, None),  # blank format= is ignored
]


@pytest.mark.parametrize("accept, fmt, solutions, graph", NEGOTIATION)
def test_negotiate(accept, fmt, solutions, graph):
    assert negotiate(accept, fmt) == Negotiated(solutions, graph)


@pytest.mark.parametrize("fmt", ["yaml", "text/html", "image/png", "bogus/x"])
def test_unknown_format_param_is_400(fmt):
    with pytest.raises(ProtocolError) as err:
        negotiate(None, fmt)
    assert err.value.status == 400 and repr(fmt) in err.value.message


def test_parse_accept_skips_malformed_and_reads_q():
    ranges = parse_accept('a/b;q=0.3;ext=1, c/*, */x, x;q=1, d/e;p="q=0,z";q=0.25, f/g;q=abc')
    # most specific first; a parameter after q belongs to the range (RFC 9110 has no accept-ext)
    assert list(ranges) == [("a/b; ext=1", 0.3), ('d/e; p="q=0,z"', 0.25), ("c/*", 1)]
    assert not parse_accept("garbage, */x, x;q=1") and not parse_accept(None)


# RFC 9110 §12.5.1's example: the most specific range decides, parameters included.
RFC_ACCEPT = ("text/*;q=0.3, text/plain;q=0.7, text/plain;format=flowed, "
              "text/plain;format=fixed;q=0.4, */*;q=0.5")


@pytest.mark.parametrize(
    "accept, media, q",
    [
        (RFC_ACCEPT, "text/plain;format=flowed", 1.0),
        (RFC_ACCEPT, "text/plain", 0.7),
        (RFC_ACCEPT, "text/html", 0.3),
        (RFC_ACCEPT, "image/jpeg", 0.5),
        (RFC_ACCEPT, "text/plain;format=fixed", 0.4),
        ("text/html;level=1;q=0, */*;q=0.5", "text/html", 0.5),  # not a range for text/html
        ("text/html;q=0, */*", "text/html", 0.0),  # q=0: not acceptable
        ("TEXT/HTML;q=0.2", "text/html", 0.2),
        ("*", "text/html", 1.0),
        (None, "text/html", 1.0),
    ],
)
def test_preferred_quality(accept, media, q):
    assert preferred_quality(accept, media) == q


@pytest.mark.parametrize(
    "accept, html_wins",
    [
        (BROWSER, True),
        ("text/html", True),
        ("*/*", False),  # tie: the server prefers RDF
        (None, False),
        (f"text/html;q=0.5, {TTL}", False),
        (f"text/html, {TTL}", False),
        (f"text/html;level=1, {TTL};q=0.5", False),
    ],
)
def test_html_preference(accept, html_wins):
    assert (preferred_quality(accept, "text/html") > best_graph_quality(accept)) is html_wins


# ---------------------------------------------------------------- request parsing

Q = "SELECT * WHERE { ?s ?p ?o } LIMIT 1"
G1, G2 = "http://example.org/g1", "http://example.org/g2"
FORM_T = "application/x-www-form-urlencoded"


def make(method="GET", url="/sparql", *, query_string=None, data=None, content_type=None):
    builder = EnvironBuilder(path=url, method=method, query_string=query_string,
                             data=data, content_type=content_type)
    return builder.get_environ()


def qs(*pairs):
    return urlencode(list(pairs))


# method / body type / parameters -> the parsed request
PARSE_OK = [
    (make(query_string=qs(("query", Q))), Q, [], []),
    (make("HEAD", query_string=qs(("query", Q))), Q, [], []),
    (make(query_string=qs(("query", Q), ("default-graph-uri", G1), ("default-graph-uri", G2),
                          ("named-graph-uri", G2))), Q, [G1, G2], [G2]),
    (make("POST", data=qs(("query", Q), ("named-graph-uri", G1)), content_type=FORM_T),
     Q, [], [G1]),
    # form POST: dataset parameters from the form and from the URL
    (make("POST", query_string=qs(("default-graph-uri", G1)),
          data=qs(("query", Q), ("default-graph-uri", G2)), content_type=FORM_T), Q, [G1, G2], []),
    (make("POST", data=Q.encode(), content_type="application/sparql-query"), Q, [], []),
    (make("POST", data=Q.encode(), content_type="application/sparql-query; charset=UTF-8"),
     Q, [], []),
    (make("POST", query_string=qs(("default-graph-uri", G1), ("named-graph-uri", G2)),
          data=Q.encode(), content_type="application/sparql-query"), Q, [G1], [G2]),
    # non-ASCII text, percent-encoded and raw
    (make(query_string=qs(("query", 'ASK { ?s ?p "أذربيجان" }'))), 'ASK { ?s ?p "أذربيجان" }',
     [], []),
    (make("POST", data='ASK { ?s ?p "باكو" }'.encode(), content_type="application/sparql-query"),
     'ASK { ?s ?p "باكو" }', [], []),
    # a bodiless POST with the query in the URL
    (make("POST", query_string=qs(("query", Q))), Q, [], []),
]


def read_ahead(environ, max_body):
    """``environ`` as the body gate (web/gate.py) hands it on: a body of a declared length
    within ``max_body`` read whole, beside the stream."""
    environ = rewound(environ)
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit() and 0 < int(length) <= max_body:
        body = environ["wsgi.input"].read(int(length))
        environ[BODY], environ["wsgi.input"] = body, io.BytesIO(body)
    return environ


def rewound(environ):
    """A copy of ``environ`` whose body can be read again (the cases are made once)."""
    environ["wsgi.input"].seek(0)
    return dict(environ)


AHEAD = pytest.mark.parametrize("ahead", [False, True], ids=["streamed", "read-ahead"])


@AHEAD
@pytest.mark.parametrize("request_, text, defaults, named", PARSE_OK)
def test_parse_query_request(request_, text, defaults, named, ahead):
    environ = read_ahead(request_, 10_000) if ahead else rewound(request_)
    parsed = parse_query_request(environ, max_body=10_000)
    assert (parsed.text, parsed.default_graphs, parsed.named_graphs) == (text, defaults, named)


def test_format_param_is_carried():
    # SPARQLWrapper repeats format= (short name, then media type); the first one counts.
    r = make(query_string=qs(("query", Q), ("format", "tsv"), ("format", TSV), ("output", "x")))
    assert parse_query_request(r, max_body=10_000).format == "tsv"
    r = make("POST", data=qs(("query", Q), ("format", ""), ("format", "ttl")), content_type=FORM_T)
    assert parse_query_request(r, max_body=10_000).format == "ttl"


PARSE_ERRORS = [
    (make(), 400, "Missing 'query'"),
    (make(query_string=qs(("query", ""))), 400, "Empty 'query'"),
    (make(query_string=qs(("query", "ASK{}"), ("query", "ASK{}"))), 400, "More than one 'query'"),
    (make("POST", data="", content_type=FORM_T), 400, "Missing 'query'"),
    (make("POST", query_string=qs(("query", Q)), data=qs(("query", Q)), content_type=FORM_T),
     400, "More than one"),
    (make("POST", query_string=qs(("query", Q)), data=Q, content_type="application/sparql-query"),
     400, "both in the URL and as the body"),
    (make("POST", data=b"  ", content_type="application/sparql-query"), 400, "Empty query"),
    (make("POST", data=Q, content_type="text/plain"), 415, "text/plain"),
    (make("POST", data=Q, content_type="application/json"), 415, "Unsupported Content-Type"),
    (make("POST", data=Q), 415, "(none)"),
    (make("POST", data=Q.encode("utf-16"), content_type="application/sparql-query;charset=utf-16"),
     415, "charset"),
    (make("POST", data=b'ASK { ?s ?p "\xff" }', content_type="application/sparql-query"),
     400, "not valid UTF-8"),
    (make(query_string="query=ASK%7B%FF%7D"), 400, "not valid UTF-8"),
    (make("POST", data=b"query=ASK%7B%C3%7D", content_type=FORM_T), 400, "not valid UTF-8"),
    (make("POST", data="x" * 101, content_type="application/sparql-query"), 413, "100 bytes"),
    (make("POST", data=qs(("query", "x" * 100)), content_type=FORM_T), 413, "larger"),
    (make(query_string=qs(("query", "x" * 200))), 414, "Query string"),
    (make(query_string=qs(("query", Q), ("default-graph-uri", "not an iri"))), 400, "absolute IRI"),
]


@AHEAD
@pytest.mark.parametrize("request_, status, message", PARSE_ERRORS)
def test_parse_query_request_errors(request_, status, message, ahead):
    environ = read_ahead(request_, 100) if ahead else rewound(request_)
    with pytest.raises(ProtocolError) as err:
        parse_query_request(environ, max_body=100)
    assert err.value.status == status and message in err.value.message


@AHEAD
def test_body_shorter_than_declared_is_refused_alike(ahead):
    environ = make("POST", data=qs(("query", Q)), content_type=FORM_T)
    environ["CONTENT_LENGTH"] = str(int(environ["CONTENT_LENGTH"]) + 5)  # the client stopped
    environ = read_ahead(environ, 10_000) if ahead else environ
    with pytest.raises(ProtocolError) as err:
        parse_query_request(environ, max_body=10_000)
    assert err.value.status == 400 and err.value.message.startswith("Unreadable request body")


def test_body_larger_than_declared_length_is_bounded():
    """A body without Content-Length (chunked) is cut at max_body + 1 bytes, then refused."""
    environ = EnvironBuilder(path="/sparql", method="POST",
                             content_type="application/sparql-query").get_environ()
    stream = io.BytesIO(b"x" * 10_000)
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"wsgi.input": stream, "wsgi.input_terminated": True})
    with pytest.raises(ProtocolError) as err:
        parse_query_request(environ, max_body=100)
    assert err.value.status == 413
    assert stream.tell() <= 101


UPDATE = "INSERT DATA { <http://example.org/s> <http://example.org/p> 1 }"


@pytest.mark.parametrize(
    "request_",
    [
        make("POST", data=qs(("update", UPDATE)), content_type=FORM_T),
        make("POST", data=UPDATE, content_type="application/sparql-update"),
        make("POST", data=UPDATE, content_type="application/sparql-update; charset=UTF-8"),
    ],
)
def test_parse_update_request(request_):
    assert parse_update_request(request_, max_body=1000).text == UPDATE


@pytest.mark.parametrize(
    "request_, status, message",
    [
        (make(query_string=qs(("update", UPDATE))), 405, "POST"),
        (make("POST", data=qs(("query", UPDATE)), content_type=FORM_T), 400, "Missing 'update'"),
        (make("POST", data=UPDATE, content_type="application/sparql-query"), 415, "sparql-update"),
        (make("POST", query_string=qs(("using-graph-uri", G1)), data=UPDATE,
              content_type="application/sparql-update"), 400, "not supported"),
        (make("POST", data=qs(("update", UPDATE), ("using-named-graph-uri", G1)),
              content_type=FORM_T), 400, "not supported"),
        (make("POST", data=b"INSERT DATA {} \xc0", content_type="application/sparql-update"),
         400, "UTF-8"),
    ],
)
def test_parse_update_request_errors(request_, status, message):
    with pytest.raises(ProtocolError) as err:
        parse_update_request(request_, max_body=1000)
    assert err.value.status == status and message in err.value.message


# ---------------------------------------------------------------- service description

SDNS = rdflib.Namespace(SD)
FORMATS = rdflib.Namespace("http://www.w3.org/ns/formats/")


@pytest.mark.parametrize(
    "media, rdflib_format",
    [(TTL, "turtle"), (RDFXML, "xml"), (JSONLD, "json-ld"), (NT, "nt"), (TRIG, "trig"),
     (NQ, "nquads")],
)
def test_service_description_parses_back(media, rdflib_format):
    iris = Iris("http://localhost:8000/")
    data = service_description("http://localhost:8000/sparql", iris, GRAPH_NAMES, media=media,
                               timeout=5.0, result_limit=100)
    ds = rdflib.Dataset()
    ds.parse(data=data, format=rdflib_format)
    g = rdflib.Graph()
    for s, p, o, _ in ds.quads():  # flatten: all of it is in one graph anyway
        g.add((s, p, o))
    service = g.value(predicate=SDNS.endpoint, object=rdflib.URIRef("http://localhost:8000/sparql"))
    assert (service, RDF.type, SDNS.Service) in g
    assert set(g.objects(service, SDNS.supportedLanguage)) == {SDNS.SPARQL11Query}
    assert set(g.objects(service, SDNS.feature)) == {SDNS.UnionDefaultGraph}
    assert set(g.objects(service, SDNS.resultFormat)) == {
        FORMATS[n] for n in ("SPARQL_Results_JSON", "SPARQL_Results_XML", "SPARQL_Results_CSV",
                             "SPARQL_Results_TSV", "Turtle", "N-Triples", "N-Quads", "TriG",
                             "RDF_XML", "JSON-LD")
    }
    dataset = g.value(service, SDNS.defaultDataset)
    assert (dataset, RDF.type, SDNS.Dataset) in g
    assert (g.value(dataset, SDNS.defaultGraph), RDF.type, SDNS.Graph) in g
    names = {g.value(ng, SDNS.name) for ng in g.objects(dataset, SDNS.namedGraph)}
    assert names == {rdflib.URIRef(iris.graph(n)) for n in GRAPH_NAMES}
    assert g.value(service, rdflib.URIRef(iris.vocab + "queryTimeout")).toPython() == 5
    assert g.value(service, rdflib.URIRef(iris.vocab + "resultLimit")).toPython() == 100


def test_service_description_update_and_federation():
    data = service_description("http://h/sparql", Iris(), ["facts"], media=NT,
                               update_url="http://h/update", federated=True)
    g = rdflib.Graph().parse(data=data, format="nt")
    query = g.value(predicate=SDNS.endpoint, object=rdflib.URIRef("http://h/sparql"))
    update = g.value(predicate=SDNS.endpoint, object=rdflib.URIRef("http://h/update"))
    assert set(g.objects(query, SDNS.supportedLanguage)) == {SDNS.SPARQL11Query}
    assert set(g.objects(update, SDNS.supportedLanguage)) == {SDNS.SPARQL11Update}
    assert SDNS.BasicFederatedQuery in set(g.objects(query, SDNS.feature))
    without = rdflib.Graph().parse(
        data=service_description("http://h/sparql", Iris(), ["facts"], media=NT), format="nt")
    assert (None, SDNS.supportedLanguage, SDNS.SPARQL11Update) not in without


# Pieces that make escapes valid, invalid, half, doubled, or look like the backslash escapes
# the fast path goes through (its own reference is urllib's unquote_to_bytes).
_PIECES = st.sampled_from([b"%", b"%%", b"%4", b"%41", b"%e2%80%8f", b"%zz", b"%0A", b"%Fg",
                           b"\\", b"\\x41", b"\\n", b"x", b"+", b" ", b"\n", b"\xff", b"a"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES | st.binary(max_size=4), max_size=12).map(b"".join))
def test_form_unquoting_equals_urllibs(raw):
    assert unquote_form(raw) == unquote_to_bytes(raw.replace(b"+", b" "))


_LENGTHS = st.sampled_from(["0", "12", "007", " 12", "12 ", "-1", "+5", "1_0", "١٢", "²", "", "x"])


@settings(max_examples=1000, deadline=None)
@given(st.none() | _LENGTHS | st.text(st.characters(codec="utf-8"), max_size=6),
       st.none() | st.sampled_from(["chunked", "gzip, chunked", "identity", ""]))
def test_declared_length_equals_werkzeugs(declared, coding):
    environ = {k: v for k, v in (("CONTENT_LENGTH", declared),
                                 ("HTTP_TRANSFER_ENCODING", coding)) if v is not None}
    assert declared_length(environ) == get_content_length(declared, coding)
