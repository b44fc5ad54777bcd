"""Pages for people and documents for machines: the YASGUI query page, and every IRI the data
mints under its base: entities (``/id/...``), the ontology and its version IRI, the named
graphs (``/graph/<name>``) and the build (``/build``).

Every page is built at request time from SPARQL over the executor (no hand-written
descriptions). Each document answers as HTML or as RDF in every format rdflib and Comunica
ask for, by ``Accept`` (read by protocol.py's negotiator, the endpoint's own) or by a suffix
(``.html .ttl .nt .n3 .nq .trig .jsonld .rdf``), with ``Vary: Accept``, ``Link`` alternates,
``rel="describedby"`` and ``Content-Location``. The answer is 200 at the document's URL: the
IRIs are minted under ``https://w3id.org/nam-kg/``, whose redirect (303, docs/w3id/.htaccess)
separates the thing from the document about it; see README, "Linked data".

>>> valid_slug("azerbaijan"), valid_slug("a/b.c~d"), valid_slug("../etc"), valid_slug("a\\\\b")
(True, True, False, False)
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyoxigraph as ox
from flask import Response, render_template, request, send_from_directory, url_for
from werkzeug.routing import BuildError

from ..config import Config
from ..iris import GRAPH_NAMES, Iris
from ..query.backend import QueryError
from .discovery import DUMPS
from .endpoint import BUILDS
from .ontology_model import build_ontology_view, labels_from_rows
from .page_models import (
    SEGMENT,
    WELL_KNOWN,
    EntityView,
    Linker,
    Term,
    build_entity_view,
    statement_rows,
)
from .page_queries import about_query, describe_query, own_query
from .protocol import best_offer, media_type, parse_accept, preferred_quality

STATIC = Path(__file__).parent / "static" / "yasgui"  # vendored YASGUI (its README, LICENSE)
HTML = "text/html"
JSON_RESULTS = "application/sparql-results+json"
# Suffix -> media type of each representation; HTML first, then the RDF formats.
SUFFIXES = {
    "html": HTML,
    "ttl": "text/turtle",
    "nt": "application/n-triples",
    "n3": "text/n3",
    "nq": "application/n-quads",
    "trig": "application/trig",
    "jsonld": "application/ld+json",
    "rdf": "application/rdf+xml",
}
DATA_FORMATS = {media: ext for ext, media in SUFFIXES.items() if media != HTML}
FORMAT_NAMES = {
    HTML: "HTML", "text/turtle": "Turtle", "application/n-triples": "N-Triples", "text/n3": "N3",
    "application/n-quads": "N-Quads", "application/trig": "TriG", "application/ld+json": "JSON-LD",
    "application/rdf+xml": "RDF/XML",
}
# N3 is written as Turtle, which is valid N3 (pyoxigraph writes no N3 of its own).
WRITTEN_AS = {"text/n3": "text/turtle"}
# Which RDF format wins when the client accepts several equally (rdflib lists every format it
# parses at q=1): N-Triples, which every parser of the Turtle and N-Quads families reads.
_TIE_ORDER = (ox.RdfFormat.N_TRIPLES, ox.RdfFormat.TURTLE, ox.RdfFormat.JSON_LD,
              ox.RdfFormat.RDF_XML, ox.RdfFormat.TRIG, ox.RdfFormat.N_QUADS)

# Paths under the base that this server answers (our IRIs link here rather than to the base).
def valid_slug(slug: str) -> bool:
    """Only ``[A-Za-z0-9._~-]`` segments joined by ``/``; no empty, ``.`` or ``..`` segment."""
    return all(SEGMENT.fullmatch(s) and s not in (".", "..") for s in slug.split("/"))


def choose(accept: str | None) -> str | None:
    """HTML or the RDF media type the client prefers; None if it takes neither.

    The RDF side is protocol.py's negotiator (pyoxigraph's table of media types: ``text/plain``
    is N-Triples, ``application/json`` JSON-LD, ``text/n3`` Turtle); HTML wins ties, so
    browsers and clients that send no ``Accept`` get the page.

    >>> choose("text/turtle;q=0.9, text/html;q=0.8"), choose(None), choose("image/png")
    ('text/turtle', 'text/html', None)
    >>> choose("text/plain, */*;q=0.1"), choose("application/json"), choose("text/n3")
    ('application/n-triples', 'application/ld+json', 'text/turtle')
    >>> choose("application/rdf+xml, text/n3, text/turtle, application/n-triples, "
    ...        "application/ld+json, application/n-quads, application/trix, application/trig")
    'application/n-triples'
    """
    ranges = parse_accept(accept) or parse_accept("*/*")
    fmt, q = best_offer(ranges, ox.RdfFormat, _TIE_ORDER)
    q_html = preferred_quality(accept, HTML)
    if q_html > 0 and q_html >= q:
        return HTML
    return media_type(fmt) if fmt is not None and q > 0 else None


def example_name(example: dict) -> str:
    """The button text of an example query: its first comment line, tagged when the query is
    written against the Wikidata-shaped view (``queries/wdqs-*.rq``), whose questions echo the
    competency queries' (two buttons would otherwise read alike).

    >>> example_name({"name": "Who chaired it?", "file": "wdqs-chair.rq", "query": ""})
    'Who chaired it? (Wikidata model)'
    """
    name = str(example["name"])
    tagged = any(w in name.lower() for w in ("wdqs", "wikidata"))
    wdqs = str(example.get("file", "")).startswith("wdqs-")
    return f"{name} (Wikidata model)" if wdqs and not tagged else name


def prefers_html(accept: str | None) -> bool:
    """Whether an error should be an HTML page (a browser) rather than plain text.

    >>> prefers_html("text/html,application/xhtml+xml,*/*;q=0.8"), prefers_html("text/turtle")
    (True, False)
    """
    return preferred_quality(accept, HTML) > preferred_quality(accept, "text/plain")


# ---------------------------------------------------------------- queries


class Pages:
    """The views, over one executor; each view is one method."""

    def __init__(self, executor, config: Config, iris: Iris, examples: list[dict]):
        self.executor, self.config, self.iris = executor, config, iris
        self.examples = [{"name": example_name(e), "query": str(e["query"])} for e in examples]
        self.prologue = "\n".join(
            f"PREFIX {p}: <{ns}>" for p, ns in {"nam": iris.vocab, **WELL_KNOWN}.items()
        ) + "\n"

    def select(self, sparql: str) -> list[dict]:
        result = self.run(sparql, solutions_format=JSON_RESULTS, graph_format=None)
        return json.loads(result.body)["results"]["bindings"]

    def construct(self, sparql: str, media: str):
        return self.run(sparql, solutions_format=None, graph_format=WRITTEN_AS.get(media, media))

    def run(self, sparql: str, **formats):
        result = self.executor.query(self.prologue + sparql, **formats)
        builds = request.environ.get(BUILDS)
        if builds is not None:  # the chain keeps a page only if one build answered it all
            builds.append(result.build)
        return result

    def labels(self, iris) -> dict[str, dict[str, str]]:
        """rdfs:label of each IRI, by language ('' for none); one query for all."""
        iris = sorted({i for i in iris if ">" not in i})
        out: dict[str, dict[str, str]] = defaultdict(dict)
        for start in range(0, len(iris), 500):
            values = " ".join(f"<{i}>" for i in iris[start:start + 500])
            rows = self.select(
                f"SELECT ?x ?l WHERE {{ VALUES ?x {{ {values} }} ?x rdfs:label ?l }}")
            for row in rows:
                lang = row["l"].get("xml:lang", "").lower().split("-")[0]
                out[row["x"]["value"]].setdefault(lang, row["l"]["value"])
        return out

    # ------------------------------------------------------------ documents

    def document(self, path: str, ext: str | None, sparql: str, missing: str, html):
        """One document at ``path`` (its URL without a suffix): the representation a suffix
        names, or the one ``Accept`` prefers; RDF from the CONSTRUCT ``sparql``, HTML from
        ``html(jsonld)`` (None when there is nothing to show)."""
        if ext is not None:
            media = SUFFIXES.get(ext)
            if media is None:
                return self.not_found(path + "." + ext)
        else:
            media = choose(request.headers.get("Accept"))
            if media is None:
                return _not_acceptable()
        page = request.script_root + path
        headers = {"Vary": "Accept", "Link": link_header(page, media),
                   "Content-Location": page + "." + _suffix(media)}
        if media != HTML:
            result = self.construct(sparql, media)
            if result.count == 0:
                return self.not_found(missing)
            if result.truncated:
                headers["X-Result-Truncated"] = "true"
            return Response(result.body, headers=headers, content_type=_with_charset(media))
        jsonld = self.construct(sparql, "application/ld+json")
        body = html(_script_safe(jsonld.body) if jsonld.count else None)
        if body is None:
            return self.not_found(missing)
        return Response(body, headers=headers, content_type="text/html; charset=utf-8")

    def doc_triples(self, iri: str, path: str) -> tuple[str, str]:
        """CONSTRUCT template and pattern (a UNION branch) for what the document at ``path``
        says about itself: its topic, its dataset (void:inDataset) and the dataset's licence;
        only when ``iri`` is in the graph, so an unknown IRI stays a 404."""
        doc = request.url_root.rstrip("/") + path
        e, ds = f"<{iri}>", f"<{self.iris.dataset}>"
        topic = "" if doc == iri else f"foaf:primaryTopic {e} ;"
        template = (f"?doc a foaf:Document ; {topic} void:inDataset {ds} ; "
                    f"dcterms:license ?licence .")
        pattern = (f"{{ BIND(<{doc}> AS ?doc) OPTIONAL {{ {ds} dcterms:license ?licence }} "
                   f"FILTER EXISTS {{ {{ {e} ?dp ?do }} UNION {{ ?ds0 ?dp {e} }} }} }}")
        return template, pattern

    def not_found(self, what: str) -> Response:
        return error_response(404, "Not found", f"Not found: {what}")

    # ------------------------------------------------------------ views

    def static(self, filename: str) -> Response:
        """YASGUI's vendored files (``send_from_directory`` refuses paths leaving the folder)."""
        return send_from_directory(STATIC, filename)

    def ui(self) -> Response:
        try:
            endpoint = url_for("sparql")
        except BuildError:  # no SPARQL views mounted (an app of the pages alone)
            endpoint = request.script_root + "/sparql"
        body = render_template(
            "index.html", endpoint=endpoint, examples=self.examples, config=self.config,
            iris=self.iris, dumps=list(DUMPS),
        )
        return Response(body, content_type="text/html; charset=utf-8")

    def entity(self, slug: str) -> Response:
        if not valid_slug(slug):
            return self.not_found("/id/" + slug if len(slug) < 200 else "this IRI")
        stem, dot, ext = slug.rpartition(".")
        if not (dot and ext in SUFFIXES and stem):
            stem, ext = slug, None
        return self.describe(self.iris.entity(stem), "/id/" + stem, ext)

    def build(self, ext: str | None = None) -> Response:
        return self.describe(self.iris.base + "build", "/build", ext)

    def describe(self, iri: str, path: str, ext: str | None) -> Response:
        template, pattern = self.doc_triples(iri, path)
        sparql = describe_query(iri, template, pattern)

        def html(jsonld):
            view = self.entity_view(iri)
            if view is None:
                return None
            return render_template("entity.html", e=view, formats=_format_links(path),
                                   iris=self.iris, jsonld=jsonld)

        return self.document(path, ext, sparql, iri, html)

    def entity_view(self, iri: str) -> EntityView | None:
        # Plain queries only: Virtuoso 7.2 cannot compile a UNION with BIND and a property
        # path (SQ156), so the Fact/Claim subclass closure is computed here.
        own = self.select(own_query(iri, blanks=False))
        blanks = []
        if any(r["o"]["type"] == "bnode" for r in own):  # again, with what the blanks hold
            described = self.select(own_query(iri, blanks=True))
            own = [r for r in described if "b" not in r]
            blanks = [r for r in described if "b" in r]
        about = self.select(about_query(iri))
        incoming = [r for r in about if "p" in r]
        if not own and not incoming:
            return None
        bnodes: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for row in blanks:
            bnodes[row["b"]["value"]].append((row["p"]["value"], row["o"]))
        nodes = statement_rows(iri, own, about, self.iris.vocab)
        mentioned = {iri}
        for row in own + incoming + nodes + blanks:
            mentioned.update(v["value"] for v in row.values() if v["type"] == "uri")
        linker = Linker(self.iris, self.labels(mentioned), bnodes)
        return build_entity_view(iri, own, incoming, nodes, linker)

    def ontology(self, ext: str | None = None) -> Response:
        graph = self.iris.graph("ontology")
        sparql = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}"

        def html(jsonld):
            rows = self.select(f"SELECT ?s ?p ?o WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}")
            if not rows:
                return None
            bnodes: dict[str, list[tuple[str, dict]]] = defaultdict(list)
            for r in rows:
                if r["s"]["type"] == "bnode":
                    bnodes[r["s"]["value"]].append((r["p"]["value"], r["o"]))
            linker = Linker(self.iris, labels_from_rows(rows), bnodes)
            view = build_ontology_view(self.iris, rows, linker)
            return render_template("ontology.html", o=view, formats=_format_links("/ontology"),
                                   iris=self.iris, jsonld=jsonld)

        return self.document("/ontology", ext, sparql, self.iris.ontology, html)

    def ontology_version(self, version: str) -> Response:
        """The ontology's ``owl:versionIRI`` (``/ontology/0.1.0``): the ontology, while that
        is its current version; other versions are not kept (404)."""
        stem, dot, ext = version.rpartition(".")
        if dot and ext in SUFFIXES and stem:
            version, suffix = stem, ext
        else:
            suffix = None
        iri = f"{self.iris.ontology}/{version}"
        graph = self.iris.graph("ontology")
        if not SEGMENT.fullmatch(version) or not self.select(
                f"SELECT ?v WHERE {{ GRAPH <{graph}> {{ <{self.iris.ontology}> owl:versionIRI "
                f"<{iri}> BIND(1 AS ?v) }} }}"):
            return self.not_found(iri)
        return self.ontology(suffix)

    def graph(self, name: str) -> Response:
        """A named graph: its triples as RDF, or in HTML a description (its size and VoID
        statements from the meta graph) with links to its triples in every format."""
        stem, dot, ext = name.rpartition(".")
        if dot and ext in SUFFIXES and stem:
            name, suffix = stem, ext
        else:
            suffix = None
        if name not in GRAPH_NAMES:
            return self.not_found(request.script_root + "/graph/" + name)
        iri, path = self.iris.graph(name), "/graph/" + name
        sparql = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{iri}> {{ ?s ?p ?o }} }}"

        def html(_jsonld):
            rows = self.select(f"SELECT ?p ?o WHERE {{ GRAPH <{self.iris.graph('meta')}> "
                               f"{{ <{iri}> ?p ?o }} }}")
            linker = Linker(self.iris, self.labels({r["p"]["value"] for r in rows}))
            props: dict[str, list[Term]] = {}
            for r in rows:
                props.setdefault(r["p"]["value"], []).append(linker.term(r["o"]))
            described = self.construct(
                f"CONSTRUCT {{ <{iri}> ?p ?o }} WHERE {{ GRAPH <{self.iris.graph('meta')}> "
                f"{{ <{iri}> ?p ?o }} }}", "application/ld+json")
            return render_template(
                "graph.html", name=name, iri=iri, about=GRAPH_ABOUT.get(name, ""),
                rows=[(linker.predicate(p), v) for p, v in sorted(props.items())],
                graphs=GRAPH_NAMES, formats=_format_links(path), iris=self.iris,
                jsonld=_script_safe(described.body) if described.count else None)

        # The meta graph's own description is not in the meta graph: its page shows its
        # triples' links only.
        return self.document(path, suffix, sparql, iri, html)


