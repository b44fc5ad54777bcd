"""Entity pages, ontology docs and the YASGUI page over a real store, Executor and HTTP server.

The fixture uses a base IRI other than the default one, so a hard-coded host would show.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
import requests
from flask import Flask
from namkg.config import Config
from namkg.iris import Iris
from namkg.query.executor import Executor
from namkg.web.app import make_app as mount_owners
from namkg.web.endpoint import SparqlViews
from namkg.web.pages import DATA_FORMATS, Pages
from rdflib.compare import isomorphic

from .conftest import serve

# rdflib's JSON-LD parser uses its own deprecated ConjunctiveGraph; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated")

BASE = "https://kg.example.org/nam/"
IRIS = Iris(BASE)
NAM, ID = IRIS.vocab, IRIS.base + "id/"
RDFS = rdflib.RDFS
QUOTE_AR = "لهذا السبب ، قررت أذربيجان في عام 2011 أن تصبح عضوًا بكامل العضوية في حركة عدم الانحياز."
QUOTE_EN = "For this reason, in 2011 Azerbaijan decided to become a full member of the movement."
CLAIM_AR = "موقف أذربيجان كان دائمًا الصحيح في كافة الشؤون الدولية."
CLAIM_EN = "Azerbaijan's position has always been the right one in all international affairs."
EXAMPLES = [
    {"name": "Facts with their quotes", "query": f"PREFIX nam: <{NAM}>\n"
     "SELECT ?fact ?quote WHERE { ?fact a nam:Fact ; "
     "<http://www.w3.org/ns/prov#wasDerivedFrom> ?quote }"},
    {"name": "Everything", "query": "SELECT * WHERE { ?s ?p ?o } LIMIT 5"},
]

PREFIXES = f"""
@prefix : <{ID}> .
@prefix nam: <{NAM}> .
@prefix org: <http://www.w3.org/ns/org#> .
@prefix prov: <http://www.w3.org/ns/prov#> .
@prefix oa: <http://www.w3.org/ns/oa#> .
@prefix owl: <http://www.w3.org/2002/07/owl#> .
@prefix rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix schema: <https://schema.org/> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix time: <http://www.w3.org/2006/time#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
"""

FACTS = PREFIXES + f"""
:azerbaijan a nam:State ; rdfs:label "Azerbaijan"@en , "أذربيجان"@ar ;
    nam:memberSince [ a time:Instant ; time:inXSDgYear "2011"^^xsd:gYear ] .
:hashim-mammadov rdfs:seeAlso <javascript:alert(document.cookie)> , <JavaScript:alert(2)> ,
    <data:text/html,hi> , <mailto:editor@example.org> , <https://example.org/about> .
:non-aligned-movement a org:FormalOrganization ;
    rdfs:label "Non-Aligned Movement"@en , "حركة عدم الانحياز"@ar .
:hashim-mammadov rdfs:label "Hashim Mammadov"@en , "هاشم محمدوف"@ar .
:quote-05 a nam:Quote ; rdfs:label "Quote: sentence 5"@en ;
    oa:exact "{QUOTE_AR}"@ar ; nam:translation "{QUOTE_EN}"@en ; nam:sentence 5 .
:quote-07 a nam:Quote ; rdfs:label "Quote: sentence 7"@en ;
    oa:exact "{CLAIM_AR}"@ar ; nam:translation "{CLAIM_EN}"@en ; nam:sentence 7 .
:membership-full a org:Membership , nam:Fact ;
    rdfs:label "Azerbaijan's full membership"@en , "عضوية أذربيجان الكاملة"@ar ;
    org:member :azerbaijan ; org:organization :non-aligned-movement ;
    prov:wasDerivedFrom :quote-05 .
:claim-correct-position a nam:Claim ;
    rdfs:label "Azerbaijan's position has always been right"@en , "موقف أذربيجان صحيح"@ar ;
    prov:wasAttributedTo :hashim-mammadov ; schema:about :azerbaijan ;
    prov:wasDerivedFrom :quote-07 .
:member-count a nam:CountStatement ; rdfs:label "The movement counts Azerbaijan"@en ;
    schema:about :azerbaijan ; prov:wasDerivedFrom :quote-05 .
"""
LINKS = PREFIXES + ":azerbaijan owl:sameAs <http://www.wikidata.org/entity/Q227> ."
ONTOLOGY = PREFIXES + f"""
<{IRIS.ontology}> a owl:Ontology ;
    dcterms:title "The test ontology"@en , "أنطولوجيا الاختبار"@ar ;
    dcterms:description "Terms for the test."@en ;
    owl:versionIRI <{IRIS.ontology}/0.1.0> ;
    dcterms:license <https://creativecommons.org/licenses/by/4.0/> .
