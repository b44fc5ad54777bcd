"""Reading Turtle (or ``.nt``) input: into rdflib graphs with every literal as written, or into
an Oxigraph store; unreadable input as :class:`InputError` at ``path:line:col``.

Parsing is Oxigraph's, as for the store that gets built: the same strictness (IRIs are checked),
precise error positions, and it is faster than rdflib's Turtle parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import pyoxigraph as ox
from rdflib import XSD, BNode, Graph, Literal, URIRef
from rdflib.term import Node


class InputError(Exception):
    """Unreadable input: a missing file or a Turtle syntax error, located as ``path:line:col``.

    >>> str(InputError("data/facts.ttl", "Turtle syntax error: x", 12, 5))
    'data/facts.ttl:12:5: Turtle syntax error: x'
    >>> str(InputError("nope.ttl", "no such file"))
    'nope.ttl: no such file'
    """

    def __init__(self, path, message: str, line: int | None = None, col: int | None = None):
        self.path, self.message, self.line, self.col = str(path), message, line, col
        where = self.path if line is None else f"{self.path}:{line}:{col or 1}"
        super().__init__(f"{where}: {message}")


def load_graph(paths: Iterable[Path]) -> Graph:
    """Parse the files into one graph, with their prefixes (for readable shape names)."""
    g = Graph()
    for path in paths:
        _parse_into(g, Path(path))
    return g


def load_store(paths: Iterable[Path]) -> ox.Store:
    """The files in the default graph of an in-memory Oxigraph store (the same parser and errors
    as :func:`load_graph`, without the Python objects: far faster on big inputs)."""
    store = ox.Store()
    for path in map(Path, paths):
        with input_errors(path):
            data = path.read_bytes()
            store.bulk_load(data, format=_format(path), base_iri=path.resolve().as_uri())
        if b"<<" in data:  # perhaps an RDF 1.2 triple term: rejected as load_graph does
            _parse_into(Graph(), path)
    return store


def prefix_graph(paths: Iterable[Path]) -> Graph:
    """An empty graph with the namespace bindings :func:`load_graph` gives (pyshacl's messages
    print IRIs with them)."""
    g = Graph()
    for path in map(Path, paths):
        with input_errors(path), path.open("rb") as f:
            parser = ox.parse(f, format=_format(path), base_iri=path.resolve().as_uri())
            for _ in parser:
                pass
        for prefix, ns in parser.prefixes.items():
            g.bind(prefix, ns, override=False)
    return g


def _format(path: Path) -> ox.RdfFormat:
    return ox.RdfFormat.N_TRIPLES if path.suffix == ".nt" else ox.RdfFormat.TURTLE


@contextmanager
def input_errors(path: Path):
    """Missing files and syntax errors as :class:`InputError` at ``path:line:col``."""
    try:
        yield
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    except SyntaxError as exc:
        why = re.sub(r"^Parser error [^:]*: ", "", str(exc))
        why = re.sub(r" \((?:[^()]*, )?line \d+\)$", "", why)
        raise InputError(path, f"Turtle syntax error: {why}", exc.lineno or 1, exc.offset or 1) \
            from None


def _parse_into(g: Graph, path: Path) -> None:
    with input_errors(path), path.open("rb") as f:
        # Blank node labels are local to their file, as in the store (fresh labels).
        parser = ox.parse(f, format=_format(path), base_iri=path.resolve().as_uri(),
                          rename_blank_nodes=True)
        triples = list(parser)
    for prefix, ns in parser.prefixes.items():  # for readable shape names in reports
        g.bind(prefix, ns, override=False)
    terms: dict = {}  # one rdflib object per distinct term: most terms repeat
    try:
        for t in triples:
            g.add((_term(t.subject, terms), _term(t.predicate, terms), _term(t.object, terms)))
    except TypeError as exc:
        raise InputError(path, str(exc)) from None


def _term(t, cache: dict) -> Node:
    hit = cache.get(t)
    if hit is not None:
        return hit
    if isinstance(t, ox.NamedNode):
        hit = URIRef(t.value)
    elif isinstance(t, ox.BlankNode):
        hit = BNode(t.value)
    elif isinstance(t, ox.Literal):
        # normalize=False: rdflib would rewrite the lexical form of valid typed literals
        # ("01"^^xsd:integer as "1", "1E3"^^xsd:double as "1000.0") and even of some invalid
        # ones ("none"^^xsd:boolean as "false"); literals are judged as written.
        dt = t.datatype.value
        hit = (Literal(t.value, lang=t.language) if t.language
               else Literal(t.value) if dt == str(XSD.string)
               else Literal(t.value, datatype=URIRef(dt), normalize=False))
    else:
        raise TypeError(f"RDF 1.2 triple terms are not supported: {t}")
    cache[t] = hit
    return hit
