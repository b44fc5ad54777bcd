"""Linked data as its clients meet it, against a real `namkg serve` on loopback: rdflib's
``parse(url)`` in every format, a crawl of every IRI the data mints, caching validators and
304s, discovery documents (VoID, robots.txt, sitemap, JSON-LD in HTML), the proxy mode, and
the union default graph counting each triple once."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import rdflib
import requests
from namkg.iris import Iris
from rdflib.compare import isomorphic

from .conftest import Server

pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated")

BASE = Iris().base  # the data's IRIs; the test server answers them under its own URL
AZ = "id/azerbaijan"
# rdflib's own format names, as `Graph().parse(url, format=...)` takes them.
RDFLIB_FORMATS = ["nt", "n3", "turtle", "xml", "json-ld", "trig", "nquads"]
SUFFIX_MEDIA = {
    "html": "text/html",
    "ttl": "text/turtle",
    "nt": "application/n-triples",
    "n3": "text/n3",
    "nq": "application/n-quads",
    "trig": "application/trig",
    "jsonld": "application/ld+json",
    "rdf": "application/rdf+xml",
}
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# The Accept header Comunica 4 (@comunica/query-sparql 4.x, comunica-sparql) sends when it
# dereferences a source, as captured on a loopback listener.
COMUNICA = (
    "application/n-quads,application/trig;q=0.95,application/ld+json;q=0.9,"
    "application/n-triples;q=0.8,text/turtle;q=0.6,application/rdf+xml;q=0.5,"
    "text/n3;q=0.35,application/xml;q=0.3,image/svg+xml;q=0.3,text/xml;q=0.3,"
    "text/html;q=0.2,application/xhtml+xml;q=0.18,application/json;q=0.135,"
    "text/shaclc;q=0.1,text/shaclc-ext;q=0.05"
)


def get(url: str, accept: str | None = None, **kw) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    headers.update(kw.pop("headers", {}))
    return requests.get(url, headers=headers, timeout=30, **kw)


def local(server: str, iri: str) -> str:
    return server + "/" + iri[len(BASE) :]


def graph_of(data: bytes, fmt: str) -> rdflib.Graph:
    return rdflib.Graph().parse(data=data, format=fmt)


# ---------------------------------------------------------------- the data


def test_union_default_graph_counts_each_triple_of_the_dumps_once(live_server):
    r = get(
        f"{live_server}/sparql",
        "application/sparql-results+json",
        params={"query": "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"},
    )
    assert r.status_code == 200, (r.status_code, r.headers, r.text)
    count = int(r.json()["results"]["bindings"][0]["n"]["value"])
    quads = get(f"{live_server}/dumps/nam-kg.nq").content.decode().splitlines()
    ds = rdflib.Dataset()
    ds.parse(data="\n".join(quads), format="nquads")
    distinct = {(s, p, o) for s, p, o, _ in ds.quads()}
    assert len(quads) > 1500 and count == len(distinct)
    # and the VoID count of the dataset is the data graphs' size, each triple once
    void = graph_of(get(f"{live_server}/.well-known/void", "text/turtle").content, "turtle")
    (triples,) = void.objects(
        rdflib.URIRef(BASE + "dataset"), rdflib.URIRef("http://rdfs.org/ns/void#triples")
    )
    meta = {(s, p, o) for s, p, o, g in ds.quads() if str(g) == BASE + "graph/meta"}
    assert int(triples) == len(distinct) - len(meta)


# ---------------------------------------------------------------- negotiation


@pytest.mark.parametrize("fmt", RDFLIB_FORMATS)
def test_rdflib_parses_an_entity_iri_in_every_format(live_server, fmt):
    expected = graph_of(get(f"{live_server}/{AZ}.nt").content, "nt")
    g = rdflib.Dataset() if fmt in ("trig", "nquads") else rdflib.Graph()
    g.parse(f"{live_server}/{AZ}", format=fmt)
    got = rdflib.Graph()
    for t in g.quads() if isinstance(g, rdflib.Dataset) else g:
        got.add(t[:3])
    assert len(expected) > 20 and isomorphic(got, expected)
    assert (
        rdflib.URIRef(BASE + AZ),
        rdflib.RDFS.label,
        rdflib.Literal("أذربيجان", lang="ar"),
    ) in got


@pytest.mark.parametrize(
    "accept,media",
    [
        ("text/plain", "application/n-triples"),
        ("application/n-triples", "application/n-triples"),
        ("text/n3", "text/turtle"),  # Turtle is N3
        ("application/trig", "application/trig"),
        ("application/n-quads", "application/n-quads"),
        ("application/ld+json", "application/ld+json"),
        ("application/json", "application/ld+json"),
        ("text/turtle", "text/turtle"),
        ("application/rdf+xml", "application/rdf+xml"),
        ("text/plain, */*;q=0.1", "application/n-triples"),  # RDF even with */* listed
        (BROWSER, "text/html"),
        (None, "text/html"),
        (COMUNICA, "application/n-quads"),
    ],
)
def test_accept_picks_the_format(live_server, accept, media):
    r = get(f"{live_server}/{AZ}", accept)
    assert r.status_code == 200 and r.headers["Content-Type"].split(";")[0] == media
    assert "Accept" in r.headers["Vary"]


@pytest.mark.parametrize("suffix", list(SUFFIX_MEDIA))
def test_suffix_names_the_format_whatever_accept_says(live_server, suffix):
    for path in (AZ, "ontology", "graph/links", "build"):
        r = get(f"{live_server}/{path}.{suffix}", BROWSER)
        assert r.status_code == 200, (path, suffix)
        assert r.headers["Content-Type"].split(";")[0] == SUFFIX_MEDIA[suffix], path


def test_link_header_has_alternates_and_describedby(live_server):
    r = get(f"{live_server}/{AZ}", BROWSER)
    links = requests.utils.parse_header_links(r.headers["Link"])
    alternates = {ln["type"]: ln["url"] for ln in links if "alternate" in ln["rel"].split()}
    assert set(alternates) == set(SUFFIX_MEDIA.values()) - {"text/html"}
    assert [ln["url"] for ln in links if "describedby" in ln["rel"].split()] == [f"/{AZ}.ttl"]
    assert r.headers["Content-Location"] == f"/{AZ}.html"
    turtle = requests.utils.parse_header_links(
        get(f"{live_server}/{AZ}", "text/turtle").headers["Link"]
    )
    assert [(ln["url"], ln["rel"]) for ln in turtle if "describedby" in ln["rel"]] == [
        (f"/{AZ}.ttl", "describedby")
    ]
    for media, url in alternates.items():
        assert get(live_server + url).headers["Content-Type"].split(";")[0] == media


# ---------------------------------------------------------------- every minted IRI answers


def minted(server: str) -> set[str]:
    """Every IRI in our namespace in the dumps (fragments cut: ``ontology#X`` is a section
    of the ``ontology`` document)."""
    text = get(f"{server}/dumps/nam-kg.nq").text
    return {m.split("#")[0] for m in re.findall(r"<(" + re.escape(BASE) + r"[^>]*)>", text)}


@pytest.mark.parametrize("accept", ["text/turtle", BROWSER])
def test_every_minted_iri_dereferences(live_server, accept, capsys):
    iris = minted(live_server)
    statuses: Counter = Counter()
    failed = []
    for iri in sorted(iris):
        r = get(local(live_server, iri), accept, allow_redirects=True)
        statuses[(r.history[0].status_code if r.history else None, r.status_code)] += 1
        if r.status_code != 200:
            failed.append((iri, r.status_code))
    with capsys.disabled():
        print(
            f"\ncrawl ({accept.split(',')[0]}): {len(iris)} IRIs, "
            f"(redirect, final status): {dict(statuses)}"
        )
    assert len(iris) > 130 and not failed
    kinds = {iri[len(BASE) :].split("/")[0] for iri in iris}
    assert {"id", "graph", "ontology", "build", "dataset"} <= kinds


def test_w3id_rules_redirect_every_minted_iri_to_its_page(live_server):
    """docs/w3id/.htaccess (mod_rewrite's regexes are Python's for these): each IRI in the data
    is sent with 303 to the same path on the site, which answers it."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs/w3id/.htaccess").read_text()
    rules = [
        (re.compile(m[1]), m[2], m[3])
        for m in re.finditer(r"^RewriteRule (\S+) (\S+) \[([^\]]+)\]", text, re.M)
    ]
    assert rules
    for iri in minted(live_server):
        path = iri[len(BASE) :]
        hits = [
            (rx.fullmatch(path), target, flags) for rx, target, flags in rules if rx.fullmatch(path)
        ]
        assert hits, iri
        match, target, flags = hits[0]
        assert "R=303" in flags, iri
        site = "https://nam-kg.example.org/"
        assert match.expand(target.replace("$", "\\")) == site + path


