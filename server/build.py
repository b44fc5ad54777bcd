"""Build: parse the Turtle, validate it, derive the views, and load everything into a new
on-disk Oxigraph store that is swapped in atomically.

The store directory holds ``builds/<id>/`` (one Oxigraph store per build) and ``current``, a
symlink to the build being served. A build writes a fresh ``builds/<id>`` and only when every
step passed replaces ``current`` with ``os.replace`` (atomic on POSIX), so an interrupted or
failing build, even ``kill -9``, leaves the previous store in place and serving.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyoxigraph as ox

from . import __version__
from .config import DEFAULT_BASE, Config
from .iris import Iris

SOURCE_SHA256 = "06035976f49fe52ced0365899acaa81da2edd55767c9283c3cb00c6f6ce83d0b"
XSD = "http://www.w3.org/2001/XMLSchema#"
META = {
    "type": "http://www.w3.org/1999/02/22-rdf-syntax-ns#type",
    "label": "http://www.w3.org/2000/01/rdf-schema#label",
    "activity": "http://www.w3.org/ns/prov#Activity",
    "ended": "http://www.w3.org/ns/prov#endedAtTime",
    "used": "http://www.w3.org/ns/prov#used",
    "generated": "http://www.w3.org/ns/prov#generated",
    "version": "https://schema.org/softwareVersion",
    "sha256": "https://w3id.org/nam-kg/ontology#sourceSha256",
    "triples": "http://rdfs.org/ns/void#triples",
    "subset": "http://rdfs.org/ns/void#subset",
    "dataset": "http://rdfs.org/ns/void#Dataset",
    "sd_name": "http://www.w3.org/ns/sparql-service-description#name",
}


class BuildError(Exception):
    """A build step failed; the previous store is untouched."""


@dataclass(frozen=True)
class Sources:
    """Which files go into which named graph."""

    ontology: list[Path]
    facts: list[Path]
    links: list[Path]
    shapes: Path
    article: Path

    @classmethod
    def of(cls, root: Path) -> Sources:
        onto = sorted(p for p in (root / "ontology").glob("*.ttl") if p.name != "shapes.ttl")
        data = sorted((root / "data").glob("*.ttl"))
        return cls(
            ontology=onto,
            facts=[p for p in data if p.name != "links.ttl"],
            links=[p for p in data if p.name == "links.ttl"],
            shapes=root / "ontology" / "shapes.ttl",
            article=root / "data" / "source" / "article.ar.txt",
        )

    def by_graph(self) -> dict[str, list[Path]]:
        return {"ontology": self.ontology, "facts": self.facts, "links": self.links}

    def all(self) -> list[Path]:
        return self.ontology + self.facts + self.links


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def current_path(store_dir: Path) -> Path:
    """The build being served (resolved ``current`` symlink)."""
    link = Path(store_dir) / "current"
    if not link.is_symlink() and not link.exists():
        raise FileNotFoundError(
            f"no store built in {store_dir} (run `namkg build --store {store_dir}`)")
    target = link.resolve()
    if not target.is_dir():
        raise FileNotFoundError(f"{link} points to a missing build {target}")
    return target


def open_store(store_dir: Path) -> ox.Store:
    """Open the served build read-only; a clear error if missing or corrupt."""
    return open_counted(store_dir)[0]


def open_counted(store_dir: Path) -> tuple[ox.Store, int]:
    """:func:`open_store` and the quad count it checked (counting is O(n): do it once)."""
    path = current_path(store_dir)
    try:
        store = ox.Store.read_only(str(path))
        count = len(store)
        recorded = [q.object.value for q in store.quads_for_pattern(
            None, ox.NamedNode(META["triples"]), None, None) if q.subject.value.endswith("dataset")]
    except (OSError, RuntimeError) as exc:  # pyoxigraph raises RuntimeError on corrupt data
        raise OSError(f"the store at {path} cannot be opened: {exc}") from exc
    # An empty or foreign store must not serve as if it were ours: the build records its
    # size (VoID, meta graph), which the store must hold plus the meta graph itself.
    if not recorded or count <= int(recorded[0]):
        raise OSError(f"the store at {path} is not a complete nam-kg build "
                      f"({count} quads; recorded size {recorded[0] if recorded else 'missing'})")
    return store, count


def load_dataset(sources: Sources, iris: Iris) -> ox.Store:
    """An in-memory store holding each source file in its named graph, under ``iris.base``."""
    mem = ox.Store()
    default = Iris(DEFAULT_BASE)
    for name, paths in sources.by_graph().items():
        graph = ox.NamedNode(iris.graph(name))
        for path in paths:
            try:
                triples = list(ox.parse(path=str(path), format=ox.RdfFormat.TURTLE))
            except SyntaxError as exc:
                raise BuildError(f"{path}: {exc}") from exc
            mem.extend(ox.Quad(*(_rebase(term, default, iris) for term in
                                 (t.subject, t.predicate, t.object)), graph) for t in triples)
    return mem


def _rebase(term, default: Iris, iris: Iris):
    if default.base != iris.base and isinstance(term, ox.NamedNode):
        return ox.NamedNode(default.rebase(term.value, iris))
    return term


def build(config: Config, *, log=print) -> Path:
    """Validate, derive and load into a new build, then swap it in. Returns the build path."""
    from . import validation, wikidata  # imported here: the CLI's other verbs don't need them

    started = time.monotonic()
    sources = Sources.of(config.root)
    if sha256(sources.article) != SOURCE_SHA256:
        raise BuildError(f"{sources.article}: checksum differs from the published source")
    report = validation.validate(sources.facts + sources.links, sources.shapes,
                                 ontology_paths=sources.ontology, sparql_engine="oxigraph")
    if not report.conforms:
        raise BuildError("validation failed:\n" + report.to_text())
    log(f"validated {len(sources.all())} files in {report.seconds:.2f}s")

    iris = Iris(config.base_iri)
    mem = load_dataset(sources, iris)
    view = ox.NamedNode(iris.graph("wikidata"))
    mem.extend(ox.Quad(s, p, o, view) for s, p, o in wikidata.derive(mem, iris))
    _add_meta(mem, iris, sources)

    store_dir = Path(config.store)
    builds = store_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    target = builds / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}"
    store = ox.Store(str(target))
    store.bulk_extend(mem.quads_for_pattern(None, None, None, None))
    store.flush()
    store.optimize()
    count = len(store)
    del store  # closes the RocksDB handle before the swap
    previous = (store_dir / "current").resolve() if (store_dir / "current").is_symlink() else None
    _swap(store_dir, target)
    # Keep the previous build: a running server may still read it until it reloads.
    _prune(builds, keep={target, previous})
    log(f"built {count} quads into {target} in {time.monotonic() - started:.2f}s")
    return target


def _add_meta(mem: ox.Store, iris: Iris, sources: Sources) -> None:
    """Build metadata and VoID counts, in the meta graph."""
    meta = ox.NamedNode(iris.graph("meta"))
    run = ox.NamedNode(iris.base + "build")
    dataset = ox.NamedNode(iris.dataset)
    N, L = ox.NamedNode, ox.Literal
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    quads = [
        (run, N(META["type"]), N(META["activity"])),
        (run, N(META["label"]), L("Build of the nam-kg store", language="en")),
        (run, N(META["label"]), L("بناء مخزن nam-kg", language="ar")),
        (run, N(META["ended"]), L(now, datatype=N(XSD + "dateTime"))),
        (run, N(META["version"]), L(__version__)),
        (run, N(META["sha256"]), L(sha256(sources.article))),
        (run, N(META["used"]), N(iris.entity("article"))),
        (run, N(META["generated"]), dataset),
        (dataset, N(META["type"]), N(META["dataset"])),
    ]
    total = 0
    for name in ("ontology", "facts", "links", "wikidata"):
        graph = N(iris.graph(name))
        n = sum(1 for _ in mem.quads_for_pattern(None, None, None, graph))
        total += n
        quads += [(dataset, N(META["subset"]), graph), (graph, N(META["type"]), N(META["dataset"])),
                  (graph, N(META["sd_name"]), graph),
                  (graph, N(META["triples"]), L(str(n), datatype=N(XSD + "integer")))]
    quads.append((dataset, N(META["triples"]), L(str(total), datatype=N(XSD + "integer"))))
    mem.extend(ox.Quad(s, p, o, meta) for s, p, o in quads)


def _swap(store_dir: Path, target: Path) -> None:
    tmp = store_dir / f".current-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target.relative_to(store_dir))
    os.replace(tmp, store_dir / "current")  # atomic: readers see the old or the new build


def _prune(builds: Path, keep: set[Path]) -> None:
    """Remove old builds (and leftovers of interrupted ones), keeping the served one."""
    for path in builds.iterdir():
        if path not in keep and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
