"""The engines that judge data against shapes (:data:`ENGINES`, why each: see
:mod:`namkg.shacl.validation`) behind one call, :func:`judge`, and the results of a
``sh:ValidationReport`` graph as :class:`~namkg.shacl.terms.Violation`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import pyshacl
import pyshacl_turbo
from pyshacl.constraints.constraint_component import ConstraintComponent
from rdflib import RDF, Graph
from rdflib.namespace import SH
from rdflib.term import XSDToPython, _toPythonMapping

from . import oxigraph as sx
from .shapes import as_specified, targeted
from .sparql import DataStore, plan_checks, run_checks, without_checks, without_targets
from .terms import (
    SEVERITIES,
    ValidationCrash,
    Violation,
    node_str,
    path_string,
    short_name,
    term_str,
)

ENGINES = ("pyshacl-turbo", "pyshacl", "oxigraph")  # the first is the default
DEFAULT_ENGINE = ENGINES[0]


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}: {engine!r}")


@contextmanager
def rdflib_default_datatypes():
    """Run with rdflib's own literal conversions, restoring the caller's afterwards.

    owlrl (pyshacl's RDFS/OWL inference) swaps in its own conversions for the whole process and
    never swaps back, after which xsd:gYear literals order and pyshacl's results change
    (tests/test_validation_reports.py::test_results_do_not_depend_on_owlrl_having_run).
    rdflib has no public way to read or reset the table, hence its private ``_toPythonMapping``;
    a literal takes its value when made, so this must hold while the data are parsed too.
    Process-wide while it holds: validations in concurrent threads would see each other's.
    """
    saved = dict(_toPythonMapping)
    _toPythonMapping.clear()
    _toPythonMapping.update(XSDToPython)
    try:
        yield
    finally:
        _toPythonMapping.clear()
        _toPythonMapping.update(saved)


def judge(data: Graph, shapes: Graph, engine: str = DEFAULT_ENGINE
          ) -> tuple[list[Violation], dict[str, str]]:
    """The results of ``engine`` on parsed graphs, and which engine judged which shape (the
    same for all but ``oxigraph``). Blank nodes keep their labels, literals their form; except
    that the ``oxigraph`` engine judges literals as Oxigraph stores them (canonical)."""
    check_engine(engine)
    shapes = as_specified(shapes)
    with rdflib_default_datatypes():
        if engine == "oxigraph":
            return judge_store(DataStore.of_graph(data), shapes, lambda: data, lambda: data)
        if engine == "pyshacl-turbo":
            try:
                found = run_turbo(data, shapes, "none")
            except ValidationCrash:
                # The reference decides: its results, or its error (which names the shape).
                engine, found = "pyshacl", run_pyshacl(data, shapes, "none")
        else:
            found = run_pyshacl(data, shapes, "none")
    return found, {s: engine for s in targeted(shapes)}


def judge_store(st: DataStore, sg: Graph, rdflib_data: Callable[[], Graph],
                prefixes: Callable[[], Graph]) -> tuple[list[Violation], dict[str, str]]:
    """The ``oxigraph`` engine: compiled shapes on the store; the shapes it cannot compile by
    pyshacl on an rdflib copy of the data (made once, if needed)."""

    data = None

    def once() -> Graph:
        nonlocal data
        if data is None:
            data = rdflib_data()
        return data

    engine, top = None, []
    if (None, SH.rule, None) not in sg:  # SHACL-AF rules add data first: all to pyshacl
        try:
            engine = sx.Engine(st, sg, prefixes)
            top = list(engine.top_level())
        except Exception:  # pyshacl cannot load these shapes: let it say why
            engine = None
    tasks, compiled, left = [], [], engine is None
    for shape in top:
        try:
            tasks += engine.compile(shape)
            compiled.append(shape.node)
        except sx.Unsupported:
            left = True
    found = []
    if left:
        rest = without_targets(sg, compiled)
        checks = plan_checks(rest)
        found += run_pyshacl(once(), without_checks(rest, checks), "none")
        found += run_checks(once(), rest, checks, st if engine else None)
    if engine is not None:
        found += engine.run(tasks)
    judged = {s: "pyshacl" for s in targeted(sg)}
    judged.update({node_str(s): "oxigraph" for s in compiled})
    return found, judged


# Every result is reported whatever these say; but allowing warnings would also make a node
# with only Warning results conform to a shape inside sh:or, sh:not, sh:node... where the spec
# says it does not (any result means non-conformance).
_STRICT = {"allow_warnings": False, "allow_infos": False}


def run_pyshacl(data: Graph, shapes: Graph, inference: str) -> list[Violation]:
    try:
        _, result, _ = pyshacl.validate(
            data, shacl_graph=shapes, advanced=True, inference=inference, inplace=True,
            **_STRICT,
        )
    except Exception as exc:
        raise _crash(exc) from exc
    if isinstance(result, BaseException):  # pyshacl returns its ValidationFailure as the report
        raise _crash(result) from result
    return violations_from_graph(result)


def run_turbo(data: Graph, shapes: Graph, inference: str) -> list[Violation]:
    """pyshacl-turbo: pyshacl's ``validate()`` in Rust; it reads the rdflib terms as they are
    (literals exactly as written) and its reports are pyshacl's but for default messages."""

    try:
        _, result, _ = pyshacl_turbo.validate(  # not inplace: a crash must leave data intact
            data, shacl_graph=shapes, advanced=True, inference=inference, inplace=False,
            **_STRICT,
        )
    except Exception as exc:
        raise ValidationCrash(f"pyshacl-turbo failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, BaseException):  # as pyshacl: its ValidationFailure as the report
        raise ValidationCrash(f"pyshacl-turbo failed: {type(result).__name__}: {result}") \
            from result
    return violations_from_graph(result)


def _crash(exc: BaseException) -> ValidationCrash:
    """Name the innermost shape and constraint component pyshacl was evaluating."""

    shape = constraint = None
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, ConstraintComponent):
            shape, constraint = owner.shape.node, str(owner.shacl_constraint_component)
        elif isinstance(owner, pyshacl.Shape):
            shape = owner.node
        tb = tb.tb_next
    where = "" if shape is None else f" in shape {node_str(shape)}"
    if constraint:
        where += f" ({short_name(constraint)})"
    hint = ""
    if "not supported between instances of 'Literal'" in str(exc):
        hint = " (typed literals that pyshacl cannot order, e.g. xsd:gYear: compare STR())"
    return ValidationCrash(
        f"pyshacl failed{where}: {type(exc).__name__}: {exc}{hint}",
        None if shape is None else node_str(shape), constraint,
    )


def violations_from_graph(g: Graph) -> list[Violation]:
    """The top-level results of a ``sh:ValidationReport`` graph (nested sh:detail ignored)."""
    out = []
    for report in g.subjects(RDF.type, SH.ValidationReport):
        for r in g.objects(report, SH.result):
            path, value = g.value(r, SH.resultPath), g.value(r, SH.value)
            severity = g.value(r, SH.resultSeverity)
            out.append(Violation(
                focus=node_str(g.value(r, SH.focusNode)),
                path=None if path is None else path_string(g, path),
                value=None if value is None else term_str(value),
                constraint=str(g.value(r, SH.sourceConstraintComponent)),
                shape=node_str(g.value(r, SH.sourceShape)),
                severity=SEVERITIES.get(severity, str(severity)),
                message="; ".join(sorted({str(m) for m in g.objects(r, SH.resultMessage)})),
            ))
    return out