def test_named_graphs_dereference_to_their_contents(live_server):
    for name in ("ontology", "facts", "links", "wikidata", "meta"):
        got = graph_of(get(f"{live_server}/graph/{name}", "application/n-triples").content, "nt")
        r = get(
            f"{live_server}/sparql",
            "application/n-triples",
            params={
                "query": f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{BASE}graph/{name}> "
                f"{{ ?s ?p ?o }} }}"
            },
        )
        assert len(got) > 10 and isomorphic(got, graph_of(r.content, "nt")), name
        page = get(f"{live_server}/graph/{name}", BROWSER).text
        assert f'href="/graph/{name}.ttl"' in page


def test_the_version_iri_is_the_ontology(live_server):
    onto = graph_of(get(f"{live_server}/ontology.nt").content, "nt")
    (version,) = onto.objects(rdflib.URIRef(BASE + "ontology"), rdflib.OWL.versionIRI)
    got = graph_of(get(local(live_server, str(version)), "application/n-triples").content, "nt")
    assert isomorphic(got, onto)
    assert get(f"{live_server}/ontology/9.9.9", "text/turtle").status_code == 404


# ---------------------------------------------------------------- caching


@pytest.mark.parametrize(
    "path,accept",
    [
        (AZ, BROWSER),
        (AZ, "text/turtle"),
        (f"{AZ}.jsonld", None),
        ("ontology", BROWSER),
        ("graph/facts", "text/turtle"),
        ("build", BROWSER),
        ("", BROWSER),
        ("dataset", "text/turtle"),
        (".well-known/void", "text/turtle"),
        ("sitemap.xml", None),
        ("robots.txt", None),
        ("dumps/nam-kg.ttl", None),
        ("dumps/nam-kg.nt.gz", None),
    ],
)
def test_validators_and_304(live_server, path, accept):
    first = get(f"{live_server}/{path}", accept)
    assert first.status_code == 200
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert "max-age" in first.headers["Cache-Control"]
    for condition in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
        again = get(f"{live_server}/{path}", accept, headers=condition)
        assert again.status_code == 304 and again.content == b"", (path, condition)
        assert again.headers["ETag"] == etag
    changed = get(f"{live_server}/{path}", accept, headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


def test_etag_differs_between_representations(live_server):
    tags = {
        get(f"{live_server}/{AZ}", a).headers["ETag"]
        for a in ("text/turtle", "application/ld+json", BROWSER)
    }
    assert len(tags) == 3


# ---------------------------------------------------------------- discovery


class Scripts(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.jsonld: list[str] = []
        self._in = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self._in = tag == "script" and dict(attrs).get("type") == "application/ld+json"

    def handle_data(self, data):
        if self._in:
            self.jsonld.append(data)

    def handle_endtag(self, tag):
        self._in = False


@pytest.mark.parametrize("path", [AZ, "id/quote-05", "id/claim-correct-position", "build"])
def test_jsonld_in_the_page_is_the_turtle_document(live_server, path):
    html = get(f"{live_server}/{path}", BROWSER).text
    (embedded,) = Scripts(html).jsonld
    assert "</" not in embedded
    from_html = graph_of(embedded.encode(), "json-ld")
    turtle = graph_of(get(f"{live_server}/{path}", "text/turtle").content, "turtle")
    assert len(turtle) > 5 and isomorphic(from_html, turtle)


def test_entity_documents_name_their_dataset_and_licence(live_server):
    g = graph_of(get(f"{live_server}/{AZ}", "text/turtle").content, "turtle")
    doc = rdflib.URIRef(f"{live_server}/{AZ}")
    void = rdflib.Namespace("http://rdfs.org/ns/void#")
    assert (doc, void.inDataset, rdflib.URIRef(BASE + "dataset")) in g
    assert (
        doc,
        rdflib.DCTERMS.license,
        rdflib.URIRef("https://creativecommons.org/licenses/by/4.0/"),
    ) in g
    assert (doc, rdflib.FOAF.primaryTopic, rdflib.URIRef(BASE + AZ)) in g


def test_well_known_void_robots_and_sitemap(live_server):
    void = get(f"{live_server}/.well-known/void", "text/turtle")
    assert void.headers["Content-Type"] == "text/turtle; charset=utf-8"
    g = graph_of(void.content, "turtle")
    ds = rdflib.URIRef(BASE + "dataset")
    vd = rdflib.Namespace("http://rdfs.org/ns/void#")
    assert (ds, vd.sparqlEndpoint, rdflib.URIRef(f"{live_server}/sparql")) in g
    dumps = {str(o) for o in g.objects(ds, vd.dataDump)}
    assert f"{live_server}/dumps/nam-kg.nq.gz" in dumps
    robots = get(f"{live_server}/robots.txt").text
    assert f"Sitemap: {live_server}/sitemap.xml" in robots
    locs = re.findall(r"<loc>([^<]+)</loc>", get(f"{live_server}/sitemap.xml").text)
    subjects = {s for s in minted(live_server) if s.startswith(BASE + "id/")}
    pages = {loc for loc in locs if loc.startswith(f"{live_server}/id/")}
    assert f"{live_server}/{AZ}" in pages and len(pages) > 100
    assert pages <= {local(live_server, s) for s in subjects}


def test_dumps_have_one_charset_and_a_gzip_twin(live_server):
    for name in ("nam-kg.ttl", "nam-kg.nt", "nam-kg.nq", "nam-kg.trig"):
        plain = get(f"{live_server}/dumps/{name}")
        assert plain.headers["Content-Type"].count("charset") == 1, name
        packed = requests.get(f"{live_server}/dumps/{name}.gz", timeout=30, stream=True)
        assert packed.headers["Content-Type"] == "application/gzip"
        assert gzip.decompress(packed.raw.read()) == plain.content
    assert get(f"{live_server}/dataset", "text/turtle").headers["Content-Type"] == (
        "text/turtle; charset=utf-8"
    )
    assert get(f"{live_server}/dumps/nam-kg.exe.gz").status_code == 404


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/no/such/page", 404),
        ("GET", "/id/nothing-here", 404),
        ("DELETE", "/dataset", 405),
        ("GET", "/graph/other", 404),
        ("GET", "/dumps/x.ttl", 404),
    ],
)
def test_errors_are_pages_for_browsers_and_text_for_others(live_server, method, path, status):
    page = requests.request(method, live_server + path, headers={"Accept": BROWSER}, timeout=30)
    assert page.status_code == status
    assert page.headers["Content-Type"].startswith("text/html") and "<h1>" in page.text
    text = requests.request(method, live_server + path, headers={"Accept": "*/*"}, timeout=30)
    assert text.status_code == status and text.headers["Content-Type"].startswith("text/plain")


