"""What the HTML pages show, made from SPARQL JSON bindings: terms with their labels and
links (:class:`Linker`), an entity's facts, claims and quotes (:func:`build_entity_view`); the
ontology's documentation is :mod:`namkg.web.ontology_model`. No I/O: :mod:`namkg.web.pages` runs
the queries and renders the templates.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

from flask import request

from ..iris import GRAPH_NAMES, Iris

SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")  # one path segment of a slug
_SERVED = re.compile(
    r"id/.+|ontology(/[A-Za-z0-9._~-]+)?(#.*)?|dataset|build|graph/(" + "|".join(GRAPH_NAMES) + ")"
)
_LINKABLE = ("http://", "https://", "mailto:")  # the only IRIs that become links in HTML

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
PROV = "http://www.w3.org/ns/prov#"
OA = "http://www.w3.org/ns/oa#"
DCT = "http://purl.org/dc/terms/"
VOID = "http://rdfs.org/ns/void#"
FOAF = "http://xmlns.com/foaf/0.1/"
WELL_KNOWN = {
    "rdf": RDF,
    "rdfs": RDFS,
    "owl": OWL,
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "skos": SKOS,
    "prov": PROV,
    "oa": OA,
    "org": "http://www.w3.org/ns/org#",
    "time": "http://www.w3.org/2006/time#",
    "dcterms": DCT,
    "schema": "https://schema.org/",
    "foaf": FOAF,
    "vann": "http://purl.org/vocab/vann/",
    "wd": "http://www.wikidata.org/entity/",
    "wdt": "http://www.wikidata.org/prop/direct/",
    "void": VOID,
    "sd": "http://www.w3.org/ns/sparql-service-description#",
}
LABEL, COMMENT, TYPE = RDFS + "label", RDFS + "comment", RDF + "type"


# ---------------------------------------------------------------- terms and links


@dataclass(frozen=True)
class Term:
    """One RDF term from a SPARQL JSON binding, with what a template needs to show it."""

    kind: str  # "uri", "literal" or "bnode"
    value: str
    lang: str = ""
    datatype: str = ""
    href: str = ""  # where a link goes (local path for our IRIs)
    label: str = ""  # English (or other) label, or a CURIE
    label_ar: str = ""
    note: str = ""  # tooltip text beside the IRI (a property's label)
    parts: tuple = ()  # a blank node's (property, value) pairs, shown inline
    items: tuple = ()  # an RDF list's members

    @property
    def rtl(self) -> bool:
        return self.lang.lower().split("-")[0] in ("ar", "fa", "he", "ur")

    @property
    def short_datatype(self) -> str:
        return self.datatype.rsplit("#", 1)[-1] if self.datatype else ""


def curie(iri: str, prefixes: dict[str, str]) -> str:
    """``prefix:local`` for a known namespace, else the IRI.

    >>> curie("http://www.w3.org/ns/prov#Entity", WELL_KNOWN)
    'prov:Entity'
    >>> curie("http://example.org/x", WELL_KNOWN)
    'http://example.org/x'
    """
    for prefix, ns in prefixes.items():
        if iri.startswith(ns) and re.fullmatch(r"[A-Za-z_][\w.-]*", iri[len(ns) :]):
            return f"{prefix}:{iri[len(ns) :]}"
    return iri


class Linker:
    """Turns bindings into Terms: our IRIs link to this server, labels come from ``labels``,
    blank nodes show their ``bnodes`` triples (id -> [(property IRI, binding)]) inline."""

    def __init__(
        self,
        iris: Iris,
        labels: dict[str, dict[str, str]] | None = None,
        bnodes: dict[str, list[tuple[str, dict]]] | None = None,
    ):
        self.iris = iris
        self.labels = labels or {}
        self.bnodes = bnodes or {}
        self.prefixes = {"nam": iris.vocab, "id": iris.base + "id/", **WELL_KNOWN}

    def href(self, iri: str) -> str:
        """A local path for our IRIs that this server answers; other web IRIs as they are."""
        rest = iri[len(self.iris.base) :] if iri.startswith(self.iris.base) else None
        if rest is not None and _SERVED.fullmatch(rest):
            return request.script_root + "/" + rest
        return iri if iri.lower().startswith(_LINKABLE) else ""

    def term(self, binding: dict | None, depth: int = 0) -> Term | None:
        if not binding:
            return None
        kind, value = binding["type"], binding["value"]
        if kind == "uri":
            names = self.labels.get(value, {})
            label = names.get("en") or names.get("") or curie(value, self.prefixes)
            return Term(
                "uri", value, href=self.href(value), label=label, label_ar=names.get("ar", "")
            )
        if kind == "bnode":
            return self.blank(value, depth)
        return Term(
            "literal", value, lang=binding.get("xml:lang", ""), datatype=binding.get("datatype", "")
        )

    def iri(self, iri: str) -> Term:
        return self.term({"type": "uri", "value": iri})

    def blank(self, node: str, depth: int) -> Term:
        pairs = self.bnodes.get(node, []) if depth < 3 else []
        first = [o for p, o in pairs if p == RDF + "first"]
        if first:  # an RDF list: walk rdf:rest
            items, seen, cur = [], set(), node
            while cur and cur not in seen and len(items) < 100:
                seen.add(cur)
                rest = dict(self.bnodes.get(cur, []))
                if RDF + "first" in rest:
                    items.append(self.term(rest[RDF + "first"], depth + 1))
                nxt = rest.get(RDF + "rest", {})
                cur = nxt.get("value") if nxt.get("type") == "bnode" else None
            return Term("bnode", node, label="_:" + node, items=tuple(items))
        parts = tuple((self.predicate(p), self.term(o, depth + 1)) for p, o in pairs)
        return Term("bnode", node, label="_:" + node, parts=parts)

    def predicate(self, iri: str) -> Term:
        """A property shown by its CURIE (exact); its label goes to the tooltip."""
        return Term(
            "uri",
            iri,
            href=self.href(iri),
            label=curie(iri, self.prefixes),
            note=self.labels.get(iri, {}).get("en", ""),
        )


def statement_rows(iri: str, own: list[dict], about: list[dict], vocab: str) -> list[dict]:
    """Rows (``node kind via author quote exact translation sentence``) for the entity and each
    subject pointing at it that is, through ``rdf:type`` and ``rdfs:subClassOf*``, a nam:Fact
    or nam:Claim; a row holds one via, author or quote."""
    fact, claim = vocab + "Fact", vocab + "Claim"
    me = {"type": "uri", "value": iri}
    supers: dict[str, set[str]] = defaultdict(set)
    nodes: dict[str, dict] = {}  # node -> its binding, in order of first mention
    details: dict[str, list[dict]] = defaultdict(list)  # node -> via, author and quote parts
    types: dict[str, set[str]] = defaultdict(set)
    for row in about:
        if "class" in row:
            supers[row["class"]["value"]].add(row["super"]["value"])
            continue
        node = row.get("s", me)
        nodes.setdefault(node["value"], node)
        if "type" in row:
            types[node["value"]].add(row["type"]["value"])
        elif "p" in row:
            details[node["value"]].append({"via": row["p"]})
        else:
            details[node["value"]].append({k: v for k, v in row.items() if k != "s"})
    nodes.setdefault(iri, me)
    for row in own:
        if row["p"]["value"] == TYPE:
            types[iri].add(row["o"]["value"])
        elif row["p"]["value"] == PROV + "wasAttributedTo":
            details[iri].append({"author": row["o"]})
    out = []
    for key, node in nodes.items():
        reached = _superclasses(types[key], supers)
        if claim in reached or fact in reached:
            kind = {"type": "uri", "value": claim if claim in reached else fact}
            out.append({"node": node, "kind": kind})
            out.extend({"node": node, "kind": kind, **part} for part in details[key])
    return out


def _superclasses(classes: set[str], supers: dict[str, set[str]]) -> set[str]:
    """``classes`` and all their superclasses.

    >>> sorted(_superclasses({"a"}, {"a": {"b"}, "b": {"c", "a"}}))
    ['a', 'b', 'c']
    """
    seen, todo = set(), list(classes)
    while todo:
        c = todo.pop()
        if c not in seen:
            seen.add(c)
            todo.extend(supers.get(c, ()))
    return seen


# ---------------------------------------------------------------- entity page model


@dataclass
class Quote:
    iri: Term
    exact: Term | None
    translation: Term | None
    sentence: int | None


@dataclass
class Statement:
    """A fact or claim node that concerns the entity (or is the entity), with its quotes."""

    node: Term
    kind: str  # "Fact" or "Claim"
    via: list[Term] = field(default_factory=list)  # properties by which it points here
    authors: list[Term] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)

    @property
    def first_sentence(self) -> float:
        found = [q.sentence for q in self.quotes if q.sentence is not None]
        return min(found) if found else math.inf


@dataclass
class EntityView:
    term: Term
    types: list[Term]
    same_as: list[Term]
    properties: list[tuple[Term, list[Term]]]
    own: list[Statement]  # when the entity itself is a fact or claim
    about: list[Statement]  # facts and claims that point at it
    incoming: list[tuple[Term, Term]]  # other (subject, property) pointing at it
    quote: Quote | None  # when the entity is a quote


def build_entity_view(iri, own, incoming, nodes, linker: Linker) -> EntityView:
    props: dict[str, list[Term]] = {}
    for row in own:
        props.setdefault(row["p"]["value"], []).append(linker.term(row["o"]))
    order = {TYPE: 0, LABEL: 1, COMMENT: 2, SKOS + "definition": 3, OWL + "sameAs": 4}
    properties = [
        (linker.predicate(p), values)
        for p, values in sorted(props.items(), key=lambda kv: (order.get(kv[0], 9), kv[0]))
    ]
    statements: dict[str, Statement] = {}
    for row in nodes:
        node = row["node"]["value"]
        st = statements.get(node)
        if st is None:
            kind = "Claim" if row["kind"]["value"].endswith("#Claim") else "Fact"
            st = statements[node] = Statement(linker.term(row["node"]), kind)
        if row.get("via"):
            _add_unique(st.via, linker.predicate(row["via"]["value"]))
        _add_unique(st.authors, linker.term(row.get("author")))
        if "quote" in row and not any(q.iri.value == row["quote"]["value"] for q in st.quotes):
            if "exact" in row or "translation" in row:
                st.quotes.append(_quote(row, linker))
    for st in statements.values():
        st.quotes.sort(key=lambda q: math.inf if q.sentence is None else q.sentence)
    me = statements.pop(iri, None)
    about = sorted(statements.values(), key=lambda s: (s.first_sentence, s.node.label))
    pointing = {s.node.value for s in about}
    others = [
        (linker.term(r["s"]), linker.predicate(r["p"]["value"]))
        for r in incoming
        if r["s"]["value"] not in pointing
    ]
    quote = None
    if OA + "exact" in props:
        vocab = linker.iris.vocab
        ex, tr = props[OA + "exact"], props.get(vocab + "translation", [])
        sent = props.get(vocab + "sentence", [])
        quote = Quote(
            linker.iri(iri), ex[0], tr[0] if tr else None, _int(sent[0]) if sent else None
        )
    return EntityView(
        term=linker.iri(iri),
        types=props.get(TYPE, []),
        same_as=props.get(OWL + "sameAs", []),
        properties=properties,
        own=[me] if me else [],
        about=about,
        incoming=others,
        quote=quote,
    )


def _quote(row, linker: Linker) -> Quote:
    sentence = _int(linker.term(row.get("sentence"))) if row.get("sentence") else None
    return Quote(
        linker.term(row["quote"]),
        linker.term(row.get("exact")),
        linker.term(row.get("translation")),
        sentence,
    )


def _int(term: Term | None) -> int | None:
    try:
        return int(term.value) if term else None
    except ValueError:
        return None


def _add_unique(items: list[Term], term: Term | None) -> None:
    if term is not None and all(t.value != term.value for t in items):
        items.append(term)
