"""The real `namkg serve` process answering real clients over loopback."""

from __future__ import annotations

import gzip
import json
import subprocess

import pytest
import requests
from rdflib import Dataset, Graph
from rdflib.plugins.stores.sparqlstore import SPARQLStore
from SPARQLWrapper import JSON, SPARQLWrapper

from .conftest import ADMIN_TOKEN, REPO
from .test_competency import QUERIES, canonical, expected


def test_curl_ask_answers_true(live_server):
    out = subprocess.run(["curl", "-sg", f"{live_server}/sparql?query=ASK{{?s?p?o}}"],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["boolean"] is True


def test_curl_glob_gets_a_hint(live_server):
    # Without -g curl drops the braces; the 400 must say why.
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}",
                          f"{live_server}/sparql?query=ASK{{?s?p?o}}"],
                         capture_output=True, text=True, timeout=30)
    body, status = out.stdout.rsplit("\n", 1)
    assert status == "400" and "curl -g" in body


@pytest.mark.parametrize("query", QUERIES, ids=lambda p: p.stem)
def test_competency_queries_over_http_with_sparqlwrapper(live_server, query):
    client = SPARQLWrapper(f"{live_server}/sparql")
    # SPARQLWrapper's comment regex skips every other comment line and then takes words such
    # as "movement" for MOVE (an update): give it the query without its comment header.
    text = "\n".join(ln for ln in query.read_text("utf-8").splitlines() if not ln.startswith("#"))
    client.setQuery(text)
    client.setReturnFormat(JSON)
    data = client.query().convert()
    rows = [{k: v["value"] for k, v in b.items()} for b in data["results"]["bindings"]]
    want = expected(query)
    assert canonical(rows, want["ordered"]) == canonical(want["rows"], want["ordered"])


def test_rdflib_sparqlstore_reads_the_graph(live_server):
    graph = Graph(store=SPARQLStore(f"{live_server}/sparql", returnFormat="json"))
    rows = list(graph.query(
        "SELECT ?n WHERE { ?s <https://w3id.org/nam-kg/ontology#count> ?n }"))
    assert [int(r[0]) for r in rows] == [120]


def test_health_and_metrics(live_server):
    health = requests.get(f"{live_server}/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["triples"] > 1000
    assert health["executor"]["workers"] >= 1
    # Where the files are and which processes run: only with NAMKG_ADMIN_TOKEN.
    assert "store" not in health and "pids" not in health["executor"]
    assert health["build"] and "/" not in health["build"]
    wrong = requests.get(f"{live_server}/healthz", timeout=10,
                         headers={"Authorization": "Bearer wrong"}).json()
    assert "store" not in wrong and "pids" not in wrong["executor"]
    admin = requests.get(f"{live_server}/healthz", timeout=10,
                         headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()
    assert admin["store"].endswith(admin["build"]) and admin["executor"]["pids"]
    assert admin["sandbox"]
    text = requests.get(f"{live_server}/metrics", timeout=10).text
    assert "namkg_requests_total" in text and "namkg_executor_workers" in text


def test_dumps_parse_and_answer_304(live_server):
    for name, fmt in [("nam-kg.ttl", "turtle"), ("nam-kg.nt", "nt"), ("nam-kg.jsonld", "json-ld"),
                      ("nam-kg.nq", "nquads"), ("nam-kg.trig", "trig")]:
        first = requests.get(f"{live_server}/dumps/{name}", timeout=30)
        assert first.status_code == 200, name
        ds = Dataset()
        ds.parse(data=first.content, format=fmt)
        assert len(list(ds.quads())) > 1000, name
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        again = requests.get(f"{live_server}/dumps/{name}", timeout=30,
                             headers={"If-None-Match": etag})
        assert again.status_code == 304
        again = requests.get(f"{live_server}/dumps/{name}", timeout=30,
                             headers={"If-Modified-Since": modified})
        assert again.status_code == 304
    assert requests.get(f"{live_server}/dumps/../../etc/passwd", timeout=10).status_code == 404
    assert requests.get(f"{live_server}/dumps/%2e%2e%2fsecret", timeout=10).status_code == 404


def test_void_description(live_server):
    resp = requests.get(f"{live_server}/dataset", headers={"Accept": "text/turtle"}, timeout=10)
    g = Graph().parse(data=resp.text, format="turtle")
    text = resp.text
    assert "sparqlEndpoint" in text and f"{live_server}/sparql" in text
    assert len(g) > 10 and "creativecommons.org/licenses/by/4.0" in text


def test_cors_preflight_and_gzip(live_server):
    pre = requests.options(f"{live_server}/sparql", timeout=10, headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code in (200, 204)
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    raw = requests.get(f"{live_server}/dumps/nam-kg.ttl", timeout=10, stream=True,
                       headers={"Accept-Encoding": "identity"})
    assert raw.headers.get("Access-Control-Allow-Origin") == "*"
    resp = requests.post(f"{live_server}/sparql", timeout=10, stream=True,
                         data={"query": "SELECT * WHERE { ?s ?p ?o } LIMIT 200"},
                         headers={"Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(resp.raw.read()))["results"]["bindings"]) == 200


def test_wdqs_query_over_http_gives_the_article_dates(live_server):
    query = (REPO / "queries" / "wdqs-azerbaijan-membership-start.rq").read_text("utf-8")
    data = requests.get(f"{live_server}/sparql", params={"query": query}, timeout=10,
                        headers={"Accept": "application/sparql-results+json"}).json()
    starts = [b["start"]["value"] for b in data["results"]["bindings"]]
    assert starts == ["2011-01-01T00:00:00Z"]