nam:Fact a owl:Class ; rdfs:label "Fact"@en , "واقعة"@ar ;
    rdfs:comment "Something the article states as a matter of fact."@en ,
        "ما يذكره المقال على أنه واقعة."@ar ;
    rdfs:isDefinedBy <{IRIS.ontology}> .
nam:Claim a owl:Class ; rdfs:label "Claim"@en , "رأي منسوب"@ar ;
    rdfs:subClassOf prov:Entity ; owl:disjointWith nam:Fact ;
    rdfs:isDefinedBy <{IRIS.ontology}> .
nam:CountStatement a owl:Class ; rdfs:subClassOf nam:Fact ;
    rdfs:label "Count statement"@en , "بيان عددي"@ar ; rdfs:isDefinedBy <{IRIS.ontology}> .
nam:translation a owl:DatatypeProperty ; rdfs:label "translation"@en , "ترجمة"@ar ;
    rdfs:domain nam:Quote ; rdfs:range rdf:langString ; rdfs:isDefinedBy <{IRIS.ontology}> .
nam:memberSince a owl:ObjectProperty ; rdfs:label "member since"@en , "عضو منذ"@ar ;
    rdfs:range [ owl:unionOf ( time:Instant time:Interval ) ] ;
    owl:equivalentProperty <http://www.wikidata.org/prop/direct/P580> ;
    skos:closeMatch <http://www.wikidata.org/entity/Q4810> ;
    rdfs:isDefinedBy <{IRIS.ontology}> .
"""
ONTOLOGY_TERMS = ["Fact", "Claim", "CountStatement", "translation", "memberSince"]


def build_store(path: Path) -> None:
    store = ox.Store(str(path))
    for name, text in (("facts", FACTS), ("links", LINKS), ("ontology", ONTOLOGY)):
        store.load(text.encode(), format=ox.RdfFormat.TURTLE,
                   to_graph=ox.NamedNode(IRIS.graph(name)))
    store.flush()
    del store


def make_app(executor, config: Config) -> Flask:
    """The SPARQL views and the pages, mounted as the server mounts them."""
    return mount_owners({"sparql": SparqlViews(executor, config, IRIS),
                         "pages": Pages(executor, config, IRIS, EXAMPLES)}, config)


@contextlib.contextmanager
def running_site(tmp_path: Path):
    """The fixture store served by the SPARQL views and the pages; yields the base URL."""
    build_store(tmp_path / "store")
    config = Config.from_env({}, base_iri=BASE, store=tmp_path / "store")
    executor = Executor(tmp_path / "store", workers=1, timeout=10.0)
    try:
        with serve(make_app(executor, config)) as url:
            yield url
    finally:
        executor.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with running_site(tmp_path_factory.mktemp("pages")) as url:
        yield url


def get(url: str, accept: str | None = "text/html", **kw) -> requests.Response:
    return requests.get(url, headers={"Accept": accept} if accept else {}, timeout=30, **kw)


class Tags(HTMLParser):
    """Start tags with their attributes, to check what a page loads and where it links."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def visible(html: str) -> str:
    """The page without its embedded JSON-LD (which names blank nodes as _:b)."""
    return re.sub(r'<script type="application/ld\+json">.*?</script>', "", html, flags=re.S)


def assert_self_contained(html: str) -> None:
    """No script, style sheet, image or font comes from anywhere but this server."""
    for tag, attrs in Tags(html).tags:
        for attr in ("src", "href"):
            value = attrs.get(attr) or ""
            loads = tag in ("script", "img", "iframe") or (
                tag == "link" and attrs.get("rel") in ("stylesheet", "preload", "icon"))
            if loads and value:
                assert not re.match(r"^(https?:)?//", value), (tag, value)
    assert "@import" not in html and "url(http" not in html


# ---------------------------------------------------------------- entity pages


def test_entity_html_shows_labels_facts_claims_and_quotes(site):
    r = get(f"{site}/id/azerbaijan")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "Accept" in r.headers["Vary"]
    html = visible(r.text)
    assert '<span lang="ar" dir="rtl">أذربيجان</span>' in html
    assert f'<blockquote lang="ar" dir="rtl">{QUOTE_AR}</blockquote>' in html
    assert f'<blockquote lang="ar" dir="rtl">{CLAIM_AR}</blockquote>' in html
    assert QUOTE_EN in html and CLAIM_EN.replace("'", "&#39;") in html
    # The fact, the claim (with its author) and the subclass-of-Fact statement all show.
    assert 'href="/id/membership-full"' in html and 'href="/id/claim-correct-position"' in html
    assert 'href="/id/member-count"' in html
    assert "attributed to" in html and 'href="/id/hashim-mammadov"' in html
    assert html.count('class="badge claim"') == 1 and html.count('class="badge fact"') == 2
    assert 'href="http://www.wikidata.org/entity/Q227"' in html
    assert "w3id.org" not in html  # links come from the configured base, not a fixed host
    # The blank node it points to is shown inline, not as an opaque _:id.
    assert "time:inXSDgYear" in html and ">2011<" in html and "_:" not in html
    assert_self_contained(html)


