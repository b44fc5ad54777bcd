"""SHACL validation of nam-kg's Turtle, with text, JSON, Turtle and JUnit reports: the one entry
point, :func:`validate` (and :func:`validate_shapes` for a shapes file itself).

The data are parsed by Oxigraph's parser into rdflib terms with every literal exactly as
written (:mod:`.load`; rdflib's own constructor would rewrite ``"01"^^xsd:integer`` as ``"1"``,
and even ``"none"^^xsd:boolean`` as ``"false"``). Three engines (:data:`ENGINES`, in
:mod:`.engines`):

- ``pyshacl-turbo``, the default: pyshacl's ``validate()`` in Rust (pinned). On the W3C SHACL
  suite (core + sparql, tests/test_shacl_w3c.py) it passes 120 of 120, pyshacl 119 (no
  ``$shapesGraph``); on our fixtures and on generated graphs (tests/test_shacl_differential.py)
  its results equal pyshacl's field by field, except where pyshacl is wrong (xsd:gYear order,
  values of other types under ordering constraints). Where it fails to run, pyshacl judges.
  Its default messages (for shapes without ``sh:message``) are worded differently. Neither
  engine reports every ill-typed literal under ordering constraints (``"300"^^xsd:byte``
  against ``sh:maxInclusive 1000``): pair bounds with ``sh:datatype``, as our shapes do.
- ``pyshacl``: the reference implementation.
- ``oxigraph``: our own, the shapes compiled into SPARQL on an Oxigraph store
  (:mod:`namkg.shacl.oxigraph`; what it does not compile goes to pyshacl, see ``--explain``).
  Fast, but the store canonicalises literals (``"4.0"^^xsd:decimal`` as ``"4"``, xsd:byte as
  xsd:integer), so it judges and reports other literals than the data's, and some SPARQL
  pre-binding is wrong: 111 of 120 on the W3C suite. Kept as an opt-in for comparison.

Conformance is the spec's: any result, whatever its severity, means non-conforming
(:attr:`Report.conforms`); ``fail_on`` only decides which results fail the run
(:attr:`Report.passed`, the exit code). Nested shapes (``sh:or``...) are judged by the spec
too: a Warning inside makes the node not conform to that shape.

Known pyshacl traps (see tests/test_validation_reports.py): ordering comparisons of ``xsd:gYear``
literals are broken (``sh:lessThanOrEquals`` crashes, ``sh:minInclusive`` & co. flag every value,
``FILTER(?end < ?begin)`` in SPARQL silently never matches).  Compare ``STR()`` of years instead.
Worse, once owlrl (pyshacl's RDFS inference) has run anywhere in the process, rdflib's literal
conversions change globally and the first two behave differently; validation therefore pins
rdflib's default conversions while it runs (:func:`.engines.rdflib_default_datatypes`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import pyshacl
from rdflib import Graph

from .engines import (
    DEFAULT_ENGINE,
    ENGINES,
    check_engine,
    judge,
    judge_store,
    rdflib_default_datatypes,
    run_pyshacl,
)
from .load import InputError, input_errors, load_graph, load_store, prefix_graph
from .report import FAIL_ON, Report
from .shapes import as_specified, lint_shapes
from .sparql import DataStore
from .terms import ValidationCrash, Violation

__all__ = [  # what the CLI and the build use; the parts live in the modules named above
    "DEFAULT_ENGINE",
    "ENGINES",
    "FAIL_ON",
    "InputError",
    "Report",
    "ValidationCrash",
    "Violation",
    "input_errors",
    "validate",
    "validate_shapes",
]


def validate(
    data_paths: Iterable[Path],
    shapes_path: Path,
    *,
    ontology_paths: Iterable[Path] = (),
    sparql_engine: str = DEFAULT_ENGINE,
    fail_on: str = "info",
) -> Report:
    """Validate data (plus ontology, mixed into the data graph) against a shapes file.

    ``sparql_engine`` is one of :data:`ENGINES` (see the module's docstring); ``fail_on`` the
    least severe result that makes the report fail (:data:`FAIL_ON`).
    """
    check_engine(sparql_engine)
    start = time.perf_counter()
    files = [str(p) for p in (*ontology_paths, *data_paths)]
    with rdflib_default_datatypes():  # literals take their values as they are parsed
        shapes = as_specified(load_graph([Path(shapes_path)]))
        if sparql_engine == "oxigraph":
            data = None
            found, judged = judge_store(
                DataStore(load_store(files)), shapes,
                lambda: load_graph(map(Path, files)), lambda: prefix_graph(files))
        else:
            data = load_graph(Path(f) for f in files)
            found, judged = judge(data, shapes, sparql_engine)
    return Report.of(found, files, start, shapes, fail_on, judged, data)


def validate_shapes(shapes_path: Path, *, fail_on: str = "info") -> Report:
    """Validate a shapes file against SHACL-SHACL (as ``pyshacl --metashacl``, but without RDFS
    inference, which changes rdflib globally; see above) plus our lints
    (:func:`.shapes.lint_shapes`)."""
    start = time.perf_counter()
    with rdflib_default_datatypes():
        shapes = load_graph([Path(shapes_path)])
        meta = Graph().parse(Path(pyshacl.__file__).parent / "assets" / "shacl-shacl.ttl")
        found = run_pyshacl(Graph() + shapes, meta, "none") + lint_shapes(shapes)
    return Report.of(found, [str(shapes_path)], start, meta, fail_on, {})
