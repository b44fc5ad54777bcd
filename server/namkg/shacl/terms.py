"""The vocabulary every SHACL engine here reports in: a result (:class:`Violation`), the
severities, RDF terms as N-Triples text, SHACL property paths as SPARQL path text (and back),
and the target predicates. Engines and the report writers import it; it imports none of them.

>>> g = Graph().parse(data='''@prefix sh: <http://www.w3.org/ns/shacl#> .
...   <urn:s> sh:path ( [ sh:inversePath <urn:p> ] [ sh:zeroOrMorePath <urn:q> ] ) .''')
>>> path_string(g, g.value(URIRef("urn:s"), SH.path))
'^<urn:p>/<urn:q>*'
>>> path_string(g, URIRef("urn:p"))
'urn:p'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from pyparsing import ParseException
from rdflib import Graph, Literal, URIRef
from rdflib.extras.shacl import SHACLPathError, build_shacl_path, parse_shacl_path
from rdflib.namespace import SH, XSD
from rdflib.paths import AlternativePath, InvPath, MulPath, Path, SequencePath
from rdflib.plugins.sparql.algebra import translatePath, traverse
from rdflib.plugins.sparql.parser import Path as SPARQL_PATH
from rdflib.term import Node
from rdflib.util import from_n3

SEVERITIES = {SH.Violation: "Violation", SH.Warning: "Warning", SH.Info: "Info"}


class ValidationCrash(Exception):
    """The validator itself failed (a pyshacl exception, a malformed shape); names the shape."""

    def __init__(self, message: str, shape: str | None = None, constraint: str | None = None):
        self.shape, self.constraint = shape, constraint
        super().__init__(message)


@dataclass(frozen=True)
class Violation:
    focus: str  # IRI, "_:label" for a blank node, N-Triples form for a literal
    path: str | None  # IRI, or a SPARQL property path for complex paths
    value: str | None  # N-Triples form
    constraint: str  # sh:sourceConstraintComponent IRI
    shape: str  # sh:sourceShape IRI or "_:label"
    severity: str  # "Violation" | "Warning" | "Info"
    message: str

    def sort_key(self) -> tuple:
        return (self.focus, self.path or "", self.constraint, self.message, self.value or "",
                self.shape, self.severity)


def term_str(t: Node) -> str:
    """N-Triples form of a term; ``xsd:string`` is implicit, as in RDF 1.1.

    IRIs and blank nodes are rdflib's ``n3()``; literals are written here: rdflib's
    ``Literal.n3()`` writes one with a line break as a Turtle long string in triple quotes (not
    N-Triples, not one line: 44 of the W3C suite's literals) and ``xsd:string`` explicitly.

    >>> term_str(Literal("2030", datatype=XSD.gYear))
    '"2030"^^<http://www.w3.org/2001/XMLSchema#gYear>'
    >>> term_str(Literal('a "b"\\n', lang="ar")), term_str(Literal("x", datatype=XSD.string))
    ('"a \\\\"b\\\\"\\\\n"@ar', '"x"')
    """
    if not isinstance(t, Literal):
        return t.n3()
    s = '"' + str(t).translate(_NT_ESCAPES) + '"'
    if t.language:
        return f"{s}@{t.language}"
    if t.datatype and t.datatype != XSD.string:
        return f"{s}^^<{t.datatype}>"
    return s


_NT_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def node_str(t: Node) -> str:
    """Focus/shape form: bare IRI, ``_:label`` or an N-Triples literal."""
    return str(t) if isinstance(t, URIRef) else term_str(t)


def from_node_str(s: str) -> Node:
    """Inverse of :func:`term_str` and :func:`node_str`.

    ``<iri>`` and ``_:label`` are rdflib's ``from_n3``; literals are read here: ``from_n3``
    builds them normalized (``"01"^^xsd:integer`` as ``"1"``, ``"none"^^xsd:boolean`` as
    ``"false"``) and drops ``xsd:string``, where results keep literals as written.

    >>> lit = Literal('a "b"\\n\\\\ أ', lang="ar")
    >>> from_node_str(term_str(lit)) == lit, from_node_str("urn:x"), from_node_str("_:b0")
    (True, rdflib.term.URIRef('urn:x'), rdflib.term.BNode('b0'))
    """
    if s.startswith(("_:", "<")):
        return from_n3(s)
    m = _NT_LITERAL.fullmatch(s)
    if m is None:
        return URIRef(s)
    lexical = re.sub(r"\\(.)", lambda e: _NT_UNESCAPES.get(e.group(1), e.group(1)), m.group(1))
    return Literal(lexical, lang=m.group(2), datatype=URIRef(m.group(3)) if m.group(3) else None,
                   normalize=False)


_NT_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"(?:@([A-Za-z0-9-]+)|\^\^<([^>]*)>)?', re.S)


_NT_UNESCAPES = {"n": "\n", "r": "\r"}


def angle(s: str) -> str:
    """IRIs in angle brackets, everything else (paths, blank nodes, literals) as is."""
    return s if s.startswith(("_:", '"', "<", "^", "(")) else f"<{s}>"


def short_name(constraint: str) -> str:
    """
    >>> short_name(str(SH.MinCountConstraintComponent)), short_name("urn:nam-kg:lint:GYearOrder")
    ('MinCount', 'GYearOrder')
    """
    local = re.split(r"[#/:]", constraint)[-1]
    return local.removesuffix("ConstraintComponent") or constraint


# ---------------------------------------------------------------------------- paths
# SHACL path triples <-> rdflib Path objects are rdflib's (rdflib.extras.shacl); Path objects
# <-> SPARQL text: read by rdflib's SPARQL grammar, written here (render_path).


def path_string(g: Graph, node: Node, iri: Callable[[URIRef], str] | None = None) -> str:
    """A SHACL path as a SPARQL property path; a plain predicate as its bare IRI.

    rdflib reads a sequence or alternative nested in another of its kind flattened, the same
    path (none such in the W3C suite); a list of fewer than two paths is refused, as pyshacl
    does.

    >>> g = Graph().parse(data="<urn:s> <urn:path> ( ( <urn:a> <urn:b> ) <urn:c> ) .")
    >>> path_string(g, g.value(URIRef("urn:s"), URIRef("urn:path")))
    '<urn:a>/<urn:b>/<urn:c>'
    """
    if isinstance(node, URIRef):
        return str(node)
    try:
        path = parse_shacl_path(g, node)
    except (SHACLPathError, TypeError) as exc:
        raise ValueError(f"not a SHACL path: {node!r}: {exc}") from None
    return render_path(path, iri)


def render_path(path: URIRef | Path, iri: Callable[[URIRef], str] | None = None,
                min_level: int = 0) -> str:
    """SPARQL text of a path, in parentheses only where the grammar needs them.

    Not rdflib's ``Path.n3()``, which brackets every sequence or alternative inside another
    path (``(<a>/<b>)|<c>``: the one path of the W3C suite where it differs) and no inverse or
    modified path inside another: ``(^<p>)*`` as ``^<p>*``, which reads back as ``^(<p>*)``;
    ``(<p>*)+`` as ``<p>*+`` and ``^(^<p>)`` as ``^^<p>``, which are no SPARQL.

    >>> render_path(read_path("(<a>/<b>)|(^<c>)*"))
    '<a>/<b>|(^<c>)*'
    """
    iri = iri or (lambda u: f"<{u}>")
    # levels of the SPARQL path grammar: 0 alternative, 1 sequence, 2 inverse, 3 modified, 4 IRI
    if isinstance(path, URIRef):
        text, level = iri(path), 4
    elif isinstance(path, SequencePath):
        text, level = "/".join(render_path(p, iri, 2) for p in path.args), 1
    elif isinstance(path, InvPath):
        text, level = "^" + render_path(path.arg, iri, 3), 2
    elif isinstance(path, AlternativePath):
        text, level = "|".join(render_path(p, iri, 1) for p in path.args), 0
    elif isinstance(path, MulPath):
        text, level = render_path(path.path, iri, 4) + path.mod, 3
    else:  # a negated property set, or a prefixed name read without its prefix
        raise ValueError(f"not a SHACL path: {path!r}")
    return f"({text})" if level < min_level else text


@lru_cache(maxsize=4096)  # reports repeat their few paths; the grammar is slow
def read_path(text: str) -> URIRef | Path:
    """A SPARQL property path of full IRIs (as :func:`render_path` writes), by rdflib's
    SPARQL grammar; :class:`ValueError` for anything else.

    >>> read_path("^<urn:p>/<urn:q>*")
    Path(Path(~urn:p) / Path(urn:q*))
    """
    try:
        tree = SPARQL_PATH.parse_string(text, parse_all=True)[0]
    except ParseException as exc:
        raise ValueError(f"not a property path: {text!r}: {exc}") from None
    path = traverse(tree, visitPost=translatePath)
    render_path(path)  # only what a SHACL path can say
    return path


def parse_path(text: str, g: Graph) -> Node:
    """Parse a path written by :func:`path_string` back into SHACL path triples in ``g``
    (rdflib's ``build_shacl_path``).

    >>> g = Graph()
    >>> path_string(g, parse_path("^<urn:p>/<urn:q>*", g)), parse_path("urn:p", g)
    ('^<urn:p>/<urn:q>*', rdflib.term.URIRef('urn:p'))
    """
    if not text.startswith(("<", "^", "(")):
        return URIRef(text)
    return build_shacl_path(read_path(text), g)[0]


TARGETS = (SH.targetClass, SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf, SH.target)