def test_only_web_and_mail_iris_become_links(site):
    """A javascript: (or data:) IRI in the data is shown as text, never as a link."""
    html = get(f"{site}/id/hashim-mammadov").text
    hrefs = [a.get("href") or "" for t, a in Tags(html).tags if t == "a"]
    assert "mailto:editor@example.org" in hrefs and "https://example.org/about" in hrefs
    assert not [h for h in hrefs if h.lower().startswith(("javascript:", "data:"))]
    assert "javascript:alert(document.cookie)" in html  # shown, as text
    assert "data:text/html,hi" in html


def test_fact_page_shows_its_own_quote(site):
    html = get(f"{site}/id/membership-full").text
    assert "Source of this fact" in html and QUOTE_AR in html and QUOTE_EN in html
    assert 'href="/id/azerbaijan"' in html and 'href="/id/quote-05"' in html


def test_quote_page_shows_quote_and_what_derives_from_it(site):
    html = get(f"{site}/id/quote-05").text
    assert f'<blockquote lang="ar" dir="rtl">{QUOTE_AR}</blockquote>' in html
    assert "Sentence 5 of the article" in html and 'href="/id/membership-full"' in html


def test_link_header_lists_every_data_format(site):
    r = get(f"{site}/id/azerbaijan")
    links = requests.utils.parse_header_links(r.headers["Link"])
    assert {(ln["url"], ln["type"]) for ln in links} == {
        (f"/id/azerbaijan.{ext}", media) for media, ext in DATA_FORMATS.items()}
    assert [ln["url"] for ln in links if "describedby" in ln["rel"]] == ["/id/azerbaijan.ttl"]


RDFLIB_FORMATS = {"text/turtle": "turtle", "application/ld+json": "json-ld",
                  "application/n-triples": "nt", "application/rdf+xml": "xml", "text/n3": "n3",
                  "application/n-quads": "nquads", "application/trig": "trig"}
# What answers a request for each: N3 is written as Turtle (valid N3).
SERVED_AS = {**{m: m for m in RDFLIB_FORMATS}, "text/n3": "text/turtle"}


@pytest.mark.parametrize("media", list(DATA_FORMATS))
@pytest.mark.parametrize("how", ["accept", "extension"])
def test_entity_data_formats_parse_and_hold_the_description(site, media, how):
    if how == "accept":
        r = get(f"{site}/id/azerbaijan", accept=f"text/html;q=0.5, {media}")
    else:
        r = get(f"{site}/id/azerbaijan.{DATA_FORMATS[media]}", accept="text/html")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].split(";")[0] == (SERVED_AS[media] if how == "accept"
                                                       else media)
    g = rdflib.Graph()
    for quad in rdflib.Dataset().parse(data=r.content, format=RDFLIB_FORMATS[media]).quads():
        g.add(quad[:3])
    az = rdflib.URIRef(ID + "azerbaijan")
    assert (az, RDFS.label, rdflib.Literal("أذربيجان", lang="ar")) in g
    assert (az, rdflib.OWL.sameAs, rdflib.URIRef("http://www.wikidata.org/entity/Q227")) in g
    # The blank node it reaches comes along, and so do the triples pointing at it.
    (instant,) = g.objects(az, rdflib.URIRef(NAM + "memberSince"))
    assert isinstance(instant, rdflib.BNode)
    assert (instant, rdflib.URIRef("http://www.w3.org/2006/time#inXSDgYear"), None) in g
    assert (rdflib.URIRef(ID + "membership-full"), rdflib.URIRef("http://www.w3.org/ns/org#member"),
            az) in g
    # Nothing else: not the fact's own label.
    assert (rdflib.URIRef(ID + "membership-full"), RDFS.label, None) not in g


