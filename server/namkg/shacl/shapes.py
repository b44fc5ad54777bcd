"""What a shapes graph holds, read without validating: its shapes and their readable names,
the shapes validated on their own, the shapes as the spec reads them (``sh:uniqueLang``), and
our lints of shapes that pyshacl would judge wrongly (:func:`lint_shapes`)."""

from __future__ import annotations

from rdflib import RDF, XSD, Graph, Literal, URIRef
from rdflib.namespace import OWL, RDFS, SH
from rdflib.term import Node

from .sparql import select_clause
from .terms import TARGETS, Violation, from_node_str, node_str, path_string, term_str

LINT = "urn:nam-kg:lint:"  # constraint IRIs of our own shapes-graph checks (lint_shapes)


def all_shapes(sg: Graph) -> set[str]:
    """Every shape: declared, targeted, with a path, or referred to by another shape."""
    shapes: set[Node] = set()
    for cls in (SH.NodeShape, SH.PropertyShape):
        shapes.update(sg.subjects(RDF.type, cls))
    for pred in (*TARGETS, SH.path):
        shapes.update(sg.subjects(pred, None))
    for pred in (SH.property, SH.node):
        shapes.update(sg.objects(None, pred))
    return {node_str(s) for s in shapes if not isinstance(s, Literal)}


def targeted(sg: Graph) -> set[str]:
    """The shapes validated on their own: with targets, or implicit class targets."""
    shapes = {s for pred in TARGETS for s in sg.subjects(pred, None)}
    for cls in (RDFS.Class, OWL.Class):
        shapes.update(s for s in sg.subjects(RDF.type, cls)
                      if (s, RDF.type, SH.NodeShape) in sg or (s, RDF.type, SH.PropertyShape) in sg)
    return {node_str(s) for s in shapes if not isinstance(s, Literal)}


_NESTING = (SH.property, SH.node, SH["not"], SH.qualifiedValueShape)
_LISTS = (SH["and"], SH["or"], SH.xone)


def shape_name(sg: Graph, shape: str, depth: int = 0) -> str:
    """IRIs compacted with the shapes file's prefixes; a blank shape named from the shape that
    holds it: ``namsh:S / org:role``, ``namsh:S / sh:or / time:hasEnd``.

    >>> sg = Graph().parse(data='''@prefix sh: <http://www.w3.org/ns/shacl#> .
    ...   @prefix ex: <urn:ex:> . ex:S sh:property [ sh:path [ sh:inversePath ex:p ] ] .''')
    >>> shape_name(sg, node_str(next(sg.subjects(SH.path, None))))
    'ex:S / ^ex:p'
    """
    node = from_node_str(shape)
    if isinstance(node, URIRef):
        return compact_iri(sg, node)
    path = sg.value(node, SH.path)
    own = "" if path is None else " / " + (
        compact_iri(sg, path) if isinstance(path, URIRef)
        else path_string(sg, path, lambda u: compact_iri(sg, u)))
    parent, via = _holder(sg, node)
    if parent is None or depth > 8:
        return shape + own
    hop = "" if via == SH.property else " / " + compact_iri(sg, via)
    return shape_name(sg, node_str(parent), depth + 1) + hop + own


def _holder(sg: Graph, node: Node) -> tuple[Node | None, Node | None]:
    """The shape that refers to ``node`` and by which predicate (the first found)."""
    for pred in _NESTING:
        for parent in sg.subjects(pred, node):
            return parent, pred
    cell = next(sg.subjects(RDF.first, node), None)  # in a list: walk back to its head
    if cell is None:
        return None, None
    while (prev := sg.value(None, RDF.rest, cell)) is not None:
        cell = prev
    for pred in _LISTS:
        for parent in sg.subjects(pred, cell):
            return parent, pred
    return None, None


def compact_iri(g: Graph, iri: URIRef) -> str:
    """A CURIE with the graph's prefixes, else ``<iri>`` (no prefix is made up)."""
    try:
        return g.namespace_manager.curie(iri, generate=False)
    except (KeyError, ValueError):
        return f"<{iri}>"


def as_specified(sg: Graph) -> Graph:
    """The shapes with ``sh:uniqueLang`` only where it is the literal ``true``, the one value
    that activates it (W3C core/property/uniqueLang-002: ``"1"^^xsd:boolean``, equal in value,
    does not); pyshacl and pyshacl-turbo compare values."""
    off = [t for t in sg.triples((None, SH.uniqueLang, None))
           if not (isinstance(t[2], Literal) and t[2].datatype == XSD.boolean
                   and str(t[2]) == "true")]
    if not off:
        return sg
    copy = Graph()
    for prefix, ns in sg.namespaces():
        copy.bind(prefix, ns, override=True)
    copy += sg
    for t in off:
        copy.remove(t)
    return copy


_ORDERING = (SH.lessThan, SH.lessThanOrEquals, SH.minInclusive, SH.minExclusive,
             SH.maxInclusive, SH.maxExclusive)


def lint_shapes(sg: Graph) -> list[Violation]:
    """``sh:select`` queries whose results pyshacl would drop, and ordering constraints on
    ``xsd:gYear`` (pyshacl crashes or flags every value)."""
    out = []
    for shape, c in sg.subject_objects(SH.sparql):
        for query in sg.objects(c, SH.select):
            sel = select_clause(str(query))
            if sel and not sel.star and not (sel.projected & {"this", "value", "path", "failure"}):
                out.append(Violation(
                    node_str(shape), None, None, LINT + "SelectProjectsThis",
                    LINT + "SelectProjectsThis",
                    "Violation", "sh:select projects none of $this, ?value, ?path: pyshacl "
                    "silently drops every result of this query"))
    for pred in _ORDERING:
        for shape, bound in sg.subject_objects(pred):
            gyear = (shape, SH.datatype, XSD.gYear) in sg or (
                isinstance(bound, Literal) and bound.datatype == XSD.gYear)
            if gyear:
                out.append(Violation(
                    node_str(shape), None, term_str(bound), LINT + "GYearOrder",
                    LINT + "GYearOrder", "Violation",
                    f"{compact_iri(sg, pred)} on xsd:gYear is broken in pyshacl (crash or wrong "
                    "results): compare STR() in sh:sparql"))
    return out
