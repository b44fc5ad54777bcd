"""SHACL Core evaluated on Oxigraph: each shape compiled into SPARQL over the data store.

pyshacl stays the reference: its own shape and constraint objects are loaded from the shapes
graph, decide every per-value detail it defines in Python (datatypes, patterns, ordering) and
build every result and message, so the results equal pyshacl's. Oxigraph does the graph work
(targets, paths, counts, classes, nested shapes), which is where pyshacl spends its time.

A shape with a target is compiled as a whole or not at all: anything this module does not
translate exactly (sh:closed, property pairs, SHACL-AF expressions and rules, custom components,
non-Violation severities inside logical constraints...) raises :class:`Unsupported`, and
:mod:`namkg.shacl.validation` leaves that shape to pyshacl.

This module owns a shape's focus nodes, its checks (grouped into as few queries as possible) and
their results; what a value must meet, as a SPARQL expression, is :mod:`namkg.shacl.expressions`.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyoxigraph as ox
import pyshacl.constraints.core.cardinality_constraints as card
import pyshacl.constraints.core.other_constraints as other
import pyshacl.constraints.core.shape_based_constraints as shaped
import pyshacl.constraints.core.string_based_constraints as strings
from pyshacl.constraints.sparql.sparql_based_constraints import SPARQLBasedConstraint
from rdflib import BNode, Graph, URIRef
from rdflib.namespace import SH
from rdflib.term import Node

from .expressions import PER_VALUE, SHAPED, Expressions, Unsupported
from .sparql import DataStore, declared_prefixes, make_check, run_check, select_clause
from .terms import SEVERITIES, Violation, node_str, path_string, term_str

_SIMPLE_PATH = re.compile(r"\^?<[^<>]*>")  # a predicate or its inverse: cheap to scan


@dataclass
class Focus:
    """A shape's focus nodes as SPARQL."""

    head: str  # PREFIXes the target queries need
    pattern: str  # a group binding ?this to each focus node once
    test: str  # a group matching when ?this (bound) is a focus node, for EXISTS
    listed: bool  # SPARQL targets: the focus nodes come first


@dataclass
class Check:
    """A condition on each focus node (``path`` None) or each (focus, value) pair: ``bad`` is a
    SPARQL expression true when it fails; ``handle`` gets the failing (focus, value) pairs.
    Checks with the same focus nodes and path share one query."""

    focus: Focus
    path: str | None
    bad: str
    handle: Callable[[list[tuple]], list[Violation]]
    shape: Node


@dataclass
class Task:
    """A query of its own (counts, pairs, sh:sparql) and what makes violations of its rows."""

    focus: Focus
    query: str  # after the focus's PREFIXes
    handle: Callable[[list[dict]], list[Violation]]
    shape: Node


