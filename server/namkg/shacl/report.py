"""The validation report: every result, whether it conforms (the spec's answer) and whether it
passes (``fail_on``'s), readable names for shapes and IRIs; written by :mod:`.formats`.

Conformance is the spec's: any result, whatever its severity, means non-conforming
(:attr:`Report.conforms`); ``fail_on`` only decides which results fail the run
(:attr:`Report.passed`, the exit code).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

from rdflib import Graph

from . import formats
from .shapes import all_shapes, shape_name
from .terms import Violation, read_path, render_path

FAIL_ON = ("info", "warning", "violation")  # the default first: any result fails
_RANK = {"Info": 0, "Warning": 1, "Violation": 2}


@dataclass
class Report:
    conforms: bool  # the SHACL spec's answer: no result of any severity
    violations: list[Violation]  # every result, whatever its severity
    files: list[str]
    seconds: float
    shapes: list[str] = field(default_factory=list)  # every shape checked (JUnit test cases)
    shape_names: dict[str, str] = field(default_factory=dict)  # shape -> readable name
    fail_on: str = "info"  # the least severe result that fails (FAIL_ON)
    judged_by: dict[str, str] = field(default_factory=dict)  # shape -> engine that judged it
    prefixes: dict[str, str] = field(default_factory=dict)  # for readable focus nodes

    @classmethod
    def of(cls, found: list[Violation], files: list[str], start: float, shapes: Graph,
           fail_on: str, judged: dict[str, str], data: Graph | None = None) -> Report:
        """The report of results ``found`` since ``start`` (``time.perf_counter()``), with
        names and prefixes from the shapes (and the data, where the shapes bind none)."""
        if fail_on not in FAIL_ON:
            raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}: {fail_on!r}")
        found.sort(key=Violation.sort_key)
        names = {s: shape_name(shapes, s) for s in all_shapes(shapes)}
        for v in found:
            names.setdefault(v.shape, v.shape)
        prefixes = {str(k): str(v) for k, v in data.namespaces()} if data is not None else {}
        prefixes.update((str(k), str(v)) for k, v in shapes.namespaces())  # the shapes' win
        return cls(not found, found, files, time.perf_counter() - start, sorted(names), names,
                   fail_on, judged, named_prefixes(prefixes))

    def counts(self) -> Counter:
        return Counter(v.severity for v in self.violations)

    def failing(self, v: Violation) -> bool:
        """Whether this result fails the run; a severity SHACL does not define always does."""
        return _RANK.get(v.severity, _RANK["Violation"]) >= _RANK[self.fail_on.capitalize()]

    @property
    def passed(self) -> bool:
        """No failing result: what the exit code says (equals ``conforms`` at ``info``)."""
        return not any(map(self.failing, self.violations))

    def to_text(self) -> str:
        """One line per result and a summary line.

        >>> from rdflib.namespace import SH
        >>> v = Violation("urn:m", "urn:begin", None, str(SH.MinCountConstraintComponent),
        ...               "urn:S", "Violation", "Less than 1 values")
        >>> print(Report(False, [v], ["d.ttl"], 0.5).to_text())
        Violation focus=<urn:m> path=<urn:begin> value=- constraint=MinCount: Less than 1 values
        FAIL: 1 violations, 0 warnings, 0 infos in 1 files (0.50 s)
        >>> w = Violation("urn:m", None, None, str(SH.MinCountConstraintComponent), "urn:S",
        ...               "Warning", "Less than 1 values")
        >>> print(Report(False, [w], ["d.ttl"], 0.5, fail_on="violation").to_text())
        ... # doctest: +ELLIPSIS
        Warning focus=<urn:m> path=- ...
        OK: 0 violations, 1 warnings, 0 infos in 1 files (0.50 s); not conforming, passed by ...
        """
        return formats.text(self)

    def to_json(self) -> str:
        return formats.json_text(self)

    def to_turtle(self) -> str:
        """A ``sh:ValidationReport`` graph."""
        return formats.turtle(self)

    def to_junit(self) -> str:
        """JUnit XML: a test case per shape and focus node with results, one per shape
        without (:func:`namkg.shacl.formats.junit`)."""
        return formats.junit(self)

    def explain(self) -> str:
        """Which engine judged which shape, one line per shape."""
        return "\n".join(f"{self.judged_by[s]:14} {self.shape_names.get(s, s)}"
                         for s in sorted(self.judged_by, key=lambda s: self.shape_names.get(s, s)))

    def compact(self, s: str) -> str:
        """An IRI as a CURIE with the shapes' or data's prefixes; anything else as is.

        >>> Report(True, [], [], 0, prefixes={"id": "https://w3id.org/nam-kg/id/"}).compact(
        ...     "https://w3id.org/nam-kg/id/membership-full")
        'id:membership-full'
        >>> Report(True, [], [], 0, prefixes={"ex": "urn:ex:"}).compact("^<urn:ex:p>/<urn:q>")
        '^ex:p/<urn:q>'
        """
        if s.startswith(("<", "^", "(")):  # a property path
            try:
                return render_path(read_path(s), lambda u: self.compact(str(u)))
            except ValueError:
                return s
        if s.startswith(("_:", '"')):
            return s
        best = max((ns for ns in self.prefixes.values() if s.startswith(ns)), key=len,
                   default=None)
        if best is not None and re.fullmatch(r"[\w][\w.-]*", s[len(best):]):
            prefix = next(k for k, ns in self.prefixes.items() if ns == best)
            return f"{prefix}:{s[len(best):]}"
        return f"<{s}>"


def named_prefixes(prefixes: dict[str, str]) -> dict[str, str]:
    """The empty prefix, a bare ``:`` in reports, named after its namespace's last segment.

    >>> named_prefixes({"": "https://w3id.org/nam-kg/id/", "nam": "urn:nam#"})
    {'nam': 'urn:nam#', 'id': 'https://w3id.org/nam-kg/id/'}
    """
    out = {k: v for k, v in prefixes.items() if k}
    if "" in prefixes:
        m = re.search(r"([A-Za-z][\w-]*)[/#]$", prefixes[""])
        if m and m.group(1) not in out and prefixes[""] not in out.values():
            out[m.group(1)] = prefixes[""]
    return out
