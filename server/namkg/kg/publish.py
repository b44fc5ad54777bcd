"""Publish the built graph into an existing SPARQL store (Virtuoso, Fuseki, GraphDB, ...).

Each named graph of the store (ontology, facts, links, wikidata, meta) is published under its
own IRI, so the site served from the remote (``namkg.query.remote``) finds them where the embedded
store has them; with ``graph=`` the union of all of them goes into that one graph instead.

The steps, so that a failed publish leaves the target's previous copy untouched and a
re-publish replaces it (never duplicates):

1. write each graph into a fresh temporary graph (``urn:uuid:…``): a SPARQL 1.1 Graph Store
   Protocol ``PUT to?graph=<tmp>`` of N-Triples sent as ``text/turtle`` (every store reads
   it); where ``to`` has no Graph Store (PUT answers 404, 405, 415 or 501), SPARQL Update
   ``INSERT DATA`` in batches of ``batch`` triples;
2. count each temporary graph through the query endpoint, and read it back: a difference
   stops here, whether the target dropped or merged triples (Virtuoso stores
   ``"01"^^xsd:integer`` as ``"1"``) or altered them (Virtuoso 7.2 stores
   ``"P1Y"^^xsd:duration`` as ``"12"^^xsd:duration``), unless ``allow_altered``;
3. swap: one SPARQL Update request of ``MOVE <tmp> TO <graph>`` operations (atomic on
   Virtuoso: one transaction), ``DROP SILENT GRAPH`` for a graph that is now empty;
4. read back ``COUNT(*)`` of each target graph and raise :class:`PublishError` on any
   difference from the local count.

On failure before the swap the temporary graphs are dropped (best effort). Blank nodes, if
any, are skolemized (``/.well-known/genid/`` IRIs, RFC 7511) so batches and re-publishes
agree on them. Credentials come from the caller (the CLI reads them from environment
variables) and are never printed or put in URLs.

>>> gsp, update, query = endpoints("http://h:8890/sparql-graph-crud-auth")
>>> update, query
('http://h:8890/sparql-auth', 'http://h:8890/sparql')
>>> endpoints("http://h:3030/ds/data")[1:]
('http://h:3030/ds/update', 'http://h:3030/ds/query')
>>> endpoints("http://h:7200/repositories/nam/rdf-graphs/service")[1:]
('http://h:7200/repositories/nam/statements', 'http://h:7200/repositories/nam')
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pyoxigraph as ox
import requests

from ..query.auth import check_url, http_auth
from ..shacl import validation
from .layout import Sources, open_store

__all__ = ["Alteration", "PublishError", "PublishResult", "altered", "endpoints", "local_graphs",
           "publish", "publish_repo"]

NO_GSP = (404, 405, 415, 501)  # answers to PUT that mean "no Graph Store here"
TIMEOUT = 300.0  # seconds for one HTTP request


class PublishError(Exception):
    """Publishing failed or the target does not hold what was sent."""


class Alteration(NamedTuple):
    """A triple sent and what the target holds in its place (None: nothing)."""

    sent: ox.Triple
    stored: ox.Triple | None

    def __str__(self) -> str:
        now = "(missing)" if self.stored is None else str(self.stored.object)
        return f"{self.sent.subject} {self.sent.predicate} {self.sent.object} -> {now}"


@dataclass(frozen=True)
class PublishResult:
    triples: int  # sent, over all target graphs
    seconds: float
    method: str  # "gsp" | "update" | "dry-run"
    graph: str | None  # the one target graph, or None when each graph kept its name
    graphs: dict[str, int] = field(default_factory=dict)  # target graph -> triples
    altered: tuple[Alteration, ...] = ()  # what the target stores differently (allow_altered)


# ---------------------------------------------------------------- endpoints

_SUFFIXES = (  # GSP path suffix -> (update, query) path suffixes, per store
    ("/sparql-graph-crud-auth", "/sparql-auth", "/sparql"),  # Virtuoso
    ("/sparql-graph-crud", "/sparql", "/sparql"),  # Virtuoso, unauthenticated
    ("/rdf-graphs/service", "/statements", ""),  # RDF4J, GraphDB
    ("/data", "/update", "/query"),  # Fuseki
    ("/store", "/update", "/query"),  # Oxigraph server
)


# Paths of SPARQL query/update endpoints: no Graph Store there, and a PUT can hurt (Virtuoso
# 7.2 spins at 100% CPU on a PUT to /sparql), so publishing there uses SPARQL Update only.
SPARQL_PATHS = ("/sparql", "/sparql-auth", "/update", "/statements")


def endpoints(to: str, update_endpoint: str | None = None,
              query_endpoint: str | None = None) -> tuple[str, str, str]:
    """(Graph Store, update, query) URLs: the given ones, else derived from ``to``."""
    check_url(to)
    path = urlsplit(to).path.rstrip("/")
    update, query = to, to  # one URL for everything, as many stores allow
    for gsp, upd, qry in _SUFFIXES:
        if path.endswith(gsp):
            stem = to[: to.rindex(gsp)]
            update, query = stem + upd, stem + qry
            break
    update = check_url(update_endpoint) if update_endpoint else update
    query = check_url(query_endpoint) if query_endpoint else query
    return to, update, query


# ---------------------------------------------------------------- local data


def local_graphs(store: ox.Store, graph: str | None) -> dict[str, list[ox.Triple]]:
    """Target graph -> its triples (distinct, skolemized), from ``store``.

    ``graph=None``: each named graph of the store under its own name (the default graph must
    be empty). Otherwise the union of all graphs, default graph included, into ``graph``.
    """
    out: dict[str, dict[ox.Triple, None]] = {}
    for q in store.quads_for_pattern(None, None, None, None):
        if graph is not None:
            target = graph
        elif isinstance(q.graph_name, ox.DefaultGraph):
            raise PublishError("the store has triples in its default graph; name a target "
                               "graph (--graph) to publish the union of all graphs")
        else:
            target = q.graph_name.value
        t = ox.Triple(_skolem(q.subject), q.predicate, _skolem(q.object))
        out.setdefault(target, {})[t] = None
    return {g: list(ts) for g, ts in sorted(out.items())}


def _skolem(term):
    if isinstance(term, ox.BlankNode):
        # Stable for one store: the same node gets the same IRI in every batch and graph.
        digest = hashlib.sha256(term.value.encode()).hexdigest()[:32]
        return ox.NamedNode("https://w3id.org/nam-kg/.well-known/genid/" + digest)
    if isinstance(term, ox.Triple):  # RDF-star quoted triple
        return ox.Triple(_skolem(term.subject), term.predicate, _skolem(term.object))
    return term


def _ntriples(triples: Iterable[ox.Triple]) -> bytes:
    return ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES)


# ---------------------------------------------------------------- publishing


def publish(store: ox.Store, *, to: str, graph: str | None = None,
            auth: tuple[str, str] | None = None, token: str | None = None,
            dry_run: bool = False, query_endpoint: str | None = None,
            update_endpoint: str | None = None, method: str = "auto", batch: int = 500,
            allow_altered: bool = False, log: Callable[[str], None] = print) -> PublishResult:
    """Publish ``store``'s graphs to the store at ``to`` (its Graph Store URL); see module doc.

    ``method``: "auto" (Graph Store, else SPARQL Update), "gsp" or "update".
    ``allow_altered``: publish even if the target stores some triples differently from what
    was sent (a warning per triple instead of an error); see :func:`altered`.
    """
    if method not in ("auto", "gsp", "update"):
        raise ValueError(f"method must be auto, gsp or update, not {method!r}")
    started = time.monotonic()
    gsp_url, update_url, query_url = endpoints(to, update_endpoint, query_endpoint)
    if urlsplit(gsp_url).path.rstrip("/").endswith(SPARQL_PATHS):
        if method == "gsp":
            raise ValueError(f"{gsp_url} is a SPARQL endpoint, not a Graph Store")
        method = "update"
    data = local_graphs(store, graph)
    if graph is None and not data:
        raise PublishError("the store is empty: nothing to publish")
    if graph is not None:
        data.setdefault(graph, [])
    total = sum(len(ts) for ts in data.values())
    counts = {g: len(ts) for g, ts in data.items()}
    names = ", ".join(f"<{g}> ({n})" for g, n in counts.items())
    if dry_run:
        how = {"auto": f"Graph Store PUT to {gsp_url} (else INSERT DATA via {update_url})",
               "gsp": f"Graph Store PUT to {gsp_url}", "update": f"INSERT DATA via {update_url}"}
        log(f"dry run: would publish {total} triples into {names}")
        log(f"dry run: each into a temporary graph by {how[method]}, then MOVE into place "
            f"via {update_url}, then count through {query_url}; nothing was written")
        return PublishResult(total, time.monotonic() - started, "dry-run", graph, counts)

    session = requests.Session()
    session.auth = http_auth(auth, token)
    target = _Target(session, gsp_url, update_url, query_url)
    tmp = {g: f"urn:uuid:{uuid.uuid4()}" for g, ts in data.items() if ts}
    used, phase = method, "write"
    try:
        for g, name in tmp.items():
            used = target.write(name, data[g], used, batch)
            log(f"wrote {len(data[g])} triples into temporary graph <{name}> for <{g}> "
                f"({used})")
        got = target.count(list(tmp.values()))
        for g, name in tmp.items():
            if got.get(name, 0) != counts[g]:
                raise PublishError(f"the target holds {got.get(name, 0)} triples of the "
                                   f"{counts[g]} sent for <{g}> (it merged or dropped some)")
        changes = [c for g, name in tmp.items()
                   for c in altered(data[g], target.fetch(name, counts[g], log))]
        if changes and not allow_altered:
            raise PublishError(f"the target stores {len(changes)} triple(s) differently from "
                               "what was sent: " + "; ".join(map(str, changes[:5]))
                               + " (allow_altered=True / --allow-altered publishes anyway)")
        for change in changes[:20]:
            log(f"warning: the target altered {change}")
        if len(changes) > 20:
            log(f"warning: ... and {len(changes) - 20} more altered triples")
        phase = "swap"
        swap = [f"MOVE <{tmp[g]}> TO <{g}>" if g in tmp else f"DROP SILENT GRAPH <{g}>"
                for g in data]
        target.update(" ;\n".join(swap), "swapping the new graphs into place")
    except PublishError as exc:
        target.drop_quietly(list(tmp.values()))
        session.close()
        raise PublishError(f"{exc}; " + (
            "the target's graphs are unchanged" if phase == "write" else
            "the swap is one update request, which Virtuoso, Fuseki (TDB2) and GraphDB run "
            "as one transaction: there the graphs are unchanged")) from exc
    except BaseException:
        target.drop_quietly(list(tmp.values()))
        session.close()
        raise
    try:
        got = target.count(list(data))
    finally:
        session.close()
    wrong = {g: (got.get(g, 0), n) for g, n in counts.items() if got.get(g, 0) != n}
    if wrong:
        detail = ", ".join(f"<{g}>: {have} of {want}" for g, (have, want) in wrong.items())
        raise PublishError(f"read back after publishing, the target differs: {detail}")
    seconds, used = time.monotonic() - started, "gsp" if used == "auto" else used
    log(f"published {total} triples into {names} in {seconds:.2f}s ({used})")
    return PublishResult(total, seconds, used, graph, counts, tuple(changes))


def altered(sent: list[ox.Triple], stored: list[ox.Triple] | None) -> list[Alteration]:
    """What the target changed: sent triples it does not hold, each with the triple it holds
    instead (same subject and predicate), e.g. Virtuoso 7.2 turns ``"P1Y"^^xsd:duration``
    into ``"12"^^xsd:duration``. None (not checked) gives no changes.

    >>> s, p = ox.NamedNode("http://ex/s"), ox.NamedNode("http://ex/p")
    >>> one, two = (ox.Triple(s, p, ox.Literal(v)) for v in ("1", "01"))
    >>> [str(a) for a in altered([one, two], [one, one])]
    ['<http://ex/s> <http://ex/p> "01" -> "1"']
    """
    if stored is None:
        return []
    held, sent_set = set(stored), set(sent)
    extra: dict[tuple, list[ox.Triple]] = {}
    same: dict[tuple, ox.Triple] = {}  # a merged triple shows as one that was also sent
    for t in held:
        if t not in sent_set:
            extra.setdefault((t.subject, t.predicate), []).append(t)
        same.setdefault((t.subject, t.predicate), t)
    out = []
    for t in sent:
        if t not in held:
            key = (t.subject, t.predicate)
            out.append(Alteration(t, extra[key].pop(0) if extra.get(key) else same.get(key)))
    return out


def publish_repo(config, *, to: str, log: Callable[[str], None] = print, **options
                 ) -> PublishResult:
    """Validate the repository's data, then publish the store built from it (``namkg build``).

    Refuses to publish when the data do not conform to the shapes.
    """
    sources = Sources.of(Path(config.root))
    report = validation.validate(sources.facts + sources.links, sources.shapes,
                                 ontology_paths=sources.ontology)
    if not report.conforms:
        raise PublishError("validation failed, nothing published:\n" + report.to_text())
    try:
        store = open_store(Path(config.store))
    except (FileNotFoundError, OSError) as exc:
        raise PublishError(f"{exc}") from exc
    return publish(store, to=to, log=log, **options)


class _Target:
    """The remote store's three endpoints over one authenticated session."""

    def __init__(self, session: requests.Session, gsp: str, update_url: str, query: str):
        self.session, self.gsp, self.update_url, self.query = session, gsp, update_url, query

    def write(self, name: str, triples: list[ox.Triple], method: str, batch: int) -> str:
        """Fill graph ``name``; returns the method used ("auto" resolved after the first)."""
        if method in ("auto", "gsp"):
            r = self._send("PUT", self.gsp, params={"graph": name}, data=_ntriples(triples),
                           headers={"Content-Type": "text/turtle; charset=utf-8"})
            if r.status_code not in NO_GSP or method == "gsp":
                self._ok(r, f"writing <{name}> by Graph Store PUT to {self.gsp}")
                return "gsp"
        for start in range(0, len(triples), batch):
            body = _ntriples(triples[start:start + batch]).decode("utf-8")
            self.update(f"INSERT DATA {{ GRAPH <{name}> {{\n{body}}} }}",
                        f"inserting triples {start + 1}-{start + batch} into <{name}>")
        return "update"

    def update(self, sparql: str, doing: str) -> None:
        r = self._send("POST", self.update_url, data={"update": sparql})
        self._ok(r, doing + f" (SPARQL Update at {self.update_url})")

    def count(self, graphs: list[str]) -> dict[str, int]:
        values = " ".join(f"<{g}>" for g in graphs)
        q = (f"SELECT ?g (COUNT(*) AS ?n) WHERE {{ VALUES ?g {{ {values} }} "
             f"GRAPH ?g {{ ?s ?p ?o }} }} GROUP BY ?g")
        r = self._send("POST", self.query, data={"query": q},
                       headers={"Accept": "application/sparql-results+json"})
        self._ok(r, f"counting the triples through {self.query}")
        try:
            rows = r.json()["results"]["bindings"]
            return {row["g"]["value"]: int(row["n"]["value"]) for row in rows}
        except (ValueError, KeyError, TypeError) as exc:
            raise PublishError(f"unreadable count from {self.query}: {exc}") from exc

    def fetch(self, name: str, expected: int, log) -> list[ox.Triple] | None:
        """The triples of graph ``name`` as the target returns them (None: not checkable)."""
        q = f"CONSTRUCT {{ ?s ?p ?o }} WHERE {{ GRAPH <{name}> {{ ?s ?p ?o }} }}"
        r = self._send("POST", self.query, data={"query": q},
                       headers={"Accept": "application/n-triples"})
        self._ok(r, f"reading <{name}> back through {self.query}")
        try:
            triples = [ox.Triple(q.subject, q.predicate, q.object)  # parse gives quads
                       for q in ox.parse(r.content, format=ox.RdfFormat.N_TRIPLES)]
        except SyntaxError as exc:
            log(f"warning: content of <{name}> not checked: unreadable N-Triples ({exc})")
            return None
        if len(triples) < expected:  # the endpoint's own row cap (Virtuoso ResultSetMaxRows)
            log(f"warning: content of <{name}> not checked: the query endpoint returned "
                f"{len(triples)} of {expected} triples")
            return None
        return triples

    def drop_quietly(self, graphs: list[str]) -> None:
        if graphs:
            try:
                self._send("POST", self.update_url, data={"update": " ;\n".join(
                    f"DROP SILENT GRAPH <{g}>" for g in graphs)}, timeout=30)
            except PublishError:
                pass  # the failure being reported matters more; tmp graphs are uniquely named

    def _send(self, method: str, url: str, *, timeout: float = TIMEOUT, **kw
              ) -> requests.Response:
        try:
            return self.session.request(method, url, timeout=(10, timeout), **kw)
        except requests.RequestException as exc:
            raise PublishError(f"{method} {url} failed: {type(exc).__name__}") from None

    @staticmethod
    def _ok(r: requests.Response, doing: str) -> None:
        if r.status_code < 300:
            return
        if r.status_code in (401, 403):
            raise PublishError(f"{doing}: the target refused the credentials "
                               f"(HTTP {r.status_code})")
        text = r.text.split("\n\nSPARQL query:")[0].strip()[:300]
        raise PublishError(f"{doing}: HTTP {r.status_code}" + (f": {text}" if text else ""))
