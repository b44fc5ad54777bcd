"""The SPARQL 1.1 Service Description of the endpoint (what ``GET /sparql`` without a query
answers): its formats, features, dataset and named graphs, deadline and row limit."""

from __future__ import annotations

from collections.abc import Iterable

import pyoxigraph as ox

from ..iris import GRAPH_NAMES, Iris
from .protocol import GRAPH_FORMATS, SOLUTION_FORMATS, format_iri

SD = "http://www.w3.org/ns/sparql-service-description#"
_RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")
_XSD = "http://www.w3.org/2001/XMLSchema#"
_PREFIXES = {"sd": SD, "xsd": _XSD}


def service_description(
    endpoint_url: str,
    iris: Iris,
    graph_names: Iterable[str] = GRAPH_NAMES,
    *,
    media: str = "text/turtle",
    update_url: str | None = None,
    federated: bool = False,
    timeout: float | None = None,
    result_limit: int | None = None,
) -> bytes:
    """An SPARQL 1.1 Service Description of the endpoint, serialized as ``media``.

    ``timeout`` and ``result_limit`` are stated with ``<vocab>queryTimeout`` (xsd:decimal
    seconds) and ``<vocab>resultLimit`` (rows or triples), our own extension properties.

    >>> ttl = service_description("http://localhost/sparql", Iris(), ["facts"]).decode()
    >>> "sd:UnionDefaultGraph" in ttl and "<https://w3id.org/nam-kg/graph/facts>" in ttl
    True
    """
    triples = _sd_triples(endpoint_url, iris, graph_names, update_url, federated,
                          timeout, result_limit)
    fmt = next((f for f in GRAPH_FORMATS if f.media_type == media), ox.RdfFormat.TURTLE)
    prefixes = {**_PREFIXES, "namkg": iris.vocab}
    return ox.serialize(triples, format=fmt, prefixes=prefixes)


def _sd_triples(endpoint_url, iris, graph_names, update_url, federated, timeout, result_limit):
    def sd(name: str) -> ox.NamedNode:
        return ox.NamedNode(SD + name)

    triples: list[ox.Triple] = []

    def add(s, p, o):
        triples.append(ox.Triple(s, p, o))

    service, dataset, default = ox.BlankNode(), ox.BlankNode(), ox.BlankNode()
    add(service, _RDF_TYPE, sd("Service"))
    add(service, sd("endpoint"), ox.NamedNode(endpoint_url))
    add(service, sd("supportedLanguage"), sd("SPARQL11Query"))
    for fmt in SOLUTION_FORMATS + GRAPH_FORMATS:
        add(service, sd("resultFormat"), ox.NamedNode(format_iri(fmt)))
    add(service, sd("feature"), sd("UnionDefaultGraph"))
    if federated:
        add(service, sd("feature"), sd("BasicFederatedQuery"))
    if timeout is not None:
        add(service, ox.NamedNode(iris.vocab + "queryTimeout"),
            ox.Literal(str(timeout), datatype=ox.NamedNode(_XSD + "decimal")))
    if result_limit is not None:
        add(service, ox.NamedNode(iris.vocab + "resultLimit"),
            ox.Literal(str(result_limit), datatype=ox.NamedNode(_XSD + "integer")))
    add(service, sd("defaultDataset"), dataset)
    add(dataset, _RDF_TYPE, sd("Dataset"))
    add(dataset, sd("defaultGraph"), default)
    add(default, _RDF_TYPE, sd("Graph"))
    for name in graph_names:
        named = ox.BlankNode()
        add(dataset, sd("namedGraph"), named)
        add(named, _RDF_TYPE, sd("NamedGraph"))
        add(named, sd("name"), ox.NamedNode(iris.graph(name)))
    if update_url:
        # Updates are taken at another URL, so they are a service of their own.
        updates = ox.BlankNode()
        add(updates, _RDF_TYPE, sd("Service"))
        add(updates, sd("endpoint"), ox.NamedNode(update_url))
        add(updates, sd("supportedLanguage"), sd("SPARQL11Update"))
        add(updates, sd("defaultDataset"), dataset)
    return triples
