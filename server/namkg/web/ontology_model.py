"""What the ontology's documentation page shows, made from SPARQL JSON bindings: its metadata,
then each term (labels, comments, structure, alignments) in sections by kind
(:func:`build_ontology_view`). No I/O: :mod:`namkg.web.pages` runs the query and renders the
template.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..iris import Iris
from .page_models import COMMENT, DCT, LABEL, OWL, RDF, RDFS, SKOS, TYPE, Linker, Term

CLASS_TYPES = {OWL + "Class", RDFS + "Class"}
SECTIONS = [  # (title, anchor, rdf:types that put a term there)
    ("Classes", "classes", CLASS_TYPES),
    ("Object properties", "object-properties", {OWL + "ObjectProperty"}),
    ("Datatype properties", "datatype-properties", {OWL + "DatatypeProperty"}),
    ("Annotation properties", "annotation-properties", {OWL + "AnnotationProperty"}),
    ("Other properties", "properties", {RDF + "Property"}),
]
TEXT_PROPS = {LABEL, COMMENT, SKOS + "definition"}
STRUCTURE = [
    RDFS + "subClassOf",
    RDFS + "subPropertyOf",
    OWL + "inverseOf",
    RDFS + "domain",
    RDFS + "range",
    OWL + "disjointWith",
    RDFS + "isDefinedBy",
]
ALIGNMENTS = [
    SKOS + "exactMatch",
    SKOS + "closeMatch",
    SKOS + "broadMatch",
    SKOS + "narrowMatch",
    SKOS + "relatedMatch",
    OWL + "equivalentClass",
    OWL + "equivalentProperty",
    OWL + "sameAs",
    RDFS + "seeAlso",
]


@dataclass
class TermDoc:
    anchor: str
    term: Term
    types: list[Term]
    labels: list[Term]  # Arabic first, then English, then others
    comments: list[Term]  # rdfs:comment and skos:definition, same order
    structure: list[tuple[Term, list[Term]]]
    alignments: list[tuple[Term, list[Term]]]
    other: list[tuple[Term, list[Term]]]


@dataclass
class OntologyView:
    term: Term
    titles: list[Term]
    metadata: list[tuple[Term, list[Term]]]
    sections: list[tuple[str, str, list[TermDoc]]]


def labels_from_rows(rows) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = defaultdict(dict)
    rows = sorted(rows, key=lambda r: r["p"]["value"] != LABEL)  # rdfs:label before a title
    for r in rows:
        if r["p"]["value"] in (LABEL, DCT + "title") and r["o"]["type"] == "literal":
            lang = r["o"].get("xml:lang", "").lower().split("-")[0]
            out[r["s"]["value"]].setdefault(lang, r["o"]["value"])
    return out


def build_ontology_view(iris: Iris, rows, linker: Linker) -> OntologyView:
    by_subject: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["s"]["type"] == "uri":
            by_subject[r["s"]["value"]][r["p"]["value"]].append(r["o"])
    meta = by_subject.pop(iris.ontology, {})
    titles = sorted(
        (linker.term(o) for o in meta.get(DCT + "title", [])), key=lambda t: t.lang != "en"
    )
    first = [
        DCT + "title",
        DCT + "description",
        OWL + "versionIRI",
        OWL + "versionInfo",
        DCT + "license",
        DCT + "creator",
    ]
    metadata = [
        (linker.predicate(p), [linker.term(o) for o in objs])
        for p, objs in sorted(
            meta.items(),
            key=lambda kv: (first.index(kv[0]) if kv[0] in first else len(first), kv[0]),
        )
    ]
    sections: list[tuple[str, str, list[TermDoc]]] = []
    placed: set[str] = set()
    for title, anchor, types in SECTIONS:
        docs = []
        for s in sorted(by_subject):
            objs = by_subject[s]
            if s not in placed and {o["value"] for o in objs.get(TYPE, [])} & types:
                docs.append(_term_doc(iris, s, objs, linker))
                placed.add(s)
        if docs:
            sections.append((title, anchor, docs))
    rest = [
        _term_doc(iris, s, by_subject[s], linker)
        for s in sorted(by_subject)
        if s not in placed and s.startswith(iris.vocab)
    ]
    if rest:
        sections.append(("Other terms", "other-terms", rest))
    return OntologyView(linker.iri(iris.ontology), titles, metadata, sections)


def _term_doc(iris: Iris, iri: str, objs: dict[str, list[dict]], linker: Linker) -> TermDoc:
    anchor = iri[len(iris.vocab) :] if iri.startswith(iris.vocab) else iri.rsplit("#", 1)[-1]
    rank = {"ar": 0, "en": 1}  # the article's language leads

    def texts(preds):
        terms = [linker.term(o) for p in preds for o in objs.get(p, [])]
        return sorted(terms, key=lambda t: rank.get(t.lang, 2))

    def rows_for(preds):
        return [
            (linker.predicate(p), [linker.term(o) for o in objs[p]]) for p in preds if p in objs
        ]

    known = TEXT_PROPS | set(STRUCTURE) | set(ALIGNMENTS) | {TYPE}
    return TermDoc(
        anchor=anchor,
        term=linker.iri(iri),
        types=[linker.term(o) for o in objs.get(TYPE, [])],
        labels=texts([LABEL]),
        comments=texts([COMMENT, SKOS + "definition"]),
        structure=rows_for(STRUCTURE),
        alignments=rows_for(ALIGNMENTS),
        other=rows_for(sorted(p for p in objs if p not in known)),
    )
