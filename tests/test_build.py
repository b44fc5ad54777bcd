"""`namkg build`: atomic, repeatable, and a failed or killed build never replaces a good store."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyoxigraph as ox
import pytest
from namkg.iris import Iris
from namkg.kg import build
from namkg.kg.layout import current_path, open_store

from .conftest import NAMKG, REPO, namkg

ASK = "ASK { ?s ?p ?o }"


def graph_dump(store_dir: Path) -> list[str]:
    """Every quad but the build metadata, as sorted N-Quads lines."""
    store = open_store(store_dir)
    meta = ox.NamedNode(Iris().graph("meta"))
    quads = [q for q in store.quads_for_pattern(None, None, None, None) if q.graph_name != meta]
    return sorted(ox.serialize(quads, format=ox.RdfFormat.N_QUADS).decode().splitlines())


def answers(store_dir: Path) -> bool:
    return bool(open_store(store_dir).query(ASK, use_default_graph_as_union=True))


def copy_repo(tmp: Path) -> Path:
    root = tmp / "repo"
    for part in ("ontology", "data"):
        shutil.copytree(REPO / part, root / part)
    return root


def test_build_twice_gives_the_same_graph(tmp_path, built_store):
    done = namkg("build", "--store", str(tmp_path))
    assert done.returncode == 0, done.stderr
    first = graph_dump(tmp_path)
    assert first == graph_dump(built_store)
    done = namkg("build", "--store", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert graph_dump(tmp_path) == first
    assert len(first) > 1000


def test_build_records_metadata(built_store):
    store = open_store(built_store)
    meta = ox.NamedNode(Iris().graph("meta"))
    sha = ox.NamedNode("https://w3id.org/nam-kg/ontology#sourceSha256")
    values = [q.object.value for q in store.quads_for_pattern(None, sha, None, meta)]
    assert values == ["06035976f49fe52ced0365899acaa81da2edd55767c9283c3cb00c6f6ce83d0b"]
    graphs = {g.value for g in store.named_graphs()}
    assert graphs == set(Iris().graphs().values())


@pytest.mark.parametrize("breakage", ["syntax", "violation"])
def test_failed_build_keeps_the_previous_store(tmp_path, breakage):
    root = copy_repo(tmp_path)
    store = tmp_path / "store"
    env = {"NAMKG_ROOT": str(root)}
    assert namkg("build", "--store", str(store), env=env).returncode == 0
    before = current_path(store)
    facts = root / "data" / "facts.ttl"
    if breakage == "syntax":
        facts.write_text(facts.read_text() + "\n:broken a .\n", encoding="utf-8")
    else:  # a fact that loses its quote
        text = facts.read_text(encoding="utf-8")
        facts.write_text(text.replace("    prov:wasDerivedFrom :quote-03 .", "    .", 1),
                         encoding="utf-8")
    kept = set((store / "builds").iterdir())
    done = namkg("build", "--store", str(store), env=env)
    assert done.returncode == 1
    assert "previous store kept" in done.stderr
    assert set((store / "builds").iterdir()) == kept  # the failed build's directory is gone
    if breakage == "syntax":  # located as `namkg validate` does
        assert re.search(r"facts\.ttl:\d+:\d+: Turtle syntax error", done.stderr), done.stderr
    else:
        assert "nam-second-largest" in done.stderr
    assert current_path(store) == before
    assert answers(store)


def test_build_under_another_base_rebases_every_iri(tmp_path, built_store):
    # Validation sees the files as written; the store gets their IRIs under the configured base.
    default, other = Iris(), Iris("http://localhost:8000/nam/")
    done = namkg("build", "--store", str(tmp_path), "--base-iri", other.base)
    assert done.returncode == 0, done.stderr

    def term(t):
        return ox.NamedNode(default.rebase(t.value, other)) if isinstance(t, ox.NamedNode) else t

    for name in ("ontology", "facts", "links"):
        theirs = open_store(built_store).quads_for_pattern(
            None, None, None, ox.NamedNode(default.graph(name)))
        ours = open_store(tmp_path).quads_for_pattern(None, None, None,
                                                      ox.NamedNode(other.graph(name)))
        expected = {ox.Triple(*map(term, (q.subject, q.predicate, q.object))) for q in theirs}
        assert {q.triple for q in ours} == expected and len(expected) > 100


def test_views_with_blank_nodes_join_the_sources(tmp_path):
    # The writer reloads a dump, which relabels blank nodes: views holding blank nodes make the
    # build write everything from memory instead, so that a view triple still joins its source.
    iris = Iris()
    facts, view = ox.NamedNode(iris.graph("facts")), ox.NamedNode(iris.graph("wikidata"))
    p = ox.NamedNode("urn:p")
    for name, node in (("blank", ox.BlankNode()), ("named", ox.NamedNode("urn:o"))):
        mem = ox.Store()
        mem.add(ox.Quad(ox.NamedNode("urn:s"), p, node, facts))
        writer = build._Writer(tmp_path / name, mem)
        writer.start()
        writer.dumped.wait()
        mem.add(ox.Quad(node, p, ox.Literal("in the view"), view))
        store = build._write(tmp_path / name, mem, writer, iris)
        assert store.query(f"ASK {{ GRAPH {facts} {{ <urn:s> <urn:p> ?o }} "
                           f"GRAPH {view} {{ ?o <urn:p> ?label }} }}"), name
        assert len(store) == 2


def test_kill_9_during_build_leaves_the_previous_store_serving(tmp_path):
    store = tmp_path / "store"
    assert namkg("build", "--store", str(store)).returncode == 0
    before = current_path(store)
    known = set((store / "builds").iterdir())
    proc = subprocess.Popen([*NAMKG, "build", "--store", str(store)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (set((store / "builds").iterdir()) - known):
        time.sleep(0.005)  # wait until the new build directory is being written
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert set((store / "builds").iterdir()) - known, "the build never started writing"
    assert current_path(store) == before
    assert answers(store)
    # The next build cleans up the leftover and succeeds.
    assert namkg("build", "--store", str(store)).returncode == 0
    assert len(list((store / "builds").iterdir())) == 2  # the new one and the previous


def test_query_command_answers_from_the_store(built_store):
    done = namkg("query", "queries/01-nam-member-count.rq", "--format", "json",
                 "--store", str(built_store))
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["results"]["bindings"]
    assert rows[0]["count"]["value"] == "120"


def test_query_command_reports_errors(built_store, tmp_path):
    done = namkg("query", "-", "--store", str(built_store), input="SELEC nothing")
    assert done.returncode == 1 and "query error" in done.stderr
    done = namkg("query", "queries/01-nam-member-count.rq", "--store", str(tmp_path / "none"))
    assert done.returncode == 2 and "no store built" in done.stderr


@pytest.mark.parametrize("query,fmt", [("SELECT * WHERE { ?s ?p ?o } LIMIT 1", "ttl"),
                                       ("ASK { ?s ?p ?o }", "nt"),
                                       ("CONSTRUCT WHERE { ?s ?p ?o } LIMIT 1", "csv")])
def test_query_command_refuses_a_format_that_does_not_fit_in_one_line(built_store, query, fmt):
    done = namkg("query", "-", "--format", fmt, "--store", str(built_store), input=query)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: --format " + fmt)
    assert "Traceback" not in done.stderr


def test_publish_dry_run_publishes_nothing(built_store):
    # Nothing listens on port 9 (discard): a dry run must not need the target at all.
    done = namkg("publish", "--to", "http://127.0.0.1:9/store", "--dry-run",
                 "--store", str(built_store))
    assert done.returncode == 0, done.stderr
    assert "published" not in done.stdout and "nothing was written" in done.stdout


def test_each_triple_is_stored_once(built_store):
    # The union default graph is a bag: a triple in two graphs would count twice.
    store = open_store(built_store)
    (row,) = store.query("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }",
                         use_default_graph_as_union=True)
    distinct = {q.triple for q in store.quads_for_pattern(None, None, None, None)}
    assert int(row["n"].value) == len(distinct) == len(store)


def test_relative_years_resolve_by_one_rule(built_store):
    """"in that year" and "in July of this year" both take the year named in the sentence
    before theirs, and say so (nam:inference); no other relative year is in the article."""
    rows = open_store(built_store).query("""
        PREFIX nam: <https://w3id.org/nam-kg/ontology#>
        PREFIX oa: <http://www.w3.org/ns/oa#>
        PREFIX prov: <http://www.w3.org/ns/prov#>
        PREFIX time: <http://www.w3.org/2006/time#>
        SELECT DISTINCT ?instant ?year ?why ?before WHERE {
          ?x time:hasTime ?instant ; prov:wasDerivedFrom ?quote .
          ?quote nam:sentence ?n ; oa:exact ?exact .
          FILTER(CONTAINS(?exact, "ذلك العام") || CONTAINS(?exact, "هذا العام"))
          ?instant time:inXSDgYear ?year ; nam:inference ?why .
          ?previous nam:sentence ?m ; oa:exact ?before . FILTER(?m = ?n - 1)
        }""", use_default_graph_as_union=True)
    found = {r["instant"].value.rsplit("/", 1)[1]: r for r in rows}
    assert set(found) == {"time-2011-that-year", "time-2021-07-this-year"}
    for r in found.values():
        assert re.findall(r"\d{4}", r["before"].value) == [r["year"].value]
        assert "the year named just before" in r["why"].value
