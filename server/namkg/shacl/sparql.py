"""``sh:sparql`` constraints evaluated on Oxigraph, as pyshacl evaluates them.

Both engines use this: :mod:`namkg.shacl.oxigraph` for the shapes it compiles, and
:mod:`namkg.shacl.validation` for the constraints of the shapes it leaves to pyshacl, which it takes
out of pyshacl's copy of the shapes graph (:func:`plan_checks`). A constraint is run
once for all focus nodes (joined in, or bound by VALUES) instead of once per node.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pyoxigraph as ox
from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, URIRef
from rdflib.collection import Collection
from rdflib.namespace import OWL, SH
from rdflib.term import Node

from .terms import (
    SEVERITIES,
    TARGETS,
    ValidationCrash,
    Violation,
    node_str,
    path_string,
    term_str,
)


@dataclass
class _Check:
    """One offloadable ``sh:sparql`` constraint and where its focus nodes come from."""

    shape: Node
    constraint: Node
    targets_of: Node  # the shape itself, or the node shape owning it via sh:property
    query: str  # PREFIXes + select with $PATH substituted
    messages: list[str]  # the constraint's and the shape's sh:message
    severity: Node
    path: Node | None  # the shape's sh:path (None for a node shape)
    path_str: str | None


@dataclass
class _Select:
    star: bool
    projected: set[str]
    insert_at: int  # where a projected variable may be inserted (after SELECT [DISTINCT])
    brace: int  # the outermost group's "{"


_TOKEN = re.compile(
    r'#[^\n]*|"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^\'\\]|\\.|\'(?!\'\'))*\'\'\''
    r'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|<[^<>"{}|^`\\\x00-\x20]*>'
    r"|[?$][A-Za-z0-9_]+|[A-Za-z_][\w-]*|\S"
)


def select_clause(query: str) -> _Select | None:
    """Locate the SELECT clause and the first "{" of a query, skipping IRIs, strings, comments.

    >>> s = select_clause("PREFIX ex: <http://e/#> SELECT DISTINCT ?value (STR(?x) AS ?s) {}")
    >>> s.star, sorted(s.projected), s.brace
    (False, ['s', 'value'], 63)
    """
    sel, depth, first, prev = None, 0, False, ""
    for m in _TOKEN.finditer(query):
        tok, up = m.group(), m.group().upper()
        if tok.startswith("#"):
            continue
        if sel is None:
            if up == "SELECT":
                sel, first = _Select(False, set(), m.end(), -1), True
            continue
        if tok == "{":
            sel.brace = m.start()
            return sel
        if depth >= 0:  # still in the projection
            if first and up in ("DISTINCT", "REDUCED"):
                sel.insert_at = m.end()
            elif tok == "(":
                depth += 1
            elif tok == ")":
                depth -= 1
            elif tok == "*" and depth == 0:
                sel.star = True
            elif tok[0] in "?$" and (depth == 0 or prev == "AS"):
                sel.projected.add(tok[1:])
            elif up in ("WHERE", "FROM") and depth == 0:
                depth = -1  # projection over
        first, prev = False, up
    return None


def plan_checks(sg: Graph) -> list[_Check]:
    """The sh:sparql constraints whose results pyshacl reports directly for a targeted shape.

    Everything else (shapes reached through sh:node/sh:and/..., shared property shapes, implicit
    class targets, custom targets, $shapesGraph, nested SELECT, deactivated) stays in pyshacl.
    """
    refs = Counter()
    for pred in (SH.property, SH.node, SH.qualifiedValueShape, SH["not"]):
        refs.update(sg.objects(None, pred))
    for pred in (SH["and"], SH["or"], SH.xone):
        for lst in sg.objects(None, pred):
            refs.update(Collection(sg, lst))

    def top_level(s: Node) -> bool:
        explicit_targets = any((s, t, None) in sg for t in TARGETS)
        implicit_class = any((s, RDF.type, c) in sg for c in (RDFS.Class, OWL.Class))
        return (explicit_targets and not refs[s] and not implicit_class and not _deactivated(sg, s)
                and all(_sparql_target(sg, t) is not None for t in sg.objects(s, SH.target)))

    checks = []
    for shape, c in sg.subject_objects(SH.sparql):
        parents = list(sg.subjects(SH.property, shape))
        if top_level(shape):
            source = shape
        elif (len(parents) == 1 and refs[shape] == 1 and top_level(parents[0])
              and (parents[0], SH.path, None) not in sg and (shape, SH.path, None) in sg
              and not any((shape, t, None) in sg for t in TARGETS)):
            source = parents[0]
        else:
            continue
        check = make_check(sg, shape, c, source)
        if check is not None:
            checks.append(check)
    return checks


def make_check(sg: Graph, shape: Node, c: Node, source: Node) -> _Check | None:
    selects = list(sg.objects(c, SH.select))
    messages = list(sg.objects(c, SH.message)) + list(sg.objects(shape, SH.message))
    if (len(selects) != 1 or not isinstance(selects[0], Literal) or _deactivated(sg, c)
            or _deactivated(sg, shape)
            or not all(isinstance(m, Literal) and isinstance(m.value, str) for m in messages)):
        return None
    query, path = str(selects[0]), sg.value(shape, SH.path)
    if not _offloadable(query, path is not None):
        return None
    if path is not None:  # $PATH is substituted, as pyshacl does
        p = path_string(sg, path)
        p = f"<{p}>" if isinstance(path, URIRef) else p
        query = re.sub(r"([\s{}()])[$?]PATH\b", lambda m: m.group(1) + p, query)
    try:
        prefixes = declared_prefixes(sg, c)
    except ValueError:
        return None
    head = "".join(f"PREFIX {k}: <{v}>\n" for k, v in prefixes.items())
    return _Check(shape, c, source, head + query, [str(m) for m in messages],
                  sg.value(shape, SH.severity) or SH.Violation, path,
                  None if path is None else path_string(sg, path))


def _offloadable(query: str, has_path: bool) -> bool:
    """Queries pyshacl rejects or pre-binds beyond $this stay with pyshacl (same errors)."""
    words = {w.upper() for w in re.findall(r"[A-Za-z]+", query)}
    # One query for all focus nodes differs from one per node where solutions get counted.
    per_node = not (words & {"COUNT", "SUM", "MIN", "MAX", "AVG", "SAMPLE", "GROUP", "HAVING"}) \
        or re.search(r"(?i)\bGROUP\s+BY\b[^{}]*[?$]this\b", query)
    return per_node and not (
        words & {"MINUS", "VALUES", "SERVICE", "LIMIT", "OFFSET"}
        or len(re.findall(r"(?i)\bSELECT\b", query)) != 1  # nested SELECT
        or re.search(r"[?$](shapesGraph|currentShape)\b", query)
        or re.search(r"(?i)\bAS\s+[?$]this\b", query)
        or (not has_path and re.search(r"[?$]PATH\b", query))
        or select_clause(query) is None
    )


def _deactivated(sg: Graph, node: Node) -> bool:
    return any(v.toPython() is True for v in sg.objects(node, SH.deactivated)
               if isinstance(v, Literal))


def declared_prefixes(sg: Graph, node: Node) -> dict[str, str]:
    """sh:prefixes of a SPARQL-based constraint or target, resolved as pyshacl does."""
    out = {"rdf": str(RDF), "rdfs": str(RDFS), "owl": str(OWL)}
    onts = set(sg.subjects(RDF.type, OWL.Ontology))
    everywhere = {d for o in onts for d in sg.objects(o, SH.declare)}
    for p in sg.objects(node, SH.prefixes):
        own = set(sg.objects(p, SH.declare))
        for dec in own if (own and p in onts) else own | everywhere:
            prefix, ns = list(sg.objects(dec, SH.prefix)), list(sg.objects(dec, SH.namespace))
            if len(prefix) != 1 or len(ns) != 1:
                raise ValueError(f"sh:declare {dec} needs one sh:prefix and one sh:namespace")
            out[str(prefix[0])] = str(ns[0])
    return out


def _sparql_target(sg: Graph, target: Node) -> str | None:
    """The query of a SHACL-AF ``sh:SPARQLTarget`` (other custom targets: None)."""
    selects = list(sg.objects(target, SH.select))
    if len(selects) != 1 or (target, SH.parameter, None) in sg:
        return None
    try:
        head = "".join(f"PREFIX {k}: <{v}>\n" for k, v in declared_prefixes(sg, target).items())
    except ValueError:
        return None
    return head + str(selects[0])


def without_checks(sg: Graph, checks: list[_Check]) -> Graph:
    copy = Graph()
    for prefix, ns in sg.namespaces():
        copy.bind(prefix, ns, override=True)
    for t in sg:
        copy.add(t)
    for check in checks:
        copy.remove((check.shape, SH.sparql, check.constraint))
    return copy


def without_targets(sg: Graph, shapes: list[Node]) -> Graph:
    """A copy of the shapes graph in which ``shapes`` are no longer validated on their own."""
    copy = Graph()
    for prefix, ns in sg.namespaces():
        copy.bind(prefix, ns, override=True)
    done = set(shapes)
    for t in sg:
        if not (t[0] in done and t[1] in TARGETS):
            copy.add(t)
    return copy


class DataStore:
    """Data in an Oxigraph store (the union of ``graphs``; None: its default graph), with term
    conversion both ways."""

    def __init__(self, store: ox.Store, graphs: list[ox.NamedNode] | None = None):
        self.store, self.graphs = store, graphs
        self.to_ox: dict[BNode, ox.BlankNode] = {}
        self.from_ox: dict[str, BNode] = {}
        self.native = True  # blank nodes keep their labels both ways

    @classmethod
    def of_graph(cls, g: Graph) -> DataStore:
        st = cls(ox.Store())
        st.native = False
        try:
            st.store.extend(ox.Quad(*map(st.ox, t)) for t in g)
        except ValueError as exc:
            raise ValidationCrash(f"oxigraph engine cannot load the data: {exc}") from exc
        return st

    def ox(self, t: Node):
        if isinstance(t, URIRef):
            return ox.NamedNode(str(t))
        if isinstance(t, BNode):
            if self.native and t not in self.to_ox:
                return ox.BlankNode(str(t))
            if t not in self.to_ox:  # fresh labels: rdflib's may not be valid in Oxigraph
                self.to_ox[t] = b = ox.BlankNode()
                self.from_ox[b.value] = t
            return self.to_ox[t]
        if t.language:
            return ox.Literal(str(t), language=t.language)
        if t.datatype:
            return ox.Literal(str(t), datatype=ox.NamedNode(str(t.datatype)))
        return ox.Literal(str(t))

    def rdflib(self, t) -> Node:
        if isinstance(t, ox.NamedNode):
            return URIRef(t.value)
        if isinstance(t, ox.BlankNode):
            return self.from_ox.get(t.value) or BNode(t.value)
        if t.language:
            return Literal(t.value, lang=t.language)
        if t.datatype.value == str(XSD.string):
            return Literal(t.value)
        return Literal(t.value, datatype=URIRef(t.datatype.value))

    def scope(self) -> dict:
        """The query arguments that make the data the default graph."""
        return {} if self.graphs is None else {"default_graph": self.graphs}

    def select(self, query: str, shape: Node, **kw) -> Iterator[dict[str, Node]]:
        try:
            solutions = self.store.query(query, **kw, **self.scope())
        except (SyntaxError, OSError) as exc:
            raise ValidationCrash(f"Oxigraph failed in shape {node_str(shape)}: {exc}\n{query}",
                                  node_str(shape), str(SH.SPARQLConstraintComponent)) from exc
        names = [v.value for v in solutions.variables]
        for s in solutions:
            yield {n: self.rdflib(s[n]) for n in names if s[n] is not None}


def _focus_nodes(sg: Graph, dg: Graph, store: DataStore, shape: Node) -> list[Node]:
    nodes: set[Node] = set(sg.objects(shape, SH.targetNode))
    for cls in sg.objects(shape, SH.targetClass):
        for sub in dg.transitive_subjects(RDFS.subClassOf, cls):
            nodes.update(dg.subjects(RDF.type, sub))
    for p in sg.objects(shape, SH.targetSubjectsOf):
        nodes.update(dg.subjects(p, None))
    for p in sg.objects(shape, SH.targetObjectsOf):
        nodes.update(dg.objects(None, p))
    for target in sg.objects(shape, SH.target):
        nodes.update(row["this"] for row in store.select(_sparql_target(sg, target), shape)
                     if "this" in row)
    return sorted(nodes, key=term_str)


_CHUNK = 5000  # focus nodes per VALUES block


def run_checks(dg: Graph, sg: Graph, checks: list[_Check],
                       store: DataStore | None = None) -> list[Violation]:
    """The planned checks on ``store`` (the data), by default a copy of ``dg`` made after
    pyshacl ran in place: SHACL-AF rule output included."""
    if not checks:
        return []
    store = store or DataStore.of_graph(dg)
    focus_cache: dict[Node, list[Node]] = {}
    out = []
    for check in checks:
        if check.targets_of not in focus_cache:
            focus_cache[check.targets_of] = _focus_nodes(sg, dg, store, check.targets_of)
        out += run_check(store, check, focus_cache[check.targets_of])
    return out


def run_check(store: DataStore, check: _Check, focus: list[Node] = (),
               focus_pattern: str | None = None) -> list[Violation]:
    """Evaluate one constraint for all focus nodes at once, mirroring pyshacl's results.

    The focus nodes are a list or a group pattern binding ``?this`` (no prefixes needed).
    """
    q = check.query
    sel = select_clause(q)
    # pyshacl only sees $this in a row when the query projects it; we always need it.
    this_projected = "this" in sel.projected or (sel.star and re.search(r"[?$]this\b", q))
    if not sel.star and "this" not in sel.projected:
        q = q[: sel.insert_at] + " ?this" + q[sel.insert_at:]
        sel = select_clause(q)
    rows: list[dict[str, Node]] = []
    if focus_pattern is not None:
        rows += store.select(f"{q[: sel.brace + 1]} {focus_pattern} {q[sel.brace + 1:]}",
                             check.shape)
    plain = [f for f in focus if not isinstance(f, BNode)]  # blank nodes cannot go in VALUES
    for i in range(0, len(plain), _CHUNK):
        values = " ".join(term_str(f) for f in plain[i: i + _CHUNK])
        rows += store.select(f"{q[: sel.brace + 1]} VALUES ?this {{ {values} }} "
                             f"{q[sel.brace + 1:]}", check.shape)
    for b in (f for f in focus if isinstance(f, BNode)):
        rows += ({**r, "this": b} for r in store.select(
            q, check.shape, substitutions={ox.Variable("this"): store.ox(b)}))
    out, seen = [], set()
    node_shape = check.path is None
    for row in rows:
        f = row["this"] if this_projected else row.pop("this")
        result_val = f if node_shape else None
        if row.pop("failure", None) is not None:
            if ("failure", f) in seen:
                continue
            seen.add(("failure", f))
            out.append(_violation(check, f, result_val, None, row))
            continue
        p, v, t = row.pop("path", None), row.pop("value", None), row.pop("this", None)
        key = (f, t, p, v, frozenset(row.items()))
        if (p is None and v is None and t is None) or key in seen:
            continue
        seen.add(key)
        v = result_val if v is None else v
        pinned = (("this", t), ("path", p), ("value", v))
        bound = {**row, **{k: x for k, x in pinned if x is not None}}
        out.append(_violation(check, t or f, v, p, bound))
    return out


def _violation(check: _Check, focus: Node, value, path, bound: dict[str, Node]) -> Violation:
    messages = set()
    for m in check.messages:
        for var, val in bound.items():
            m = re.sub(r"\{[?$]" + re.escape(var) + r"\}", lambda _, v=str(val): v, m)
        messages.add(m)
    return Violation(
        focus=node_str(focus),
        path=check.path_str if path is None else node_str(path),
        value=None if value is None else term_str(value),
        constraint=str(SH.SPARQLConstraintComponent),
        shape=node_str(check.shape),
        severity=SEVERITIES.get(check.severity, str(check.severity)),
        message="; ".join(sorted(messages)),
    )