# ---------------------------------------------------------------- behind a proxy


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "kg.example.org"}


def advertised(server: str) -> tuple[set[str], set[str]]:
    """The endpoint URLs the VoID and the service description give, asked with X-Forwarded-*."""
    void = graph_of(
        get(f"{server}/.well-known/void", "text/turtle", headers=FORWARDED).content, "turtle"
    )
    endpoints = {
        str(o) for o in void.objects(None, rdflib.URIRef("http://rdfs.org/ns/void#sparqlEndpoint"))
    }
    sd = graph_of(get(f"{server}/sparql", "text/turtle", headers=FORWARDED).content, "turtle")
    sd_endpoints = {
        str(o)
        for o in sd.objects(
            None, rdflib.URIRef("http://www.w3.org/ns/sparql-service-description#endpoint")
        )
    }
    return endpoints, sd_endpoints


def test_forwarded_headers_are_ignored_by_default(live_server):
    void, sd = advertised(live_server)
    assert void == {f"{live_server}/sparql"} and sd == {f"{live_server}/sparql"}


def test_forwarded_headers_are_honoured_in_proxy_mode(built_store):
    server = Server(built_store, env={"NAMKG_TRUST_PROXY": "1"})
    try:
        void, sd = advertised(server.url)
        assert void == {"https://kg.example.org/sparql"} and sd == void
        # without the headers, the server's own address
        g = graph_of(get(f"{server.url}/dataset", "text/turtle").content, "turtle")
        assert rdflib.URIRef(f"{server.url}/sparql") in set(g.objects())
    finally:
        server.stop()


