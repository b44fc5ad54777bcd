"""``namkg validate`` as CI runs it: exit codes by ``--fail-on``, JUnit test cases named by
shape and focus node, ``--explain``, and the pre-commit hook and example workflow's commands."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from namkg import cli
from namkg.shacl import validation

REPO = Path(__file__).resolve().parent.parent
ONTOLOGY = REPO / "ontology" / "nam.ttl"
INVALID = Path(__file__).parent / "fixtures" / "invalid"
NAMKG = [sys.executable, "-m", "namkg.cli"]

SHAPES = """@prefix sh: <http://www.w3.org/ns/shacl#> .
@prefix ex: <http://example.org/> .
ex:NameShape a sh:NodeShape ; sh:targetClass ex:Thing ;
  sh:property [ sh:path ex:name ; sh:minCount 1 ; sh:severity sh:Violation ] ,
              [ sh:path ex:label ; sh:minCount 1 ; sh:severity sh:Warning ] ,
              [ sh:path ex:note ; sh:minCount 1 ; sh:severity sh:Info ] .
"""
# Data whose worst result is of each severity (None: conforms).
DATA = {
    None: 'ex:a a ex:Thing ; ex:name "a" ; ex:label "a" ; ex:note "a" .',
    "Info": 'ex:a a ex:Thing ; ex:name "a" ; ex:label "a" .',
    "Warning": 'ex:a a ex:Thing ; ex:name "a" ; ex:note "a" .',
    "Violation": 'ex:a a ex:Thing ; ex:label "a" ; ex:note "a" .',
}
# --fail-on -> the severities that fail
FAILS = {"info": {"Info", "Warning", "Violation"}, "warning": {"Warning", "Violation"},
         "violation": {"Violation"}}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("failon")
    shapes = root / "shapes.ttl"
    shapes.write_text(SHAPES, encoding="utf-8")
    out = {"shapes": shapes}
    for worst, body in DATA.items():
        path = root / f"{worst or 'none'}.ttl"
        path.write_text("@prefix ex: <http://example.org/> .\n" + body + "\n", encoding="utf-8")
        out[worst] = path
    return out


def test_cli_offers_the_validators_engines_and_thresholds():
    # cli.py spells them out to stay light to import; they must not drift apart.
    assert cli.ENGINES == validation.ENGINES and cli.FAIL_ON == validation.FAIL_ON
    assert validation.DEFAULT_ENGINE == "pyshacl-turbo"


@pytest.mark.parametrize("engine", validation.ENGINES)
@pytest.mark.parametrize("fail_on", [None, *FAILS])
@pytest.mark.parametrize("worst", list(DATA), ids=str)
def test_exit_code_by_fail_on(files, worst, fail_on, engine):
    args = ["validate", "--no-ontology", "--engine", engine, "--format", "json",
            "--shapes", str(files["shapes"]), str(files[worst])]
    if fail_on:
        args[1:1] = ["--fail-on", fail_on]
    done = CliRunner().invoke(cli.main, args)
    fails = worst in FAILS[fail_on or "info"]  # the default fails on any result
    assert done.exit_code == (1 if fails else 0), done.output
    body = json.loads(done.stdout)
    assert body["conforms"] is (worst is None)  # the spec's answer, whatever --fail-on says
    assert body["passed"] is (not fails) and body["fail_on"] == (fail_on or "info")
    assert [v["severity"] for v in body["violations"]] == ([worst] if worst else [])


def test_warning_only_fails_by_default_and_passes_leniently(files):
    # The real command, in its own process.
    strict = subprocess.run([*NAMKG, "validate", "--no-ontology", "--shapes",
                             str(files["shapes"]), str(files["Warning"])],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert strict.returncode == 1, strict.stderr
    assert strict.stdout.splitlines()[-1].startswith("FAIL: 0 violations, 1 warnings, 0 infos")
    lenient = subprocess.run([*NAMKG, "validate", "--no-ontology", "--fail-on", "violation",
                              "--shapes", str(files["shapes"]), str(files["Warning"])],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert lenient.returncode == 0, lenient.stderr
    first, last = lenient.stdout.splitlines()
    assert first.startswith("Warning focus=<http://example.org/a> path=<http://example.org/label>")
    assert re.fullmatch(r"OK: 0 violations, 1 warnings, 0 infos in 1 files \(\d+\.\d\d s\); "
                        r"not conforming, passed by --fail-on violation", last)


def test_bad_fail_on_is_a_usage_error(files):
    done = CliRunner().invoke(cli.main, ["validate", "--fail-on", "error", str(files[None])])
    assert done.exit_code == 2 and "'error' is not one of 'info', 'warning', 'violation'" \
        in done.output


def test_junit_cases_named_by_shape_and_focus_node():
    done = CliRunner().invoke(cli.main, ["validate", "--format", "junit", str(ONTOLOGY),
                                         str(INVALID / "membership-two-roles.ttl")])
    assert done.exit_code == 1, done.output
    root = ET.fromstring(done.stdout)
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert not any("_:" in name for name in cases), [n for n in cases if "_:" in n]
    failed = {name: c.find("failure") for name, c in cases.items()
              if c.find("failure") is not None}
    assert list(failed) == ["namsh:MembershipShape / org:role · id:membership-chair"]
    failure = failed["namsh:MembershipShape / org:role · id:membership-chair"]
    assert failure.get("type") == "MaxCount"
    assert failure.get("message").startswith("MaxCount at org:role: More than 1 values")
    assert "path: org:role" in failure.text and "value: -" in failure.text
    assert "focus: id:membership-chair" in failure.text
    # Shapes without results are passing test cases, named by themselves.
    assert "namsh:MembershipShape / org:member" in cases
    assert cases["namsh:MembershipShape / org:member"].find("failure") is None


def test_junit_failure_carries_the_value():
    done = CliRunner().invoke(cli.main, ["validate", "--format", "junit", str(ONTOLOGY),
                                         str(INVALID / "quote-exact-not-arabic.ttl")])
    assert done.exit_code == 1
    (failure,) = ET.fromstring(done.stdout).iter("failure")
    assert 'value: "قررت اذربيجان في عام 2011 أن تصبح عضوًا"@en' in failure.text
    assert "path: oa:exact" in failure.text


def test_explain_says_which_engine_judged_which_shape():
    case = [str(ONTOLOGY), str(INVALID / "membership-two-roles.ttl")]
    plain = CliRunner().invoke(cli.main, ["validate", "--explain", *case])
    lines = plain.stderr.splitlines()
    assert lines and all(line.startswith("pyshacl-turbo  ") for line in lines)
    assert any(line.endswith(" namsh:MembershipShape") for line in lines)
    mixed = CliRunner().invoke(cli.main, ["validate", "--engine", "oxigraph", "--explain",
                                          "--shapes", str(Path(__file__).parent / "fixtures"
                                                          / "validation" / "mixed.shapes.ttl"),
                                          "--no-ontology", str(Path(__file__).parent / "fixtures"
                                                               / "validation" / "mixed.ttl")])
    judged = dict(reversed(line.split(None, 1)) for line in mixed.stderr.splitlines())
    assert judged["ex:CompiledShape"] == "oxigraph" and judged["ex:ClosedShape"] == "pyshacl"
    quiet = CliRunner().invoke(cli.main, ["validate", *case])
    assert quiet.stderr == "" and plain.stdout.splitlines()[:-1] == quiet.stdout.splitlines()[:-1]


def hook_and_workflow_commands() -> list[list[str]]:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"))
    flow = yaml.safe_load((REPO / "docs" / "ci" / "validate.yml").read_text("utf-8"))
    runs = [s["run"] for s in flow["jobs"]["validate"]["steps"] if "namkg" in s.get("run", "")]
    return [shlex.split(hook["entry"])] + [shlex.split(r.split(">")[0]) for r in runs]


def test_hook_and_workflow_run_the_strict_command():
    commands = hook_and_workflow_commands()
    assert len(commands) == 2
    for command in commands:
        assert command[:2] == ["namkg", "validate"]
        assert command[command.index("--fail-on") + 1] == "info"  # said, not just defaulted
        done = subprocess.run([*NAMKG, *command[1:]], capture_output=True, text=True, cwd=REPO,
                              timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr  # the repository conforms


SUITE = REPO.parent / "shared" / "w3c-shacl-tests"
ONLY_BELOW_VIOLATION = ["core/misc/severity-001", "core/misc/severity-002",
                        "sparql/node/sparql-003"]


@pytest.mark.skipif(not SUITE.is_dir(), reason=f"W3C SHACL test suite not found at {SUITE}")
@pytest.mark.parametrize("engine", validation.ENGINES)
@pytest.mark.parametrize("name", ONLY_BELOW_VIOLATION)
def test_w3c_reports_of_warnings_and_infos_fail(name, engine):
    """The W3C tests whose every result is a Warning, an Info or a custom severity: the spec
    says they do not conform; `namkg validate` used to exit 0 on them."""
    path = str(SUITE / f"{name}.ttl")
    args = ["validate", "--no-ontology", "--engine", engine, "--shapes", path, path]
    strict = CliRunner().invoke(cli.main, args)
    assert strict.exit_code == 1, strict.output
    summary = strict.stdout.splitlines()[-1]
    assert summary.startswith("FAIL: 0 violations"), summary
    lenient = CliRunner().invoke(cli.main, ["validate", "--fail-on", "violation", *args[1:]])
    custom = name == "core/misc/severity-002"  # ex:MySeverity: no level, so it always fails
    assert lenient.exit_code == (1 if custom else 0), lenient.output
    if custom:
        assert ", 1 of other severities in" in summary
