"""Build: parse the Turtle, validate it, derive the views, and load everything into a new
on-disk Oxigraph store that is swapped in atomically.

The files are parsed into an in-memory store that the views query, and a thread writes them
to disk meanwhile; validation (:mod:`namkg.shacl.validation`) reads the files themselves, since the
store holds literals in canonical form and validation judges them as written.

The store directory holds ``builds/<id>/`` (one Oxigraph store per build) and ``current``, a
symlink to the build being served. A build writes a fresh ``builds/<id>`` and only when every
step passed replaces ``current`` with ``os.replace`` (atomic on POSIX), so an interrupted or
failing build, even ``kill -9``, leaves the previous store in place and serving.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyoxigraph as ox

from .. import __version__
from ..config import DEFAULT_BASE, Config
from ..iris import Iris
from ..shacl import validation
from . import wikidata
from .layout import META, Sources, graph_size, sha256

SOURCE_SHA256 = "06035976f49fe52ced0365899acaa81da2edd55767c9283c3cb00c6f6ce83d0b"
XSD = "http://www.w3.org/2001/XMLSchema#"


class BuildError(Exception):
    """A build step failed; the previous store is untouched."""


def load_dataset(sources: Sources, iris: Iris) -> ox.Store:
    """An in-memory store holding each source file in its named graph, under ``iris.base``."""
    return _rebased(_load(sources, iris), iris)


def _load(sources: Sources, iris: Iris) -> ox.Store:
    """Each source file in its named graph, as written (Oxigraph's bulk loader: no Python
    objects per triple)."""

    mem = ox.Store()
    for name, paths in sources.by_graph().items():
        graph = ox.NamedNode(iris.graph(name))
        for path in paths:
            with validation.input_errors(path):  # as `namkg validate` reports them: file:line:col
                mem.bulk_load(path=str(path), format=ox.RdfFormat.TURTLE, to_graph=graph)
    return mem


def _rebased(mem: ox.Store, iris: Iris) -> ox.Store:
    """The IRIs minted under the default base moved under ``iris.base`` (if it differs)."""
    default = Iris(DEFAULT_BASE)
    if default.base == iris.base:
        return mem
    out = ox.Store()
    out.extend(ox.Quad(*(_rebase(term, default, iris) for term in (q.subject, q.predicate,
                                                                   q.object)), q.graph_name)
               for q in mem.quads_for_pattern(None, None, None, None))
    return out


def _rebase(term, default: Iris, iris: Iris):
    if isinstance(term, ox.NamedNode):
        return ox.NamedNode(default.rebase(term.value, iris))
    return term


class _Writer(threading.Thread):
    """Writes the sources into the new build while validation and the views run: Oxigraph's
    bulk loader releases the GIL. It reparses a dump, which renames blank nodes, so the views
    may only be added to it if they hold none (:func:`_write` checks)."""

    def __init__(self, target: Path, mem: ox.Store):
        super().__init__(name="namkg-build-writer", daemon=True)
        self.target, self.mem, self.error, self.store = target, mem, None, None
        self.dumped = threading.Event()

    def run(self) -> None:
        try:
            data = self.mem.dump(format=ox.RdfFormat.N_QUADS)
            self.dumped.set()
            self.store = ox.Store(str(self.target))
            self.store.bulk_load(data, format=ox.RdfFormat.N_QUADS, lenient=True)  # IRIs checked
        except BaseException as exc:  # reported by the building thread
            self.error = exc
        finally:
            self.dumped.set()

    def result(self) -> ox.Store:
        self.join()
        if self.error is not None:
            raise self.error
        store, self.store = self.store, None  # the caller's reference is the last one
        return store


def build(config: Config, *, log=print) -> Path:
    """Validate, derive and load into a new build, then swap it in. Returns the build path."""

    started = time.monotonic()
    sources = Sources.of(config.root)
    if sha256(sources.article) != SOURCE_SHA256:
        raise BuildError(f"{sources.article}: checksum differs from the published source")
    iris = Iris(config.base_iri)
    mem = _load(sources, iris)
    log(f"loaded {len(sources.all())} files in {time.monotonic() - started:.2f}s")

    store_dir = Path(config.store)
    builds = store_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    target = builds / f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}"
    # Under the default base the sources are final as parsed: write them meanwhile.
    writer = _Writer(target, mem) if Iris(DEFAULT_BASE).base == iris.base else None
    try:
        if writer is not None:
            writer.start()
        # The files, not the store: Oxigraph canonicalises literals, validation judges them
        # as written (the default engine).
        report = validation.validate(sources.facts + sources.links, sources.shapes,
                                     ontology_paths=sources.ontology)
        if not report.conforms:
            raise BuildError("validation failed:\n" + report.to_text())
        log(f"validated {len(sources.all())} files in {report.seconds:.2f}s")

        mem = _rebased(mem, iris)
        if writer is not None:
            writer.dumped.wait()  # mem is about to change
        t = time.monotonic()
        view = ox.NamedNode(iris.graph("wikidata"))
        derived = wikidata.derive_into(mem, iris, view)
        log(f"derived {derived} view triples in {time.monotonic() - t:.2f}s")
        _add_meta(mem, iris, sources)

        t = time.monotonic()
        store = _write(target, mem, writer, iris)
        count = len(store)
        del store  # closes the RocksDB handle before the swap
        log(f"wrote {count} quads in {time.monotonic() - t:.2f}s")
    except BaseException:
        if writer is not None:  # a bulk load cannot be stopped: wait, then remove what it wrote
            writer.join()
            writer.store = None
        shutil.rmtree(target, ignore_errors=True)
        raise
    previous = (store_dir / "current").resolve() if (store_dir / "current").is_symlink() else None
    _swap(store_dir, target)
    # Keep the previous build: a running server may still read it until it reloads.
    _prune(builds, keep={target, previous})
    log(f"built {count} quads into {target} in {time.monotonic() - started:.2f}s")
    return target


def _write(target: Path, mem: ox.Store, writer: _Writer | None, iris: Iris) -> ox.Store:
    """The on-disk store: the writer's sources plus the view and metadata from ``mem``, or
    all of ``mem``."""
    view, meta = ox.NamedNode(iris.graph("wikidata")), ox.NamedNode(iris.graph("meta"))
    blank = mem.query(f"ASK {{ GRAPH {view} {{ ?s ?p ?o FILTER(isBlank(?s) || isBlank(?o)) }} }}")
    if writer is not None and not blank:
        store = writer.result()
        # The view as bytes in one bulk load, no Python object per quad.
        store.bulk_load(mem.dump(format=ox.RdfFormat.N_TRIPLES, from_graph=view),
                        format=ox.RdfFormat.N_TRIPLES, to_graph=view, lenient=True)
        store.bulk_extend(mem.quads_for_pattern(None, None, None, meta))
    else:
        if writer is not None:  # its blank nodes were renamed: start over with mem's own
            writer.result()
            shutil.rmtree(target)
        store = ox.Store(str(target))
        store.bulk_extend(mem.quads_for_pattern(None, None, None, None))
    store.flush()
    store.optimize()
    return store


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
        n = graph_size(mem, graph)
        total += n
        quads += [(dataset, N(META["subset"]), graph), (graph, N(META["type"]), N(META["dataset"])),
                  (graph, N(META["sd_name"]), graph),
                  (graph, N(META["triples"]), L(str(n), datatype=N(XSD + "integer")))]
    quads.append((dataset, N(META["triples"]), L(str(total), datatype=N(XSD + "integer"))))
    # Each triple once: the union default graph is a bag, so a triple the data already states
    # (``<dataset> a void:Dataset`` is in data/article.ttl) would count twice in COUNT(*).
    mem.extend(ox.Quad(s, p, o, meta) for s, p, o in quads
               if next(mem.quads_for_pattern(s, p, o, None), None) is None)


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
