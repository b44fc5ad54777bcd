"""The /sparql and /update routes over a real Executor, a real HTTP server and real clients."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pyoxigraph as ox
import pytest
import rdflib
import requests
from namkg.config import Config
from namkg.iris import Iris
from namkg.query.executor import Executor
from namkg.web.app import make_app as mount_owners
from namkg.web.endpoint import SparqlViews
from namkg.web.service_description import SD
from rdflib.plugins.stores.sparqlstore import SPARQLStore
from SPARQLWrapper import CSV, JSON, JSONLD, POST, POSTDIRECTLY, TURTLE, XML, SPARQLWrapper

from .conftest import serve

IRIS = Iris()
EX = "http://example.org/"
LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
N_ENTITIES = 40
TOKEN = "s3cret-token"
TIMEOUT = 1.0
LIMIT = 50
FACTS, ONTOLOGY, LINKS = (IRIS.graph(n) for n in ("facts", "ontology", "links"))


def build_store(path) -> None:
    store = ox.Store(str(path))
    facts, onto, links = (ox.NamedNode(g) for g in (FACTS, ONTOLOGY, LINKS))
    quads = [
        ox.Quad(ox.NamedNode(IRIS.vocab + "Country"), ox.NamedNode(LABEL),
                ox.Literal("Country", language="en"), onto),
        ox.Quad(ox.NamedNode(IRIS.entity("azerbaijan")), ox.NamedNode(LABEL),
                ox.Literal("أذربيجان", language="ar"), facts),
        ox.Quad(ox.NamedNode(IRIS.entity("azerbaijan")),
                ox.NamedNode("http://www.w3.org/2002/07/owl#sameAs"),
                ox.NamedNode("http://www.wikidata.org/entity/Q227"), links),
    ]
    for i in range(N_ENTITIES):
        e = ox.NamedNode(IRIS.entity(f"e{i}"))
        quads.append(ox.Quad(e, ox.NamedNode(EX + "rank"), ox.Literal(str(i), datatype=ox.NamedNode(
            "http://www.w3.org/2001/XMLSchema#integer")), facts))
        quads.append(ox.Quad(e, ox.NamedNode(LABEL), ox.Literal(f"Entity {i}"), facts))
    store.extend(quads)
    store.flush()
    del store


N_TRIPLES = 3 + 2 * N_ENTITIES


def make_app(executor, config, *, update_executor=None, ui=False):
    """The SPARQL views alone, mounted as the server mounts them (route table and chain)."""
    app = mount_owners({"sparql": SparqlViews(executor, config, IRIS,
                                              update_executor=update_executor)}, config)
    if ui:
        app.add_url_rule("/", "ui", lambda: ("<html>YASGUI</html>", 200,
                                             {"Content-Type": "text/html; charset=utf-8"}))
    return app


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    build_store(root / "read")
    build_store(root / "write")
    return root


@pytest.fixture(scope="module")
def executors(stores):
    read = Executor(stores / "read", workers=2, timeout=TIMEOUT, result_limit=LIMIT)
    write = Executor(stores / "write", workers=1, timeout=TIMEOUT, result_limit=LIMIT,
                     writable=True)
    yield read, write
    read.close()
    write.close()


@pytest.fixture(scope="module")
def config(stores):
    return Config(store=stores / "read", query_timeout=TIMEOUT, result_limit=LIMIT,
                  max_body=10_000, update_token=TOKEN)


@pytest.fixture(scope="module")
def url(executors, config):
    read, write = executors
    with serve(make_app(read, config, update_executor=write)) as base:
        yield base


@pytest.fixture(scope="module")
def sparql(url):
    return url + "/sparql"


COUNT_ALL = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"


def count(response) -> int:
    assert response.status_code == 200, response.text
    return int(response.json()["results"]["bindings"][0]["n"]["value"])


# ---------------------------------------------------------------- query forms and formats

SELECT = f"SELECT ?label WHERE {{ <{IRIS.entity('azerbaijan')}> <{LABEL}> ?label }}"


@pytest.mark.parametrize(
    "accept, rdflib_format, content_type",
    [
        ("application/sparql-results+json", "json", "application/sparql-results+json"),
        ("application/sparql-results+xml", "xml",
         "application/sparql-results+xml; charset=utf-8"),
        ("text/csv", "csv", "text/csv; charset=utf-8"),
        ("text/tab-separated-values", "tsv", "text/tab-separated-values; charset=utf-8"),
        (None, "json", "application/sparql-results+json"),
    ],
)
@pytest.mark.parametrize("how", ["get", "form", "direct"])
def test_select_formats(sparql, how, accept, rdflib_format, content_type):
    headers = {"Accept": accept} if accept else {}
    if how == "get":
        r = requests.get(sparql, params={"query": SELECT}, headers=headers)
    elif how == "form":
        r = requests.post(sparql, data={"query": SELECT}, headers=headers)
    else:
        r = requests.post(sparql, data=SELECT.encode(),
                          headers={**headers, "Content-Type": "application/sparql-query"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == content_type
    assert r.headers["X-Result-Count"] == "1"
    assert "X-Result-Truncated" not in r.headers
    rows = list(rdflib.query.Result.parse(io.BytesIO(r.content), format=rdflib_format))
    assert [str(row[0]) for row in rows] == ["أذربيجان"]


@pytest.mark.parametrize("accept, rdflib_format", [
    ("application/sparql-results+json", "json"), ("application/sparql-results+xml", "xml")])
@pytest.mark.parametrize("query, expected", [
    (f"ASK {{ ?s <{LABEL}> 'Entity 3' }}", True), ("ASK { ?s ?p 'nothing' }", False)])
def test_ask(sparql, accept, rdflib_format, query, expected):
    r = requests.get(sparql, params={"query": query}, headers={"Accept": accept})
    assert r.status_code == 200, r.text
    assert rdflib.query.Result.parse(io.BytesIO(r.content), format=rdflib_format).askAnswer \
        is expected


CONSTRUCT = f"CONSTRUCT {{ ?s <{LABEL}> ?o }} WHERE {{ ?s <{LABEL}> ?o FILTER(lang(?o) = 'ar') }}"
DESCRIBE = f"DESCRIBE <{IRIS.entity('e7')}>"


@pytest.mark.parametrize(
    "accept, fmt, rdflib_format",
    [
        ("text/turtle", None, "turtle"),
        ("application/n-triples", None, "nt"),
        ("application/n-quads", None, "nquads"),
        ("application/trig", None, "trig"),
        ("application/rdf+xml", None, "xml"),
        ("application/ld+json", None, "json-ld"),
        (None, None, "turtle"),
        ("image/png", "nt", "nt"),  # format= wins over Accept
        (None, "jsonld", "json-ld"),
    ],
)
@pytest.mark.parametrize("query, subject, triples", [
    (CONSTRUCT, IRIS.entity("azerbaijan"), 1), (DESCRIBE, IRIS.entity("e7"), 2)])
def test_graph_formats(sparql, accept, fmt, rdflib_format, query, subject, triples):
    params = {"query": query, **({"format": fmt} if fmt else {})}
    r = requests.get(sparql, params=params, headers={"Accept": accept} if accept else {})
    assert r.status_code == 200, r.text
    ds = rdflib.Dataset()
    ds.parse(data=r.content, format=rdflib_format)
    found = {(s, p, o) for s, p, o, _ in ds.quads()}
    assert len(found) == triples
    assert {s for s, _, _ in found} == {rdflib.URIRef(subject)}
    assert r.headers["X-Result-Count"] == str(triples)


def test_head_is_get_without_body(sparql):
    get = requests.get(sparql, params={"query": SELECT})
    head = requests.head(sparql, params={"query": SELECT})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert head.headers["X-Result-Count"] == "1"


def test_truncated_result_is_flagged(sparql):
    r = requests.get(sparql, params={"query": "SELECT * WHERE { ?s ?p ?o }"},
                     headers={"Accept": "application/sparql-results+json"})
    assert r.status_code == 200
    assert r.headers["X-Result-Truncated"] == "true"
    assert r.headers["X-Result-Limit"] == str(LIMIT)
    assert len(r.json()["results"]["bindings"]) == LIMIT == int(r.headers["X-Result-Count"])


def test_relative_iris_resolve_against_the_base(sparql):
    r = requests.get(sparql, params={"query": "ASK { <id/e1> ?p ?o }"},
                     headers={"Accept": "application/sparql-results+json"})
    assert r.json()["boolean"] is True


# ---------------------------------------------------------------- dataset parameters


def test_default_graph_is_union_of_named_graphs(sparql):
    assert count(requests.get(sparql, params={"query": COUNT_ALL})) == N_TRIPLES


@pytest.mark.parametrize(
    "params, expected",
    [
        ([("default-graph-uri", ONTOLOGY)], 1),
        ([("default-graph-uri", ONTOLOGY), ("default-graph-uri", LINKS)], 2),
        ([("default-graph-uri", FACTS)], 1 + 2 * N_ENTITIES),
        ([("named-graph-uri", LINKS)], 0),  # a dataset was given: its default graph is empty
        ([("default-graph-uri", "http://example.org/no-such-graph")], 0),
    ],
)
@pytest.mark.parametrize("how", ["get", "direct"])
def test_default_graph_uri(sparql, params, expected, how):
    if how == "get":
        r = requests.get(sparql, params=[("query", COUNT_ALL), *params])
    else:
        r = requests.post(sparql, params=params, data=COUNT_ALL,
                          headers={"Content-Type": "application/sparql-query"})
    assert count(r) == expected


def test_named_graph_uri(sparql):
    query = "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?g"
    every = requests.get(sparql, params={"query": query}).json()["results"]["bindings"]
    assert {b["g"]["value"] for b in every} == {FACTS, ONTOLOGY, LINKS}
    r = requests.post(sparql, data=[("query", query), ("named-graph-uri", LINKS),
                                    ("named-graph-uri", ONTOLOGY)])
    assert [b["g"]["value"] for b in r.json()["results"]["bindings"]] == sorted([LINKS, ONTOLOGY])


# ---------------------------------------------------------------- errors


def assert_plain_error(r, status, *fragments):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    for fragment in fragments:
        assert fragment in r.text


def test_syntax_error_is_400_with_parser_message(sparql):
    r = requests.get(sparql, params={"query": "SELECT * WHERE { ?s ?p }"})
    assert_plain_error(r, 400)
    assert len(r.text.strip()) > 10  # the parser says something about the error


@pytest.mark.parametrize("query, accept", [
    (SELECT, "text/turtle"),  # negotiable, but not for this query form
    (CONSTRUCT, "text/csv"),
    (SELECT, "image/png"),  # nothing we serve at all
])
def test_not_acceptable_is_406(sparql, query, accept):
    assert_plain_error(requests.get(sparql, params={"query": query}, headers={"Accept": accept}),
                       406)


def test_unknown_format_param_is_400(sparql):
    r = requests.get(sparql, params={"query": SELECT, "format": "yaml"})
    assert_plain_error(r, 400, "yaml")


def test_unsupported_media_type_is_415(sparql):
    r = requests.post(sparql, data=SELECT, headers={"Content-Type": "text/plain"})
    assert_plain_error(r, 415, "application/sparql-query")


def test_too_large_body_is_413(sparql, config):
    padding = "#" + "x" * config.max_body + "\n"
    r = requests.post(sparql, data=(padding + SELECT).encode(),
                      headers={"Content-Type": "application/sparql-query"})
    assert_plain_error(r, 413)


def test_invalid_utf8_is_400(sparql):
    r = requests.post(sparql, data=b'ASK { ?s ?p "\xff\xfe" }',
                      headers={"Content-Type": "application/sparql-query"})
    assert_plain_error(r, 400, "UTF-8")


@pytest.mark.parametrize("params", [{}, {"query": ""}, {"query": ["ASK {}", "ASK {}"]}])
def test_missing_or_repeated_query_is_400(sparql, params):
    # A GET without query is the service description; a POST must carry one.
    assert_plain_error(requests.post(sparql, data=params), 400, "'query'")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(sparql, method):
    r = requests.request(method, sparql, data=SELECT)
    assert_plain_error(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST",
                                                                   "OPTIONS"}


def test_options_is_answered(sparql, url):
    for target in (sparql, url + "/update"):
        r = requests.options(target)
        assert r.status_code in (200, 204) and "POST" in r.headers["Allow"]


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"params": {"query": "\x00\x01"}}, 400),
        ({"params": {"query": "%"}}, 400),
        ({"params": {"query": SELECT}, "headers": {"Accept": ";;;,,,q=x/y"}}, 200),  # as */*
        ({"params": {"query": SELECT, "default-graph-uri": "<bad iri>"}}, 400),
        ({"params": {"query": SELECT, "format": "x" * 2000}}, 400),
        ({"params": "query=%C3%28&format=%E2%82"}, 400),
        ({"params": "query=ASK%7B%7D&default-graph-uri"}, 400),
    ],
)
def test_bad_input_is_a_client_error(sparql, kwargs, status):
    assert requests.get(sparql, **kwargs).status_code == status


# ---------------------------------------------------------------- SERVICE


def test_service_is_refused(sparql):
    q = "SELECT * WHERE { SERVICE <http://example.org/sparql> { ?s ?p ?o } }"
    assert_plain_error(requests.get(sparql, params={"query": q}), 400)


def test_service_in_a_string_runs(sparql):
    q = 'SELECT ?x WHERE { BIND("SERVICE <http://example.org/sparql> { }" AS ?x) }'
    r = requests.get(sparql, params={"query": q})
    assert r.status_code == 200, r.text
    assert r.json()["results"]["bindings"][0]["x"]["value"].startswith("SERVICE")


# ---------------------------------------------------------------- deadline


def test_runaway_query_is_stopped_while_others_are_answered(sparql):
    runaway = ("SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l . "
               "?m ?n1 ?o . ?q ?r ?t }")

    def timed():
        start = time.monotonic()
        response = requests.get(sparql, params={"query": runaway}, timeout=30)
        return response, time.monotonic() - start

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(timed)
        time.sleep(0.2)  # let the runaway take its worker
        quick = requests.get(sparql, params={"query": SELECT}, timeout=TIMEOUT + 1)
        assert quick.status_code == 200 and not future.done()
        response, elapsed = future.result()
    assert_plain_error(response, 503)
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed < TIMEOUT + 1.0


# ---------------------------------------------------------------- clients


@pytest.mark.parametrize("method", [None, POST, POSTDIRECTLY])
@pytest.mark.parametrize("fmt", [JSON, XML, CSV])
def test_sparqlwrapper_select(sparql, method, fmt):
    sw = SPARQLWrapper(sparql)
    if method == POSTDIRECTLY:
        sw.setMethod(POST)
        sw.setRequestMethod(POSTDIRECTLY)
    elif method:
        sw.setMethod(method)
    sw.setReturnFormat(fmt)
    sw.setQuery(f"SELECT ?s WHERE {{ ?s <{EX}rank> 3 }}")
    result = sw.query().convert()
    if fmt == JSON:
        values = [b["s"]["value"] for b in result["results"]["bindings"]]
    elif fmt == XML:
        values = [n.firstChild.data for n in result.getElementsByTagName("uri")]
    else:
        values = result.decode().split()[1:]
    assert values == [IRIS.entity("e3")]


@pytest.mark.parametrize("fmt, rdflib_format", [(TURTLE, "turtle"), (XML, "xml"),
                                                (JSONLD, "json-ld")])
def test_sparqlwrapper_construct(sparql, fmt, rdflib_format):
    sw = SPARQLWrapper(sparql)
    sw.setReturnFormat(fmt)
    sw.setQuery(CONSTRUCT)
    result = sw.query().convert()
    graph = result if isinstance(result, rdflib.Graph) else rdflib.Graph().parse(
        data=result, format=rdflib_format)
    assert len(graph) == 1


def test_sparqlwrapper_ask(sparql):
    sw = SPARQLWrapper(sparql)
    sw.setReturnFormat(JSON)
    sw.setQuery(f"ASK {{ <{IRIS.entity('e1')}> ?p ?o }}")
    assert sw.query().convert()["boolean"] is True


@pytest.mark.parametrize("method", ["GET", "POST", "POST_FORM"])
@pytest.mark.parametrize("return_format", ["xml", "json"])
def test_rdflib_sparqlstore(sparql, method, return_format):
    store = SPARQLStore(sparql, method=method, returnFormat=return_format)
    graph = rdflib.Graph(store=store)
    rows = list(graph.query(f"SELECT ?o WHERE {{ <{IRIS.entity('e5')}> <{EX}rank> ?o }}"))
    assert [r[0].toPython() for r in rows] == [5]
    assert graph.query("ASK { ?s ?p ?o }").askAnswer is True
    if return_format == "xml":  # rdflib accepts only SPARQL JSON with "json": no CONSTRUCT
        assert len(graph.query(CONSTRUCT).graph) == 1


def test_rdflib_sparqlstore_default_graph(sparql):
    """A Graph with an identifier queries that graph alone (sent as default-graph-uri)."""
    graph = rdflib.Graph(store=SPARQLStore(sparql), identifier=rdflib.URIRef(ONTOLOGY))
    rows = list(graph.query("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"))
    assert rows[0][0].toPython() == 1


# ---------------------------------------------------------------- service description

SDNS = rdflib.Namespace(SD)


@pytest.mark.parametrize("accept, rdflib_format", [
    (None, "turtle"), ("*/*", "turtle"), ("application/rdf+xml", "xml"),
    ("application/ld+json", "json-ld"), ("application/n-triples", "nt"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "xml"),  # no ui here
])
def test_service_description(sparql, url, accept, rdflib_format):
    r = requests.get(sparql, headers={"Accept": accept} if accept else {})
    assert r.status_code == 200, r.text
    g = rdflib.Graph().parse(data=r.content, format=rdflib_format)
    service = g.value(predicate=SDNS.endpoint, object=rdflib.URIRef(sparql))
    assert (service, SDNS.supportedLanguage, SDNS.SPARQL11Query) in g
    assert (service, SDNS.feature, SDNS.UnionDefaultGraph) in g
    assert (None, SDNS.name, rdflib.URIRef(FACTS)) in g
    update = g.value(predicate=SDNS.endpoint, object=rdflib.URIRef(url + "/update"))
    assert (update, SDNS.supportedLanguage, SDNS.SPARQL11Update) in g


def test_browser_gets_the_ui_when_registered(executors, config):
    with serve(make_app(executors[0], config, ui=True)) as base:
        browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
        page = requests.get(base + "/sparql", headers=browser)
        assert page.status_code == 200 and "YASGUI" in page.text
        assert requests.get(base + "/sparql").headers["Content-Type"].startswith("text/turtle")
        # updates are off in this app, so the description does not offer them
        g = rdflib.Graph().parse(data=requests.get(base + "/sparql").content, format="turtle")
        assert (None, SDNS.supportedLanguage, SDNS.SPARQL11Update) not in g
        # a query from a browser is still a query
        r = requests.get(base + "/sparql", params={"query": SELECT}, headers=browser)
        assert r.headers["Content-Type"].startswith("application/sparql-results+xml")


# ---------------------------------------------------------------- update

INSERT = f"INSERT DATA {{ GRAPH <{FACTS}> {{ <{IRIS.entity('new')}> <{LABEL}> 'new' }} }}"
ASK_NEW = f"ASK {{ <{IRIS.entity('new')}> ?p ?o }}"


def asked(executor) -> bool:
    result = executor.query(ASK_NEW, solutions_format="application/sparql-results+json",
                            graph_format=None)
    return json.loads(result.body)["boolean"]


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Bearer a b"}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": "Bearer " + TOKEN + "x"}, 403),
    ],
)
def test_update_refused_without_the_token(url, executors, headers, status):
    r = requests.post(url + "/update", data=INSERT,
                      headers={**headers, "Content-Type": "application/sparql-update"})
    assert_plain_error(r, status)
    if status == 401:
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert not asked(executors[1])


def test_update_with_the_token(url, executors):
    auth = {"Authorization": "Bearer " + TOKEN}
    r = requests.post(url + "/update", data={"update": "NOT AN UPDATE"}, headers=auth)
    assert_plain_error(r, 400)
    r = requests.get(url + "/update", headers=auth)
    assert_plain_error(r, 405)
    assert r.headers["Allow"] == "POST, OPTIONS"
    r = requests.post(url + "/update", data="LOAD <http://example.org/x>",
                      headers={**auth, "Content-Type": "application/sparql-update"})
    assert_plain_error(r, 400)
    assert not asked(executors[1])

    sw = SPARQLWrapper(url + "/sparql", updateEndpoint=url + "/update")
    sw.addCustomHttpHeader("Authorization", "Bearer " + TOKEN)
    sw.setMethod(POST)
    sw.setQuery(INSERT)
    assert sw.query().response.status == 204
    assert asked(executors[1])
    assert not asked(executors[0])  # the read-only store is a different one


def test_updates_disabled_without_a_token(executors, config):
    app = make_app(executors[0], config.with_(update_token=None), update_executor=executors[1])
    with serve(app) as base:
        r = requests.post(base + "/update", data=INSERT,
                          headers={"Authorization": "Bearer " + TOKEN,
                                   "Content-Type": "application/sparql-update"})
        assert_plain_error(r, 403, "disabled")
