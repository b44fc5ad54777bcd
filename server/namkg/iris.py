"""The IRIs nam-kg mints, under one configurable base.

>>> iris = Iris("https://w3id.org/nam-kg/")
>>> iris.entity("azerbaijan")
'https://w3id.org/nam-kg/id/azerbaijan'
>>> iris.graph("facts")
'https://w3id.org/nam-kg/graph/facts'
>>> iris.rebase("https://w3id.org/nam-kg/id/x", Iris("http://localhost:8000/"))
'http://localhost:8000/id/x'
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import DEFAULT_BASE

GRAPH_NAMES = ("ontology", "facts", "links", "wikidata", "meta")


@dataclass(frozen=True)
class Iris:
    base: str = DEFAULT_BASE

    @property
    def ontology(self) -> str:
        return self.base + "ontology"

    @property
    def vocab(self) -> str:  # namespace of ontology terms (hash IRIs)
        return self.base + "ontology#"

    @property
    def dataset(self) -> str:
        return self.base + "dataset"

    def entity(self, slug: str) -> str:
        return self.base + "id/" + slug

    def graph(self, name: str) -> str:
        return self.base + "graph/" + name

    def rebase(self, iri: str, other: Iris) -> str:
        """The same IRI under another base (data files are written under the default base)."""
        return other.base + iri[len(self.base):] if iri.startswith(self.base) else iri

    def graphs(self) -> dict[str, str]:
        return {name: self.graph(name) for name in GRAPH_NAMES}
