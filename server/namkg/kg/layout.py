"""Where things are: the source files of a checkout (which file goes into which named graph)
and the store directory (``builds/<id>/``, one Oxigraph store per build, and ``current``, the
link to the build being served); opening and counting the served build.

Every other module reads the layout through these functions, so that build, serve, query,
export and publish agree on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pyoxigraph as ox

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


# What we record about Wikidata rather than about the article: our links (with their evidence)
# and Wikidata's own terms as recorded (with their sources).
LINK_FILES = ("links.ttl", "wikidata-terms.ttl")


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
            facts=[p for p in data if p.name not in LINK_FILES],
            links=[p for p in data if p.name in LINK_FILES],
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


def graph_size(store: ox.Store, graph: ox.NamedNode) -> int:
    """How many triples ``graph`` of ``store`` holds (counted in Oxigraph, no Python objects)."""
    (row,) = store.query(f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH {graph} {{ ?s ?p ?o }} }}")
    return int(row["n"].value)