def test_trusted_hosts_refuse_other_host_headers(built_store):
    server = Server(built_store, env={"NAMKG_TRUSTED_HOSTS": "127.0.0.1 kg.example.org"})
    try:
        assert get(f"{server.url}/dataset", "text/turtle").status_code == 200
        evil = get(f"{server.url}/dataset", "text/turtle", headers={"Host": "evil.example"})
        assert evil.status_code == 400 and "evil.example" not in evil.text
    finally:
        server.stop()


def test_jsonld_parses_as_json(live_server):
    body = get(f"{live_server}/{AZ}.jsonld").content
    assert json.loads(body)


# ---------------------------------------------------------------- Comunica, a real client

# tests/clients holds the pinned client (npm ci --prefix tests/clients, which the README's test
# command runs where npm is installed): Comunica 4 with sparqljson-parse 2, since with 3 it
# loses language tags (a client bug).
PINNED = Path(__file__).parent / "clients" / "node_modules" / ".bin" / "comunica-sparql"
COMUNICA_BIN = (os.environ.get("NAMKG_COMUNICA") or (str(PINNED) if PINNED.exists() else None)
                or shutil.which("comunica-sparql"))
NEEDS_COMUNICA = pytest.mark.skipif(
    not COMUNICA_BIN,
    reason="comunica-sparql not found (npm ci --prefix tests/clients, or set NAMKG_COMUNICA)",
)


