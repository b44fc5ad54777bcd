"""A shape as SPARQL: the compiler :mod:`namkg.shacl.oxigraph` builds its checks on.

It holds pyshacl's objects for the shapes graph (shapes, their constraint components in
pyshacl's order, paths) and turns what a value must meet into a SPARQL boolean expression:
one component (:meth:`Expressions.ok`), or a whole nested shape (sh:not, sh:and, sh:or,
sh:xone, sh:node, sh:qualifiedValueShape: :meth:`Expressions.conforms`). Per-value checks
pyshacl defines in Python become custom SPARQL functions calling pyshacl's own component on
the value, cached per distinct value. Anything not translated exactly raises
:class:`Unsupported`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pyoxigraph as ox
import pyshacl.constraints.core.cardinality_constraints as card
import pyshacl.constraints.core.logical_constraints as logic
import pyshacl.constraints.core.other_constraints as other
import pyshacl.constraints.core.shape_based_constraints as shaped
import pyshacl.constraints.core.string_based_constraints as strings
import pyshacl.constraints.core.value_constraints as values
import pyshacl.constraints.core.value_range_constraints as ranges
from pyshacl.constraints import CONSTRAINT_PARAMETERS_MAP
from pyshacl.errors import ConstraintLoadWarning
from pyshacl.pytypes import SHACLExecutor
from pyshacl.shapes_graph import ShapesGraph
from rdflib import RDF, XSD, BNode, Graph, Literal, URIRef
from rdflib.namespace import RDFS, SH

from .sparql import DataStore
from .terms import path_string, term_str

TYPE_PATH = f"<{RDF.type}>/<{RDFS.subClassOf}>*"
FN = "urn:x-nam-kg:shacl:fn"  # custom SPARQL functions: FN + number
DUMMY = URIRef("urn:x-nam-kg:shacl:focus")
# Components checked value by value, by pyshacl itself on what the SPARQL filter lets through.
PER_VALUE = (values.NodeKindConstraintComponent, values.DatatypeConstraintComponent,
             strings.PatternConstraintComponent, strings.MinLengthConstraintComponent,
             strings.MaxLengthConstraintComponent, strings.LanguageInConstraintComponent,
             other.InConstraintComponent, ranges.MinInclusiveConstraintComponent,
             ranges.MinExclusiveConstraintComponent, ranges.MaxInclusiveConstraintComponent,
             ranges.MaxExclusiveConstraintComponent)
# Components whose value check is graph work: decided by SPARQL alone.
SHAPED = (values.ClassConstraintComponent, logic.NotConstraintComponent,
          logic.AndConstraintComponent, logic.OrConstraintComponent,
          logic.XoneConstraintComponent, shaped.NodeConstraintComponent)


class Unsupported(Exception):
    """This shape is left to pyshacl."""


class Expressions:
    """pyshacl's view of the shapes graph ``sg`` and SPARQL expressions over ``store``."""

    def __init__(self, store: DataStore, sg: Graph):
        self.st, self.sg = store, sg
        self.shapes = ShapesGraph(sg)
        self.shapes.shapes  # noqa: B018 - loads every shape (errors here: pyshacl says why)
        self.executor = SHACLExecutor(advanced_mode=True)  # spec conformance, as pyshacl's
        self.functions: dict[ox.NamedNode, Callable] = {}
        self._scratch = Graph()  # pyshacl's results for the custom functions, thrown away
        self._vars = itertools.count()
        self._subclasses: dict[URIRef, list] = {}

    # ------------------------------------------------------------------ pyshacl's objects

    def shape(self, node):
        """pyshacl's shape object for ``node``."""
        try:
            return self.shapes.lookup_shape_from_node(node)
        except (KeyError, AttributeError):
            raise Unsupported(f"no shape {node}") from None  # pyshacl reports this itself

    def components(self, shape) -> list:
        """The constraint components pyshacl would evaluate on this shape, in its order."""
        out, seen = [], set()
        for p, _ in self.sg.predicate_objects(shape.node):
            if p == SH.expression:
                raise Unsupported("sh:expression")
            cls = CONSTRAINT_PARAMETERS_MAP.get(p)
            if cls is None or cls in seen:
                continue
            seen.add(cls)
            try:
                out.append(cls(shape))
            except ConstraintLoadWarning:
                continue
            except Exception as exc:  # pyshacl raises it again, with its own wording
                raise Unsupported(str(exc)) from None
        if shape.find_custom_constraints():
            raise Unsupported("custom constraint component")
        return out

    def path(self, shape) -> str:
        """A property shape's path in SPARQL syntax."""
        p = shape.path()
        return f"<{p}>" if isinstance(p, URIRef) else path_string(self.sg, p)

    def var(self) -> str:
        """A variable name no other part of the query uses."""
        return f"?_v{next(self._vars)}"

    # ------------------------------------------------------------------ value checks

    def ok(self, c, v: str, stack: tuple) -> str:
        """A SPARQL expression true when value ``v`` passes component ``c`` (not counts)."""
        if isinstance(c, values.NodeKindConstraintComponent):
            kinds = {SH.BlankNode: "isBLANK", SH.Literal: "isLITERAL", SH.IRI: "isIRI",
                     SH.BlankNodeOrLiteral: "isBLANK isLITERAL", SH.BlankNodeOrIRI: "isBLANK isIRI",
                     SH.IRIOrLiteral: "isIRI isLITERAL"}.get(c.nodekind_rule)
            return "(" + " || ".join(f"{k}({v})" for k in kinds.split()) + ")" if kinds else "false"
        if isinstance(c, strings.LanguageInConstraintComponent):
            return self._language_in(c, v)
        # rdflib rewrites typed literals (""^^xsd:boolean is "false" to pyshacl): their lexical
        # forms are pyshacl's to judge; IRIs and strings are the same to both.
        typed = f"(isLITERAL({v}) && LANG({v}) = '' && DATATYPE({v}) != <{XSD.string}>)"
        if isinstance(c, other.InConstraintComponent):
            terms = [t for t in c.in_vals if not isinstance(t, BNode)]
            same = " || ".join(f"sameTerm({v}, {term_str(t)})" for t in terms) or "false"
            return f"IF({typed}, {self._function(c)}({v}), ({same}))"
        if isinstance(c, strings.MinLengthConstraintComponent):
            n = c.string_rules[0].value
            return "true" if n == 0 else (f"(!isBLANK({v}) && IF({typed}, {self._function(c)}({v}),"
                                          f" STRLEN(STR({v})) >= {n}))")
        if isinstance(c, strings.MaxLengthConstraintComponent):
            n = c.string_rules[0].value
            return (f"(!isBLANK({v}) && IF({typed}, {self._function(c)}({v}), "
                    f"STRLEN(STR({v})) <= {n}))")
        if isinstance(c, values.DatatypeConstraintComponent):
            dt = c.datatype_rule
            if dt == XSD.string:
                return f"(isLITERAL({v}) && DATATYPE({v}) = <{XSD.string}>)"
            if dt == RDF.langString:
                return f"(isLITERAL({v}) && LANG({v}) != '')"
            same = "" if dt in (RDFS.Literal, RDFS.Datatype) else f" && DATATYPE({v}) = <{dt}>"
            return f"(isLITERAL({v}){same} && {self._function(c)}({v}))"
        if isinstance(c, PER_VALUE):  # pattern, ranges: pyshacl's Python decides
            return f"{self._function(c)}({v})"
        if isinstance(c, values.ClassConstraintComponent):
            return "(" + " && ".join(self._has_class(v, r) for r in c.class_rules) + ")"
        if isinstance(c, SHAPED):
            return "(" + " && ".join(self.shaped(c, v, stack)) + ")"
        raise Unsupported(type(c).__name__)

    def _language_in(self, c, v: str) -> str:
        need = set()
        try:
            for lang in self.sg.items(c.string_rules[0]):
                if not isinstance(lang, Literal) or not isinstance(lang.value, str):
                    raise Unsupported("sh:languageIn value")  # pyshacl raises its error
                need.add(str(lang.value).lower())
        except (KeyError, AttributeError, ValueError):
            raise Unsupported("sh:languageIn list") from None
        if "*" in need:
            return f"(isLITERAL({v}) && LANG({v}) != '')"
        # pyshacl: the tag, or its first subtag, in the list (lower case). langMatches is the
        # second for a one-subtag range, and Oxigraph's fast path.
        tests = [f"langMatches(LANG({v}), {term_str(Literal(x))})" if "-" not in x
                 else f"LCASE(LANG({v})) = {term_str(Literal(x))}" for x in sorted(need)]
        # isLITERAL first: LANG() of an IRI is an error, which sh:xone or sh:not would not read
        # as "fails" (found by tests/test_shacl_differential.py).
        return f"(isLITERAL({v}) && ({' || '.join(tests)}))" if tests else "false"

    def _has_class(self, v: str, cls) -> str:
        if not isinstance(cls, URIRef):
            raise Unsupported("non-IRI class")
        return f"EXISTS {{ {self.instance(v, cls)} }}"

    def instance(self, v: str, cls: URIRef) -> str:
        """A pattern matching when ``v`` has type ``cls`` or a subclass (rdfs:subClassOf* in the
        data, as pyshacl): the subclasses listed, which Oxigraph matches faster than the path."""
        if cls not in self._subclasses:
            query = f"SELECT DISTINCT ?c WHERE {{ ?c <{RDFS.subClassOf}>* <{cls}> }}"
            rows = self.st.store.query(query, **self.st.scope())
            self._subclasses[cls] = [r["c"] for r in rows]
        subs = self._subclasses[cls]
        if not all(isinstance(c, ox.NamedNode) for c in subs):
            return f"{v} {TYPE_PATH} <{cls}> ."
        if len(subs) == 1:
            return f"{v} <{RDF.type}> <{cls}> ."
        t = self.var()
        return f"VALUES {t} {{ {' '.join(map(str, subs))} }} {v} <{RDF.type}> {t} ."

    def shaped(self, c, v: str, stack: tuple) -> list[str]:
        """One expression per list or shape pyshacl evaluates separately (one result each)."""
        if isinstance(c, values.ClassConstraintComponent):
            return [self._has_class(v, r) for r in c.class_rules]
        if isinstance(c, logic.NotConstraintComponent):
            return [f"!{self.conforms(n, v, stack)}" for n in c.not_list]
        if isinstance(c, shaped.NodeConstraintComponent):
            for n in c.node_shapes:
                if self.shape(n).is_property_shape:
                    raise Unsupported("sh:node to a property shape")
            return [self.conforms(n, v, stack) for n in c.node_shapes]
        lists = {logic.AndConstraintComponent: "and_list", logic.OrConstraintComponent: "or_list",
                 logic.XoneConstraintComponent: "xone_nodes"}[type(c)]
        out = []
        for lst in getattr(c, lists):
            members = list(self.sg.items(lst))
            if not members:
                raise Unsupported("empty list")
            if isinstance(c, logic.XoneConstraintComponent):  # pyshacl counts a list, not a set
                out.append("((" + " + ".join(f"IF({self.conforms(m, v, stack)}, 1, 0)"
                                              for m in members) + ") = 1)")
            else:
                op = " && " if isinstance(c, logic.AndConstraintComponent) else " || "
                out.append("(" + op.join(self.conforms(m, v, stack) for m in set(members)) + ")")
        return out

    def conforms(self, node, x: str, stack: tuple) -> str:
        """A SPARQL expression true when ``x`` conforms to the shape ``node``."""
        shape = self.shape(node)
        if node in stack or len(stack) > 8:
            raise Unsupported("recursive shapes")
        if shape.deactivated:
            return "true"
        if shape.severity != SH.Violation:  # pyshacl lets a warning pass as conforming
            raise Unsupported("nested shape with a severity other than sh:Violation")
        stack += (node,)
        prop = shape.is_property_shape
        path = self.path(shape) if prop else None
        terms = []

        def each_value(ok_of: Callable[[str], str]) -> str:
            if not prop:
                return ok_of(x)
            v = self.var()
            return f"NOT EXISTS {{ {x} {path} {v} FILTER(!COALESCE({ok_of(v)}, false)) }}"

        def at_least(n: int, cond: Callable[[str], str] = lambda v: "true") -> str:
            vs = [self.var() for _ in range(n)]
            if n > 2:
                raise Unsupported("count above 2 in a nested shape")
            distinct = [f"!sameTerm({a}, {b})" for a, b in itertools.combinations(vs, 2)]
            conds = [f"COALESCE({cond(a)}, false)" for a in vs] + distinct
            return (f"EXISTS {{ {' '.join(f'{x} {path} {a} .' for a in vs)} "
                    f"FILTER({' && '.join(conds)}) }}")

        for c in self.components(shape):
            if isinstance(c, PER_VALUE) or isinstance(c, SHAPED):
                terms.append(each_value(lambda v, c=c: self.ok(c, v, stack)))
            elif isinstance(c, card.MinCountConstraintComponent):
                n = int(c.min_count.value)
                if n > 0:
                    terms.append(at_least(n))
            elif isinstance(c, card.MaxCountConstraintComponent):
                terms.append(f"!{at_least(int(c.max_count.value) + 1)}")
            elif isinstance(c, strings.UniqueLangConstraintComponent) and c.string_rules == {True}:
                a, b = self.var(), self.var()
                terms.append(f"NOT EXISTS {{ {x} {path} {a}, {b} . FILTER(!sameTerm({a}, {b}) && "
                             f"isLITERAL({a}) && LANG({a}) != '' && "
                             f"LCASE(LANG({a})) = LCASE(LANG({b}))) }}")
            elif isinstance(c, other.HasValueConstraintComponent):
                for hv in c.has_value_set:
                    if isinstance(hv, BNode):
                        raise Unsupported("blank sh:hasValue")
                    terms.append(f"EXISTS {{ {x} {path} {term_str(hv)} }}" if prop
                                 else f"sameTerm({x}, {term_str(hv)})")
            elif isinstance(c, shaped.QualifiedValueShapeConstraintComponent) and not c.is_disjoint:
                for q in c.value_shapes:
                    def cond(v, q=q):
                        return self.conforms(q, v, stack)
                    if c.min_count:
                        terms.append(at_least(c.min_count, cond))
                    if c.max_count is not None:
                        terms.append(f"!{at_least(c.max_count + 1, cond)}")
            elif isinstance(c, shaped.PropertyConstraintComponent):
                for p in c.property_shapes:
                    if not self.shape(p).is_property_shape:
                        raise Unsupported("sh:property to a node shape")
                    terms.append(each_value(lambda v, p=p: self.conforms(p, v, stack)))
            else:
                raise Unsupported(f"{type(c).__name__} in a nested shape")
        return "(" + " && ".join(terms) + ")" if terms else "true"

    def _function(self, c) -> str:
        """A custom SPARQL function: pyshacl's component on one value, true if it passes."""
        name = ox.NamedNode(f"{FN}{len(self.functions)}")
        cache: dict = {}
        boolean = ox.NamedNode(str(XSD.boolean))
        yes, no = ox.Literal("true", datatype=boolean), ox.Literal("false", datatype=boolean)

        def check(term):
            hit = cache.get(term)
            if hit is None:
                try:
                    value = {DUMMY: {self.st.rdflib(term)}}
                    ok, _ = c.evaluate(self.executor, self._scratch, value, [])
                except Exception:  # an error in SPARQL: the top-level check asks pyshacl again
                    return None
                hit = cache[term] = yes if ok else no
            return hit

        self.functions[name] = check
        return f"<{name.value}>"