GRAPH_ABOUT = {
    "ontology": "The ontology: classes and properties with Arabic and English labels.",
    "facts": "What the article states: facts, attributed claims, quotes, the things spoken of.",
    "links": "Links to Wikidata, each with its evidence.",
    "wikidata": "The Wikibase-shaped view derived at build time (wdt:, p:/ps:/pq: statements).",
    "meta": "Build metadata and VoID counts.",
}


def link_header(page: str, served: str) -> str:
    """``Link``: the other representations (``alternate``) and the RDF that describes the
    resource (``describedby``, Turtle).

    >>> link_header("/id/x", "text/html").split(", ")[:2]  # doctest: +NORMALIZE_WHITESPACE
    ['</id/x.ttl>; rel="alternate describedby"; type="text/turtle"',
     '</id/x.nt>; rel="alternate"; type="application/n-triples"']
    """
    links = []
    for ext, media in SUFFIXES.items():
        rels = [] if media == served else ["alternate"]
        if media == "text/turtle":  # also on the Turtle answer itself
            rels.append("describedby")
        if rels:
            links.append(f'<{page}.{ext}>; rel="{" ".join(rels)}"; type="{media}"')
    return ", ".join(links)


def _suffix(media: str) -> str:
    return next(ext for ext, m in SUFFIXES.items() if m == media)