@NEEDS_COMUNICA
@pytest.mark.parametrize("path", [AZ, "graph/links", "ontology/0.1.0"])
def test_comunica_queries_our_documents(live_server, path):
    """Comunica dereferences the URL itself (its own Accept, its own parsers) and queries it."""
    done = subprocess.run(
        [COMUNICA_BIN, f"{live_server}/{path}", "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    count = int(re.match(r'"(\d+)"', row["n"]).group(1))
    expected = graph_of(get(f"{live_server}/{path}", "application/n-triples").content, "nt")
    assert count == len(expected) > 20


@NEEDS_COMUNICA
def test_comunica_reads_the_endpoint_as_we_answer(live_server):
    """Comunica with /sparql as its source (its own request, its own results parser, its own
    serializer) gets every term as the endpoint sends it: Arabic text, language tags,
    datatypes, IRIs."""
    query = ("SELECT ?s ?p ?o WHERE { ?s ?p ?o FILTER(!isBlank(?s) && !isBlank(?o)) "
             "FILTER(isLiteral(?o) || ?p = <http://www.w3.org/2002/07/owl#sameAs>) }")
    done = subprocess.run(
        [COMUNICA_BIN, f"sparql@{live_server}/sparql", "-t", "application/sparql-results+json",
         query],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    ours = requests.post(f"{live_server}/sparql", data={"query": query}, timeout=30,
                         headers={"Accept": "application/sparql-results+json"}).json()

    def rows(answer):
        return Counter(tuple(sorted((var, tuple(sorted(term.items())))
                                    for var, term in b.items()))
                       for b in answer["results"]["bindings"])

    theirs = rows(json.loads(done.stdout))
    assert theirs == rows(ours)
    langs = {dict(t)["xml:lang"] for row in theirs for v, t in row if "xml:lang" in dict(t)}
    assert {"ar", "en"} <= langs and len(theirs) > 100