@pytest.mark.parametrize("accept,expected", [
    ("text/turtle;q=0.9, text/html;q=0.8", "text/turtle"),
    ("application/ld+json, text/html;q=0.1", "application/ld+json"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
    ("application/*", "application/n-triples"),  # ties: the format every parser reads
    ("application/json", "application/ld+json"),
    ("text/plain", "application/n-triples"),
    (None, "text/html"),
])
def test_negotiation_follows_q_values(site, accept, expected):
    r = get(f"{site}/id/azerbaijan", accept=accept)
    assert r.status_code == 200 and r.headers["Content-Type"].split(";")[0] == expected


def test_unacceptable_type_is_406(site):
    r = get(f"{site}/id/azerbaijan", accept="image/png")
    assert r.status_code == 406 and "text/turtle" in r.text


def test_unknown_entity_is_404_in_the_negotiated_form(site):
    html = get(f"{site}/id/no-such-thing")
    assert html.status_code == 404 and html.headers["Content-Type"].startswith("text/html")
    assert "no-such-thing" in html.text
    plain = get(f"{site}/id/no-such-thing", accept="text/turtle")
    assert plain.status_code == 404 and plain.headers["Content-Type"].startswith("text/plain")
    assert get(f"{site}/id/no-such-thing.ttl").status_code == 404


def test_head_answers_without_body(site):
    r = requests.head(f"{site}/id/azerbaijan.ttl", timeout=30)
    assert r.status_code == 200 and r.content == b""


TRAVERSALS = [
    "/id/../../etc/passwd",
    "/id/%2e%2e/%2e%2e/etc/passwd",
    "/id/..%2f..%2f..%2fetc%2fpasswd",
    "/id/..\\..\\etc\\passwd",
    "/id/%5c..%5c..%5cetc%5cpasswd",
    "/id/azerbaijan/../../../etc/passwd",
    "/id/./azerbaijan",
    "/id/azer%00baijan",
    "/id/azer%20baijan",
    "/id/%E2%80%AEazerbaijan",
    "/id/azerbaijan%3E%20%3Fp%20%3Fo%20%7D%20%23",  # '> ?p ?o } #' would rewrite the query
    "/id/azerbaijan/",
    "/static/yasgui/../../pages.py",
    "/static/yasgui/%2e%2e/%2e%2e/pages.py",
    "/static/yasgui/..%2f..%2fpages.py",
    "/ontology.%2e%2e",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_odd_slugs_and_traversal_are_refused(site, path):
    host, port = site.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)  # the path exactly as written
        conn.putheader("Accept", "text/html")
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
    finally:
        conn.close()
    assert resp.status == 404, (path, resp.status)
    assert "root:" not in body and "def entity_view" not in body


# ---------------------------------------------------------------- ontology


def test_ontology_html_documents_every_term(site):
    r = get(f"{site}/ontology")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    html = visible(r.text)
    anchors = {a.get("id") for _, a in Tags(html).tags}
    for name in ONTOLOGY_TERMS:
        assert name in anchors, name
        assert f'href="#{name}"' in html
    for text in ("واقعة", "رأي منسوب", "Count statement", "ما يذكره المقال على أنه واقعة.",
                 "The test ontology", "أنطولوجيا الاختبار", "Terms for the test."):
        assert text in html, text
    # Our IRIs link here, the version IRI too (it answers with the ontology).
    assert 'href="/ontology/0.1.0"' in html and 'href="/ontology#Fact"' in html
    assert 'href="https://creativecommons.org/licenses/by/4.0/"' in html
    # Structure and alignments link to their terms.
    assert 'href="/ontology#Fact"' in html and "rdfs:subClassOf" in html
    assert 'href="http://www.wikidata.org/prop/direct/P580"' in html
    assert "owl:equivalentProperty" in html and "skos:closeMatch" in html
    assert "rdfs:isDefinedBy" in html and 'href="/ontology" title' in html
    # rdfs:range [ owl:unionOf ( time:Instant time:Interval ) ], shown inline.
    assert re.search(r"owl:unionOf.*\( .*time:Instant.*time:Interval.* \)", html, re.S)
    assert "_:" not in html
    assert_self_contained(html)


@pytest.mark.parametrize("media", list(DATA_FORMATS))
def test_ontology_data_is_the_ontology_graph(site, media):
    expected = rdflib.Graph().parse(data=ONTOLOGY, format="turtle")
    for url, accept in ((f"{site}/ontology", media),
                        (f"{site}/ontology.{DATA_FORMATS[media]}", "text/html")):
        r = get(url, accept=accept)
        assert r.status_code == 200
        assert r.headers["Content-Type"].split(";")[0] in (media, SERVED_AS[media])
        got = rdflib.Graph()
        for quad in rdflib.Dataset().parse(data=r.content, format=RDFLIB_FORMATS[media]).quads():
            got.add(quad[:3])
        assert isomorphic(got, expected)


def test_unknown_ontology_extension_is_404(site):
    assert get(f"{site}/ontology.exe").status_code == 404


# ---------------------------------------------------------------- the YASGUI page


def test_index_page_is_yasgui_with_endpoint_and_examples(site):
    r = get(f"{site}/")
    assert r.status_code == 200
    html = r.text
    assert "<title>nam-kg SPARQL</title>" in html
    config_json = re.search(
        r'<script type="application/json" id="namkg-config">(.*?)</script>', html, re.S)
    config = json.loads(config_json.group(1))
    assert config["endpoint"] == "/sparql" and config["base"] == BASE
    assert config["examples"] == EXAMPLES
    for ex in EXAMPLES:
        assert ex["name"] in html
    assert 'dir="rtl"' in html and "حركة عدم الانحياز" in html
    for link in ('href="/ontology"', 'href="/dataset"', 'href="/dumps/nam-kg.ttl"'):
        assert link in html
    assert_self_contained(html)
    scripts = [a["src"] for t, a in Tags(html).tags if t == "script" and "src" in a]
    sheets = [a["href"] for t, a in Tags(html).tags if t == "link" and a.get("rel") == "stylesheet"]
    assert scripts and sheets
    for path in scripts + sheets:
        asset = requests.get(site + path, timeout=30)
        assert asset.status_code == 200 and len(asset.content) > 500, path


def test_example_buttons_read_differently():
    """The repository's examples: no two buttons alike; a Wikidata-model query that asks what
    a competency query asks says which model it queries."""
    import difflib

    from namkg.web.app import load_examples
    from namkg.web.pages import example_name

    examples = load_examples(Path(__file__).resolve().parent.parent)
    names = [example_name(e) for e in examples]
    assert len(names) > 5 and len(set(names)) == len(names)

    def model(name: str) -> bool:
        return "wikidata" in name.lower() or "wdqs" in name.lower()

    for i, a in enumerate(examples):
        for j, b in enumerate(examples[i + 1:], i + 1):
            if difflib.SequenceMatcher(None, a["name"], b["name"]).ratio() > 0.75:
                assert model(names[i]) != model(names[j]), (names[i], names[j])


def test_yasgui_assets_are_the_vendored_files(site):
    static = Path(__file__).resolve().parents[1] / "server/namkg/web/static/yasgui"
    for name in ("yasgui.min.js", "yasgui.min.css", "namkg.css"):
        r = requests.get(f"{site}/static/yasgui/{name}", timeout=30)
        assert r.status_code == 200 and r.content == (static / name).read_bytes()
    assert (static / "LICENSE").exists() and "@zazuko/yasgui" in (static / "README.md").read_text()


def test_example_links_run_without_javascript(site):
    """Each example is also a plain link to the endpoint, which answers it."""
    html = get(f"{site}/").text
    links = [a["href"] for t, a in Tags(html).tags if t == "a" and "data-example" in a]
    assert len(links) == len(EXAMPLES)
    r = requests.get(site + links[0], headers={"Accept": "application/sparql-results+json"},
                     timeout=30)
    rows = r.json()["results"]["bindings"]
    assert {row["fact"]["value"] for row in rows} == {ID + "membership-full"}


def test_sparql_get_from_a_browser_shows_the_ui(site):
    r = get(f"{site}/sparql", accept="text/html,application/xhtml+xml,*/*;q=0.8")
    assert r.status_code == 200 and "<title>nam-kg SPARQL</title>" in r.text


def test_claim_description_names_its_author(site):
    body = get(f"{site}/id/claim-correct-position.ttl").text
    g = rdflib.Graph().parse(data=body, format="turtle")
    claim = rdflib.URIRef(ID + "claim-correct-position")
    assert (claim, rdflib.URIRef("http://www.w3.org/ns/prov#wasAttributedTo"),
            rdflib.URIRef(ID + "hashim-mammadov")) in g


def test_query_errors_become_http_answers(tmp_path):
    """An executor error reaches the client as its status and message, not as a 500 page."""
    build_store(tmp_path / "store")
    config = Config.from_env({}, base_iri=BASE, store=tmp_path / "store")
    executor = Executor(tmp_path / "store", workers=1)
    executor.close()  # every query now fails with 503 "the query executor is closed"
    with serve(make_app(executor, config)) as url:
        for path in ("/id/azerbaijan", "/id/azerbaijan.ttl", "/ontology", "/ontology.nt"):
            r = get(url + path)
            assert r.status_code == 503, path
            assert "closed" in r.text and r.headers["Retry-After"] == "1"
