"""The four ways a report is written: text (a line per result), JSON, Turtle (a
``sh:ValidationReport`` graph) and JUnit XML. Each takes a
:class:`~namkg.shacl.report.Report` (whose ``to_text()`` & co. call them) and reads only its
fields, ``passed``, ``failing()`` and ``compact()``."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict

from rdflib import RDF, BNode, Graph, Literal, URIRef
from rdflib.namespace import SH

from .terms import SEVERITIES, Violation, angle, from_node_str, parse_path, short_name


def text(report) -> str:
    """One line per result and a summary line."""
    lines = [
        f"{v.severity} focus={angle(v.focus)} path={angle(v.path) if v.path else '-'} "
        f"value={_one_line(v.value or '-')} constraint={short_name(v.constraint)}: "
        f"{_one_line(v.message)}"
        for v in report.violations
    ]
    c = report.counts()
    lenient = "" if report.conforms or not report.passed else \
        f"; not conforming, passed by --fail-on {report.fail_on}"
    other = sum(n for k, n in c.items() if k not in SEVERITIES.values())
    lines.append(
        f"{'OK' if report.passed else 'FAIL'}: {c['Violation']} violations, {c['Warning']} "
        f"warnings, {c['Info']} infos" + (f", {other} of other severities" if other else "")
        + f" in {len(report.files)} files ({report.seconds:.2f} s){lenient}"
    )
    return "\n".join(lines)


def json_text(report) -> str:
    body = {"conforms": report.conforms, "passed": report.passed, "fail_on": report.fail_on,
            "violations": [asdict(v) for v in report.violations], "files": report.files}
    return json.dumps(body, ensure_ascii=False, indent=2)


def turtle(report) -> str:
    """A ``sh:ValidationReport`` graph."""
    g = Graph()
    g.bind("sh", SH)
    node = BNode()
    g.add((node, RDF.type, SH.ValidationReport))
    g.add((node, SH.conforms, Literal(report.conforms)))
    for v in report.violations:
        r = BNode()
        g.add((node, SH.result, r))
        g.add((r, RDF.type, SH.ValidationResult))
        g.add((r, SH.focusNode, from_node_str(v.focus)))
        if v.path is not None:
            g.add((r, SH.resultPath, parse_path(v.path, g)))
        if v.value is not None:
            g.add((r, SH.value, from_node_str(v.value)))
        g.add((r, SH.sourceConstraintComponent, URIRef(v.constraint)))
        g.add((r, SH.sourceShape, from_node_str(v.shape)))
        g.add((r, SH.resultSeverity, SH[v.severity] if v.severity in SEVERITIES.values()
               else URIRef(v.severity)))
        if v.message:
            g.add((r, SH.resultMessage, Literal(v.message)))
    return g.serialize(format="turtle")


def junit(report) -> str:
    """JUnit XML: a test case per shape without results, and one per shape and focus node
    with results (``nam:MembershipShape · id:membership-full``), failed by the failing
    ones; results below ``fail_on`` go to its ``<system-out>``."""
    names = report.shape_names
    by_case: dict[tuple, list[Violation]] = {(s, None): [] for s in report.shapes}
    for v in report.violations:
        by_case.pop((v.shape, None), None)
        by_case.setdefault((v.shape, v.focus), []).append(v)
    cases = []
    for (shape, focus), found in by_case.items():
        name = names.get(shape, shape)
        if focus is not None:
            name += " · " + report.compact(focus)
        cases.append((name, names.get(shape, shape), found))
    cases.sort(key=lambda c: c[0])
    failures = sum(any(map(report.failing, found)) for _, _, found in cases)
    suites = ET.Element("testsuites", name="shacl", tests=str(len(cases)),
                        failures=str(failures), errors="0", time=f"{report.seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name="shacl", tests=str(len(cases)),
                          failures=str(failures), errors="0", skipped="0",
                          time=f"{report.seconds:.3f}")
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="files",
                  value=_xml_safe(" ".join(report.files)))
    for name, classname, found in cases:
        case = ET.SubElement(suite, "testcase", classname=_xml_safe(classname),
                             name=_xml_safe(name), time="0")
        failing = [v for v in found if report.failing(v)]
        if failing:
            first = failing[0]
            summary = f"{short_name(first.constraint)}"
            if first.path:
                summary += f" at {report.compact(first.path)}"
            summary += f": {first.message}"
            if len(failing) > 1:
                summary += f" (and {len(failing) - 1} more)"
            f = ET.SubElement(case, "failure", message=_xml_safe(_one_line(summary)),
                              type=" ".join(sorted({short_name(v.constraint) for v in failing})))
            f.text = _xml_safe("\n\n".join(_detail(report, v) for v in failing))
        notes = [_detail(report, v) for v in found if not report.failing(v)]
        if notes:
            ET.SubElement(case, "system-out").text = _xml_safe("\n\n".join(notes))
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def _detail(report, v: Violation) -> str:
    return "\n".join([
        f"{v.severity}: {v.message}",
        f"focus: {report.compact(v.focus)}",
        f"path: {report.compact(v.path) if v.path else '-'}",
        f"value: {v.value or '-'}",
        f"constraint: {v.constraint}",
        f"shape: {report.shape_names.get(v.shape, v.shape)}",
    ])


def _one_line(s: str) -> str:
    """Text reports keep one line per result: line breaks in values and messages escaped."""
    return s.replace("\r", "\\r").replace("\n", "\\n")


def _xml_safe(s: str) -> str:
    """Drop characters XML 1.0 cannot carry (data literals may hold any code point)."""
    return re.sub(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "\ufffd", s)