def _format_links(path: str) -> list[tuple[str, str, str]]:
    page = request.script_root + path
    return [(FORMAT_NAMES[m], f"{page}.{ext}", m) for ext, m in SUFFIXES.items() if m != HTML]


def _script_safe(jsonld: bytes) -> str:
    """JSON-LD text safe inside ``<script>``: no ``<`` (so no ``</script>``), still the same
    JSON (``\\u003c`` inside strings, the only place JSON has ``<``)."""
    return jsonld.decode("utf-8").replace("<", "\\u003c")


def _with_charset(media: str) -> str:
    return media if media.endswith("json") else media + "; charset=utf-8"


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status, headers=headers or {},
                    content_type="text/plain; charset=utf-8")


def error_response(status: int, title: str, message: str,
                   headers: dict[str, str] | None = None) -> Response:
    """An error as a page for browsers (they prefer text/html), as text for other clients."""
    if prefers_html(request.headers.get("Accept")):
        body = render_template("error.html", status=status, title=title, message=message,
                               title_ar=ERROR_TITLES_AR.get(status, ""))
        resp = Response(body, status, headers=headers or {},
                        content_type="text/html; charset=utf-8")
    else:
        resp = _plain(status, message, headers)
    resp.vary.add("Accept")
    return resp


ERROR_TITLES_AR = {400: "طلب غير صالح", 404: "غير موجود", 405: "طريقة غير مسموح بها",
                   406: "صيغة غير متاحة", 413: "الطلب كبير جدًا", 500: "خطأ في الخادم",
                   503: "الخدمة مشغولة"}


def _not_acceptable() -> Response:
    offers = ", ".join(SUFFIXES.values())
    return error_response(406, "Not acceptable",
                          f"Not acceptable; this resource is available as {offers}",
                          {"Vary": "Accept"})


def query_error_response(exc: QueryError) -> Response:
    """A failed query (timeout, busy) as an error page or text, with its Retry-After."""
    return error_response(exc.status, "Query failed", exc.message, exc.http_headers())
