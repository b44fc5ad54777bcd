"""The source text and its quotes: the graph is traceable to the article, sentence by sentence."""

from __future__ import annotations

import hashlib
import re

import pytest
from namkg.iris import Iris
from namkg.kg.build import SOURCE_SHA256
from namkg.kg.layout import Sources
from rdflib import Graph, Namespace, URIRef
from rdflib.namespace import RDF, RDFS

from .conftest import REPO

NAM = Namespace("https://w3id.org/nam-kg/ontology#")
OA = Namespace("http://www.w3.org/ns/oa#")
PROV = Namespace("http://www.w3.org/ns/prov#")
DCT = Namespace("http://purl.org/dc/terms/")
SOURCE = REPO / "data" / "source" / "article.ar.txt"
TEXT = SOURCE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def graph() -> Graph:
    g = Graph()
    for path in Sources.of(REPO).all():
        g.parse(path)
    return g


def body_sentences() -> list[str]:
    """The article's body split at full stops, as a reader would count sentences."""
    body = TEXT.split("\n", 2)[2]
    parts = (s.strip().lstrip("،").strip() for s in re.split(r"(?<=\.)", body))
    return [s for s in parts if re.search(r"\w", s)]


def test_source_is_the_published_bytes():
    assert hashlib.sha256(SOURCE.read_bytes()).hexdigest() == SOURCE_SHA256
    assert SOURCE.stat().st_size == 4275
    shared = REPO.parent / "shared" / "source" / "article.ar.txt"
    if shared.exists():
        assert shared.read_bytes() == SOURCE.read_bytes()


def test_every_quote_occurs_verbatim_with_its_context(graph):
    quotes = list(graph.subjects(RDF.type, NAM.Quote))
    assert len(quotes) == 20
    for q in quotes:
        exact = str(graph.value(q, OA.exact))
        prefix = str(graph.value(q, OA.prefix) or "")
        suffix = str(graph.value(q, OA.suffix) or "")
        assert exact in TEXT, q
        assert prefix + exact + suffix in TEXT, f"{q}: prefix/exact/suffix not contiguous"
        assert graph.value(q, OA.exact).language == "ar"
        assert graph.value(q, NAM.translation).language == "en"


def test_every_sentence_yields_a_fact_or_claim(graph):
    used = {str(graph.value(q, OA.exact))
            for s, q in graph.subject_objects(PROV.wasDerivedFrom)
            if (s, RDF.type, NAM.Claim) in graph or _is_fact(graph, s)}
    sentences = body_sentences()
    assert len(sentences) == 18
    for sentence in sentences:
        assert any(sentence in u or u in sentence for u in used), f"no fact or claim: {sentence}"


def _is_fact(graph: Graph, node) -> bool:
    facts = set(graph.transitive_subjects(RDFS.subClassOf, NAM.Fact))
    return any(t in facts for t in graph.objects(node, RDF.type))


def test_title_and_byline_describe_the_article(graph):
    title, byline = TEXT.split("\n")[:2]
    article = URIRef(Iris().entity("article"))
    assert str(graph.value(article, DCT.title)) == title
    author = graph.value(article, DCT.creator)
    assert str(graph.value(author, RDFS.label, default=None)) in byline or any(
        str(label) in byline for label in graph.objects(author, RDFS.label))


def test_every_entity_has_arabic_and_english_labels(graph):
    base = Iris().base
    subjects = {s for s in graph.subjects() if isinstance(s, URIRef) and str(s).startswith(base)}
    assert len(subjects) > 50
    for s in subjects:
        langs = {label.language for label in graph.objects(s, RDFS.label)}
        assert {"ar", "en"} <= langs, f"{s} lacks labels: {langs}"


def test_claims_are_attributed_and_never_facts(graph):
    claims = set(graph.subjects(RDF.type, NAM.Claim))
    assert len(claims) >= 10
    for c in claims:
        assert graph.value(c, PROV.wasAttributedTo) == URIRef(Iris().entity("hashim-mammadov"))
        assert not _is_fact(graph, c)