class Engine(Expressions):
    """The checks of shapes with targets, run on the data store; results as pyshacl's."""

    def __init__(self, store: DataStore, sg: Graph, message_graph: Callable[[], Graph]):
        super().__init__(store, sg)
        self._message_graph, self._graph = message_graph, None
        self._described: set[BNode] = set()

    # ------------------------------------------------------------------ entry points

    def top_level(self) -> Iterable:
        """pyshacl's shapes that have targets (the only ones it validates on their own)."""
        for shape in self.shapes.shapes:
            targets = [list(t) for t in shape.target()]
            if any(targets) or (shape.node, SH.target, None) in self.sg:
                yield shape

    def compile(self, shape) -> list[Check | Task]:
        """Every check of a shape with targets, or :class:`Unsupported`."""
        return [] if shape.deactivated else self._checks(shape, self._focus(shape))

    def run(self, work: list[Check | Task]) -> list[Violation]:
        out = []
        groups: dict[tuple, list[Check]] = defaultdict(list)
        for w in work:
            if isinstance(w, Check):
                groups[(w.focus.head, w.focus.pattern, w.path)].append(w)
            elif isinstance(w, _SparqlTask):
                out += w.run()
            else:
                out += w.handle(self._select(w.focus.head + w.query, w.shape))
        for checks in groups.values():
            out += self._run_checks(checks)
        return out

    def _select(self, query: str, shape) -> list[dict]:
        return list(self.st.select(query, shape, custom_functions=self.functions or None))

    def _run_checks(self, checks: list[Check]) -> list[Violation]:
        """One query for checks on the same values: a flag per check."""
        f, path = checks[0].focus, checks[0].path
        flags = " ".join(f"BIND(COALESCE({c.bad}, false) AS ?f{i})" for i, c in enumerate(checks))
        any_flag = " || ".join(f"?f{i}" for i in range(len(checks)))
        names = " ".join(f"?f{i}" for i in range(len(checks)))
        if path is None:
            where = f.pattern
        elif f.listed or not _SIMPLE_PATH.fullmatch(path):
            where = f"{f.pattern} ?this {path} ?v ."
        else:  # values first: few fail, and only those need the focus test
            inner = (f"SELECT DISTINCT ?this ?v {names} WHERE {{ ?this {path} ?v . {flags} "
                     f"FILTER({any_flag}) }}")
            where, flags, any_flag = f"{{ {inner} }}", "", f"EXISTS {{ {f.test} }}"
        value = "?v" if path else ""
        rows = self._select(f"{f.head}SELECT DISTINCT ?this {value} {names} WHERE {{ {where} "
                            f"{flags} FILTER({any_flag}) }}", checks[0].shape)
        out = []
        for i, c in enumerate(checks):
            hits = [(r["this"], r.get("v", r["this"])) for r in rows
                    if r[f"f{i}"].toPython() is True]
            if hits:
                out += c.handle(hits)
        return out

    # ------------------------------------------------------------------ focus nodes

    def _focus(self, shape) -> Focus:
        nodes, classes, implicit, objects_of, subjects_of = (list(t) for t in shape.target())
        if implicit or any(not isinstance(n, URIRef) for n in classes + objects_of + subjects_of):
            raise Unsupported("implicit class target or a non-IRI target")
        parts = [self.instance("?this", c) for c in classes]
        parts += [f"?this <{p}> ?_any ." for p in subjects_of]
        parts += [f"?_any <{p}> ?this ." for p in objects_of]
        if nodes:
            if any(isinstance(n, BNode) for n in nodes):
                raise Unsupported("blank target node")
            parts.append("VALUES ?this { " + " ".join(map(term_str, nodes)) + " }")
        prefixes: dict[str, str] = {}
        targets = list(self.sg.objects(shape.node, SH.target))
        for target in targets:
            selects = list(self.sg.objects(target, SH.select))
            if (len(selects) != 1 or (target, SH.parameter, None) in self.sg
                    or select_clause(str(selects[0])) is None
                    or re.search(r"(?i)\b(PREFIX|BASE)\b", str(selects[0]))):
                raise Unsupported("custom target")
            try:
                own = declared_prefixes(self.sg, target)
            except ValueError as exc:
                raise Unsupported(str(exc)) from None
            if any(prefixes.get(k, v) != v for k, v in own.items()):
                raise Unsupported("conflicting prefixes")
            prefixes.update(own)
            parts.append("{ " + str(selects[0]) + " }")
        head = "".join(f"PREFIX {k}: <{v}>\n" for k, v in prefixes.items())
        union = " UNION ".join("{ " + p + " }" for p in parts)
        return Focus(head, "{ SELECT DISTINCT ?this WHERE { " + union + " } }", union,
                     bool(targets))

    # ------------------------------------------------------------------ results

    def graph(self, *nodes) -> Graph:
        """The data graph pyshacl's messages see: the data's prefixes and, for blank nodes,
        their descriptions (pyshacl prints a blank node's properties)."""
        if self._graph is None:
            self._graph = self._message_graph()
        todo = [n for n in nodes if isinstance(n, BNode) and n not in self._described]
        while todo:
            b = todo.pop()
            if b in self._described:
                continue
            self._described.add(b)
            for q in self.st.store.quads_for_pattern(self.st.ox(b), None, None, None):
                if self.st.graphs is None and not isinstance(q.graph_name, ox.DefaultGraph):
                    continue
                if self.st.graphs is not None and q.graph_name not in self.st.graphs:
                    continue
                o = self.st.rdflib(q.object)
                self._graph.add((b, self.st.rdflib(q.predicate), o))
                if isinstance(o, BNode):
                    todo.append(o)
        return self._graph

    def _result(self, c, focus, value=None, **kw) -> Violation:
        return self.violation(c.make_v_result(self.graph(focus, value), focus, value_node=value,
                                              **kw))

    def violation(self, report) -> Violation:
        """A pyshacl result (text, node, triples) as a :class:`Violation`."""
        _, node, triples = report
        fields, messages = {}, set()
        for s, p, o in triples:
            if s is not node:  # sh:detail results of sh:node
                continue
            o = o[1] if isinstance(o, tuple) else o
            if p == SH.resultMessage:
                messages.add(str(o))
            else:
                fields[p] = o
        path, value = fields.get(SH.resultPath), fields.get(SH.value)
        severity = fields[SH.resultSeverity]
        return Violation(
            focus=node_str(fields[SH.focusNode]),
            path=None if path is None else path_string(self.sg, path),
            value=None if value is None else term_str(value),
            constraint=str(fields[SH.sourceConstraintComponent]),
            shape=node_str(fields[SH.sourceShape]),
            severity=SEVERITIES.get(severity, str(severity)),
            message="; ".join(sorted(messages)),
        )

    def _pyshacl_decides(self, c):
        """Failing pairs of a per-value component: pyshacl evaluates them and makes the
        results (the SPARQL filter may let through more than fails, never less)."""
        def handle(pairs):
            by_focus = defaultdict(set)
            for f, v in pairs:
                by_focus[f].add(v)
            graph = self.graph(*by_focus, *itertools.chain(*by_focus.values()))
            _, reports = c.evaluate(self.executor, graph, dict(by_focus), [])
            return [self.violation(r) for r in reports]
        return handle

    def _each_pair(self, c, **kw):
        return lambda pairs: [self._result(c, f, v, **kw) for f, v in pairs]

    def _each_focus(self, c, **kw):
        return lambda pairs: [self._result(c, f, **kw) for f in dict.fromkeys(f for f, _ in pairs)]

    def _per_row(self, c, **kw):
        return lambda rows: [self._result(c, r["this"], **kw) for r in rows]

    # ------------------------------------------------------------------ a shape's checks

    def _checks(self, shape, focus: Focus) -> list[Check | Task]:
        """Every check of ``shape`` (with its sh:property shapes) on the focus nodes."""
        if shape.deactivated:
            return []
        prop = shape.is_property_shape
        path = self.path(shape) if prop else None
        v = "?v" if prop else "?this"
        node = shape.node
        out: list[Check | Task] = []

        def on_values(bad: str, handle) -> None:
            out.append(Check(focus, path, bad, handle, node))

        def on_focus(bad: str, handle) -> None:
            out.append(Check(focus, None, bad, handle, node))

        for c in self.components(shape):
            if isinstance(c, PER_VALUE):
                on_values(f"!COALESCE({self.ok(c, v, ())}, false)", self._pyshacl_decides(c))
            elif isinstance(c, SHAPED):  # one result per class, shape or list that fails
                for ok in self.shaped(c, v, ()):
                    on_values(f"!COALESCE({ok}, false)", self._each_pair(c))
            elif isinstance(c, card.MinCountConstraintComponent):
                n = int(c.min_count.value)
                if n == 1:
                    on_focus(f"NOT EXISTS {{ ?this {path} {self.var()} }}", self._each_focus(c))
                elif n > 1:
                    out.append(self._count(focus, path, "true", "<", n, c))
            elif isinstance(c, card.MaxCountConstraintComponent):
                n = int(c.max_count.value)
                if n == 0:
                    on_values("true", self._each_focus(c))
                elif n == 1:
                    out.append(Task(focus, self._pairs(
                        focus, path, "!sameTerm(?a, ?b)", ""), self._per_row(c), node))
                else:
                    out.append(self._count(focus, path, "true", ">", n, c))
            elif isinstance(c, strings.UniqueLangConstraintComponent):
                if True in c.string_rules:  # false: pyshacl reports nothing either
                    out.append(Task(focus, self._pairs(
                        focus, path, "!sameTerm(?a, ?b) && isLITERAL(?a) && LANG(?a) != '' && "
                        "LCASE(LANG(?a)) = LCASE(LANG(?b))", "?l", "BIND(LCASE(LANG(?a)) AS ?l)"),
                        self._per_row(c), node))
            elif isinstance(c, other.HasValueConstraintComponent):
                for hv in c.has_value_set:
                    if isinstance(hv, BNode):
                        raise Unsupported("blank sh:hasValue")
                    on_focus(f"NOT EXISTS {{ ?this {path} {term_str(hv)} }}" if prop
                             else f"!sameTerm(?this, {term_str(hv)})", self._each_focus(c))
            elif isinstance(c, shaped.QualifiedValueShapeConstraintComponent):
                out += self._qualified(c, focus, path)
            elif isinstance(c, shaped.PropertyConstraintComponent):
                if prop:
                    raise Unsupported("sh:property of a property shape")
                for p in c.property_shapes:
                    child = self.shape(p)
                    if not child.is_property_shape:
                        raise Unsupported("sh:property to a node shape")
                    out += self._checks(child, focus)
            elif isinstance(c, SPARQLBasedConstraint):
                for constraint in self.sg.objects(node, SH.sparql):
                    check = make_check(self.sg, node, constraint, node)
                    if check is None:
                        raise Unsupported("a sh:sparql constraint pyshacl must run")
                    out.append(_SparqlTask(self, check, focus))
            else:
                raise Unsupported(type(c).__name__)
        return out

    def _pairs(self, focus: Focus, path: str, cond: str, extra: str, bind: str = "") -> str:
        """Focus nodes with two values meeting ``cond`` (sh:maxCount 1, sh:uniqueLang)."""
        if focus.listed or not _SIMPLE_PATH.fullmatch(path):
            return (f"SELECT DISTINCT ?this {extra} WHERE {{ {focus.pattern} ?this {path} ?a . "
                    f"?this {path} ?b . FILTER({cond}) {bind} }}")
        return (f"SELECT ?this {extra} WHERE {{ {{ SELECT DISTINCT ?this {extra} WHERE {{ "
                f"?this {path} ?a . ?this {path} ?b . FILTER({cond}) {bind} }} }} "
                f"FILTER EXISTS {{ {focus.test} }} }}")  # the subquery first: it finds few

    def _count(self, focus: Focus, path: str, ok: str, op: str, n: int, c, **kw) -> Task:
        """Focus nodes with fewer or more than ``n`` values meeting ``ok``."""
        reach = f"?this {path} ?v . FILTER(COALESCE({ok}, false))"
        reach = f"OPTIONAL {{ {reach} }}" if op == "<" else reach
        query = (f"SELECT ?this WHERE {{ {focus.pattern} {reach} }} GROUP BY ?this "
                 f"HAVING (COUNT(DISTINCT ?v) {op} {n})")
        return Task(focus, query, self._per_row(c, **kw), c.shape.node)

    def _qualified(self, c, focus: Focus, path: str) -> list[Check | Task]:
        out: list[Check | Task] = []
        for q in c.value_shapes:
            siblings = set()
            if c.is_disjoint:  # as pyshacl: qualified shapes of the parents' other properties
                for parent in self.sg.subjects(SH.property, c.shape.node):
                    for s in self.sg.objects(parent, SH.property):
                        siblings |= {x for x in self.sg.objects(s, SH.qualifiedValueShape)
                                     if x != q}

            def ok(v, q=q, siblings=siblings):
                return "(" + " && ".join([self.conforms(q, v, ())] + [
                    f"!{self.conforms(s, v, ())}" for s in siblings]) + ")"

            low = SH.QualifiedMinCountConstraintComponent
            if c.max_count is not None:
                out.append(self._count(focus, path, ok("?v"), ">", c.max_count, c,
                                       constraint_component=SH.QualifiedMaxCountConstraintComponent))
            if c.min_count == 1:
                w = self.var()
                out.append(Check(focus, None, f"NOT EXISTS {{ ?this {path} {w} . "
                                 f"FILTER(COALESCE({ok(w)}, false)) }}",
                                 self._each_focus(c, constraint_component=low), c.shape.node))
            elif c.min_count is not None and c.min_count > 1:
                out.append(self._count(focus, path, ok("?v"), "<", c.min_count, c,
                                       constraint_component=low))
        return out

class _SparqlTask:
    """A sh:sparql constraint on the compiled focus nodes (:func:`shacl_sparql.run_check`)."""

    def __init__(self, engine: Engine, check, focus: Focus):
        self.engine, self.check, self.focus = engine, check, focus

    def run(self) -> list[Violation]:
        if not self.focus.head:  # the focus pattern goes into the constraint's own query
            return run_check(self.engine.st, self.check, focus_pattern=self.focus.pattern)
        rows = self.engine.st.select(f"{self.focus.head}SELECT ?this WHERE {{ "
                                     f"{self.focus.pattern} }}", self.check.shape)
        return run_check(self.engine.st, self.check, [r["this"] for r in rows])
