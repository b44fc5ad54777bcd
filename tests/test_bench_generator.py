"""bench/generate.py: its 1k-triple output passes our shapes, builds, and is deterministic."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyoxigraph as ox
import pytest
from namkg.config import Config
from namkg.kg.build import build
from namkg.kg.layout import Sources, open_store
from namkg.shacl.validation import validate

from bench.generate import generate

REPO = Path(__file__).resolve().parent.parent


def digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "data").glob("gen-*.ttl"))}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("gen") / "tree"
    return root, generate(root, triples=1000, seed=7)


def test_every_kind_generated_near_the_target(tree):
    root, summary = tree
    assert 1000 <= summary["generated_triples"] < 1200
    for kind in ("states", "memberships", "chairs", "extensions", "claims", "quotes",
                 "articles"):
        assert summary[kind] > 0, kind
    triples = sum(len(list(ox.parse(path=str(root / "data" / f), format=ox.RdfFormat.TURTLE)))
                  for f in summary["files"])
    assert triples == summary["generated_triples"]
    assert (root / "ontology" / "shapes.ttl").read_bytes() == \
        (REPO / "ontology" / "shapes.ttl").read_bytes()


def test_output_passes_our_shapes(tree):
    root, _ = tree
    sources = Sources.of(root)
    assert any(p.name.startswith("gen-") for p in sources.facts)
    report = validate(sources.facts + sources.links, sources.shapes,
                      ontology_paths=sources.ontology)
    assert report.conforms, report.to_text()


def test_shapes_see_the_generated_nodes(tree, tmp_path):
    """The same output with one generated state's Arabic label gone fails: the pass above
    is not vacuous. (The Oxigraph engine only for speed: this shape is not ``sh:sparql``.)"""
    root, _ = tree
    gen = root / "data" / "gen-000.ttl"
    broken = tmp_path / "gen-000.ttl"
    text, n = re.subn(r'(:gen-state-00003 a nam:State ;\n    rdfs:label "[^"]*"@en ;\n)'
                      r'    rdfs:label "[^"]*"@ar ;\n', r"\1", gen.read_text("utf-8"))
    assert n == 1
    broken.write_text(text, "utf-8")
    sources = Sources.of(root)
    files = [broken if p == gen else p for p in sources.facts + sources.links]
    report = validate(files, sources.shapes, ontology_paths=sources.ontology,
                      sparql_engine="oxigraph")
    assert not report.conforms
    assert {(v.focus, v.message) for v in report.violations} == {
        ("https://w3id.org/nam-kg/id/gen-state-00003", "needs an Arabic rdfs:label (@ar)")}


def test_builds_and_answers_competency_queries(tree, tmp_path):
    root, summary = tree
    build(Config.from_env({}, root=root, store=tmp_path / "store"), log=lambda _: None)
    store = open_store(tmp_path / "store")
    claims = (REPO / "queries" / "07-author-claims.rq").read_text("utf-8")
    rows = list(store.query(claims, use_default_graph_as_union=True))
    generated = [r for r in rows if r["author"].value.startswith("Author ")]
    assert len(generated) == summary["claims"]
    assert len(rows) > len(generated)  # the repository's own claims are still there
    statuses = (REPO / "queries" / "03-azerbaijan-statuses.rq").read_text("utf-8")
    assert len(list(store.query(statuses, use_default_graph_as_union=True))) == 3


def test_deterministic_by_seed(tree, tmp_path):
    root, _ = tree
    again = generate(tmp_path / "again", triples=1000, seed=7)
    assert digest(tmp_path / "again") == digest(root)
    other = generate(tmp_path / "other", triples=1000, seed=8)
    assert digest(tmp_path / "other") != digest(root)
    assert again["files"] == other["files"] == ["gen-000.ttl"]
