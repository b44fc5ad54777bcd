"""Serve from an existing SPARQL store: an executor that forwards queries over HTTP.

:class:`RemoteExecutor` has the interface of :class:`namkg.query.executor.Executor`, so the UI,
``/sparql``, the entity pages and the dumps run unchanged over a Virtuoso, Fuseki or GraphDB
endpoint holding the published graphs (see :mod:`namkg.kg.publish`).

How it answers, and why:

- It asks the remote for one format per query form (SPARQL JSON results for SELECT/ASK,
  N-Triples for CONSTRUCT/DESCRIBE, which every store writes) and re-serializes with pyoxigraph
  into the negotiated format. So every format the embedded store offers is offered here too,
  even those the remote lacks (Virtuoso has no N-Quads or TriG), and results are counted and
  cut at ``result_limit`` exactly as the embedded executor does (``truncated`` set). The
  remote still computes the whole result. Its own row cap (Virtuoso's ``ResultSetMaxRows``)
  should be above ``result_limit``: a SELECT it cut is marked truncated (Virtuoso says so in
  ``X-SPARQL-MaxRows``), but a CONSTRUCT it cut cannot be told from a complete one.
- The deadline is the HTTP deadline; Virtuoso is also passed its ``timeout`` (ms) so it stops
  working too. Virtuoso then answers 200 with *partial* results and ``X-SQL-State: S1TAT``:
  those are refused as a timeout, never served as if complete.
- The dataset: unless the request or the query (FROM) names one, the default graph is the
  union of ``default_graphs`` (the published graphs, like the embedded store's union default
  graph) and ``GRAPH ?g`` ranges over ``named_graphs``; without them a shared store would
  show its other graphs (Virtuoso's default graph is every graph, system ones included).
- Errors keep the executor's statuses: a syntax error the remote reports is 400
  (:class:`QuerySyntaxError`), a timeout 503 (:class:`QueryTimeout`), an unreachable remote
  503 (:class:`BackendUnavailable`, a :class:`WorkerCrashed`), other remote failures 502.

Credentials (Digest, as Virtuoso's ``/sparql-auth`` wants, Basic, or a Bearer token) are sent
only when the remote asks for them and never appear in messages or logs (:mod:`.auth`).

>>> query_form("PREFIX select: <x:> # ASK\\nconstruct { ?s select:a 'ask' } WHERE {}")
'graph'
>>> query_form("SELECT * {}"), query_form("ask {}"), query_form("nonsense")
('solutions', 'boolean', None)
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence

import pyoxigraph as ox
import requests

from ..iris import Iris
from .auth import check_url, http_auth
from .backend import (
    Busy,
    NotAcceptable,
    QueryError,
    QuerySyntaxError,
    QueryTimeout,
    Result,
    UpdateRefused,
    WorkerCrashed,
)
from .guard_lexer import Lexer
from .prepare import LargeTexts, prepare_query, prepare_update
from .safety import declares_dataset

SOLUTIONS_WIRE = "application/sparql-results+json"
GRAPH_WIRE = "application/n-triples"
_FORMS = {"select": "solutions", "ask": "boolean", "construct": "graph", "describe": "graph"}
_PROBE_EVERY = 5.0  # seconds a health probe is trusted
_CONNECT_TIMEOUT = 3.0


class BackendUnavailable(WorkerCrashed):
    """The remote store cannot be reached (503, as a crashed worker: it may come back)."""


def query_form(sparql: str) -> str | None:
    """'solutions' (SELECT), 'boolean' (ASK), 'graph' (CONSTRUCT, DESCRIBE) or None.

    The first keyword after the prologue; words in IRIs, strings, comments and prefixed names
    are not keywords (the lexer of :mod:`namkg.query.safety`).
    """
    lexer, pos = Lexer(sparql), 0
    while (tok := lexer.token(pos)) is not None:
        kind, start, pos = tok
        if kind == "word":
            word = sparql[start:pos].lower()
            if word in _FORMS:
                return _FORMS[word]
            if word not in ("prefix", "base"):
                return None
    return None


# ---------------------------------------------------------------- the executor


class RemoteExecutor:
    """Forwards queries to a remote SPARQL 1.1 endpoint; thread-safe.

    ``default_graphs``/``named_graphs`` are the published graphs (see module docstring);
    ``update_url`` enables :meth:`update`, which is refused otherwise, as on a read-only
    embedded executor. ``max_concurrency`` requests at once reach the remote; others wait up
    to their deadline, then get :class:`Busy`. ``server_timeout`` (seconds, default: each
    query's deadline) is the limit Virtuoso is asked to apply itself.
    """

    sandbox: str | None = None  # the queries run on the remote store, not in our processes

    def __init__(self, endpoint_url: str, *, timeout: float = 5.0, result_limit: int = 10_000,
                 auth: tuple[str, str] | None = None, token: str | None = None,
                 default_graphs: Sequence[str] = (), named_graphs: Sequence[str] | None = None,
                 update_url: str | None = None, max_concurrency: int = 8,
                 max_bytes: int = 64 * 1024 * 1024, server_timeout: float | None = None,
                 allowlist: Sequence[str] = ()):
        if timeout <= 0 or result_limit < 0 or max_concurrency < 1:
            raise ValueError("timeout must be > 0, result_limit >= 0, max_concurrency >= 1")
        self.url = check_url(endpoint_url)
        self.update_url = check_url(update_url) if update_url else None
        self.timeout, self.result_limit, self.max_bytes = timeout, result_limit, max_bytes
        self.server_timeout = server_timeout
        self.allowlist = frozenset(allowlist)  # SERVICE endpoints a client's text may call
        self._large = LargeTexts()  # a client's text is made ready here, in the HTTP process
        self.writable = self.update_url is not None
        self.default_graphs = list(default_graphs)
        self.named_graphs = list(default_graphs if named_graphs is None else named_graphs)
        self._session = requests.Session()
        self._session.auth = http_auth(auth, token)
        adapter = requests.adapters.HTTPAdapter(pool_maxsize=max_concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()
        self._counts = {"timeouts": 0, "crashes": 0, "queries": 0}
        self._busy = 0
        self._virtuoso: bool | None = None  # learnt from the Server header
        self._healthy_at = float("-inf")
        self._closed = False

    @classmethod
    def from_config(cls, config, endpoint_url: str, **options) -> RemoteExecutor:
        """For ``namkg serve --backend URL``: the deadline, result cap and the published graphs
        (see :func:`namkg.kg.publish.publish`) of ``config``."""
        options.setdefault("default_graphs", list(Iris(config.base_iri).graphs().values()))
        return cls(endpoint_url, timeout=config.query_timeout,
                   result_limit=config.result_limit, allowlist=config.service_allowlist,
                   **options)

    # --- the Executor interface --------------------------------------------------------

    def query(self, sparql: str, *, solutions_format: str | None, graph_format: str | None,
              default_graphs: list[str] | None = None, named_graphs: list[str] | None = None,
              base_iri: str | None = None, timeout: float | None = None,
              deadline: float | None = None, client: bool = False,
              uselang: str | None = None) -> Result:
        """Run a query remotely; formats are negotiated media types (None: not acceptable);
        ``deadline`` (``time.monotonic()``) shortens the timeout to the client's time left;
        ``client``: a client's text, made ready first (:mod:`namkg.query.prepare`)."""
        if client:
            limit = self.timeout if timeout is None else timeout
            with self._large.turn(len(sparql), deadline or time.monotonic() + limit):
                sparql = prepare_query(sparql, uselang, self.allowlist)
        sol = _format(ox.QueryResultsFormat, solutions_format)
        graph = _format(ox.RdfFormat, graph_format)
        form = query_form(sparql)
        if form in ("solutions", "boolean") and sol is None or form == "graph" and graph is None:
            raise NotAcceptable(f"no acceptable format for a {form} result")
        params: list[tuple[str, str]] = [
            ("query", f"BASE <{base_iri}>\n{sparql}" if base_iri else sparql)]
        own_dataset = declares_dataset(sparql)
        if default_graphs is not None or named_graphs is not None:  # the request's dataset
            params += [("default-graph-uri", g) for g in default_graphs or ()]
            params += [("named-graph-uri", g) for g in named_graphs or ()]
        elif not own_dataset:
            params += [("default-graph-uri", g) for g in self.default_graphs]
            params += [("named-graph-uri", g) for g in self.named_graphs]
        accept = GRAPH_WIRE if form == "graph" else SOLUTIONS_WIRE
        limit = self.timeout if timeout is None else timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QueryTimeout("the request's time ran out before its query could start")
            limit = min(limit, left)
        response, body = self._post(self.url, params, accept, limit)
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        as_graph = form == "graph" or (form is None and kind not in (
            SOLUTIONS_WIRE, "application/sparql-results+xml"))
        if (graph if as_graph else sol) is None:  # a form the lexer did not recognise
            raise NotAcceptable(f"no acceptable format for a {'graph' if as_graph else 'solutions'}"
                                " result")
        try:
            if as_graph:
                return self._graph(body, kind, graph)
            # Virtuoso says when its own row cap (ResultSetMaxRows) cut a SELECT result.
            capped = "X-SPARQL-MaxRows" in response.headers
            return self._solutions(body, kind, sol, capped)
        except (SyntaxError, ValueError) as exc:
            raise QueryError(f"the SPARQL backend sent an unreadable {kind or 'untyped'} "
                             f"result: {exc}", 502) from exc

    def update(self, sparql: str, *, timeout: float | None = None, client: bool = False) -> None:
        """Forward a SPARQL update to ``update_url``; refused when there is none."""
        if self.update_url is None:
            raise UpdateRefused("this endpoint is read-only: updates are not accepted")
        if client:
            sparql = prepare_update(sparql, self.allowlist)
        self._post(self.update_url, [("update", sparql)], "*/*",
                   self.timeout if timeout is None else timeout, update=True)

    def reload(self, store_path) -> None:
        """Nothing to reload: the remote store is the source of truth."""

    def stats(self) -> dict:
        """Like the embedded executor's; ``workers`` is 1 while the remote answers, else 0."""
        healthy = self._healthy()  # may probe the remote: not under the lock
        with self._lock:
            return {"workers": int(healthy), "busy": self._busy, "starting": 0,
                    **self._counts, "backend": self.url}

    def close(self) -> None:
        self._closed = True
        self._session.close()

    def __enter__(self) -> RemoteExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- HTTP ---------------------------------------------------------------------------

    def _post(self, url: str, params: list[tuple[str, str]], accept: str, timeout: float,
              *, update: bool = False) -> tuple[requests.Response, bytes]:
        if self._closed:
            raise QueryError("the query executor is closed", 503)
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=timeout):
            raise Busy("all connections to the SPARQL backend are busy; try again later",
                       max(1, round(timeout)))
        with self._lock:
            self._busy += 1
            self._counts["queries"] += 1
        try:
            if self._virtuoso:  # ask Virtuoso to stop at our deadline too (it counts in ms)
                limit = timeout if self.server_timeout is None else self.server_timeout
                params = [*params, ("timeout", str(max(1, int(limit * 1000))))]
            try:
                response = self._session.post(
                    url, data=params, headers={"Accept": accept}, stream=True,
                    timeout=(min(_CONNECT_TIMEOUT, timeout), max(0.01, timeout)))
                body = self._read(response, deadline, timeout)
            except requests.Timeout:
                self._count("timeouts")
                raise QueryTimeout(
                    f"the query did not finish within the {timeout:g} s deadline") from None
            except requests.ConnectionError:
                self._count("crashes")
                self._healthy_at = float("-inf")
                raise BackendUnavailable(f"the SPARQL backend {self.url} cannot be reached; "
                                         "the query was not answered") from None
            self._healthy_at = time.monotonic()
            if self._virtuoso is None:
                self._virtuoso = "virtuoso" in response.headers.get("Server", "").lower()
            self._check(response, body, timeout, update)
            return response, body
        finally:
            with self._lock:
                self._busy -= 1
            self._slots.release()

    def _read(self, response: requests.Response, deadline: float, timeout: float) -> bytes:
        parts, size = [], 0
        try:
            for chunk in response.iter_content(65536):
                size += len(chunk)
                if size > self.max_bytes:
                    raise QueryError(f"the SPARQL backend's answer is over {self.max_bytes} "
                                     "bytes", 502)
                if time.monotonic() > deadline:
                    raise requests.Timeout()
                parts.append(chunk)
        except requests.exceptions.ChunkedEncodingError as exc:
            raise requests.ConnectionError(str(exc)) from None
        finally:
            response.close()
        return b"".join(parts)

    def _check(self, response: requests.Response, body: bytes, timeout: float,
               update: bool) -> None:
        status = response.status_code
        text = _message(body)
        if status < 300:
            # Virtuoso's "anytime" answer: 200 with what it had at its timeout. Incomplete.
            if response.headers.get("X-SQL-State", "").upper().startswith("S1T"):
                self._count("timeouts")
                raise QueryTimeout(f"the query did not finish within the {timeout:g} s deadline "
                                   "(the backend stopped it)")
            return
        if _is_timeout(text) or status == 504:
            self._count("timeouts")
            raise QueryTimeout(f"the query did not finish within the {timeout:g} s deadline "
                               f"(the backend says: {text})" if text else
                               f"the query did not finish within the {timeout:g} s deadline")
        if status == 400 or text.startswith("Virtuoso 37000"):
            raise QuerySyntaxError(text or "the SPARQL backend refused the query as malformed")
        if text.startswith("Virtuoso 22"):  # data exceptions: the query's own doing
            raise QueryError(f"query evaluation failed: {text}", 400)
        if status in (401, 403):
            what = "update" if update else "query"
            raise QueryError(f"the SPARQL backend refused our credentials for this {what} "
                             f"(HTTP {status})", 502)
        if status in (429, 503):
            retry = response.headers.get("Retry-After", "")
            raise Busy("the SPARQL backend is busy; try again later",
                       int(retry) if retry.isdigit() else 1)
        raise QueryError(f"the SPARQL backend failed (HTTP {status})"
                         + (f": {text}" if text else ""), 502)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _healthy(self) -> bool:
        """Whether the remote answered lately; else probe it (at most every few seconds)."""
        now = time.monotonic()
        if now - self._healthy_at < _PROBE_EVERY or self._closed:
            return not self._closed
        try:
            r = self._session.get(self.url, params={"query": "ASK {}"},
                                  headers={"Accept": SOLUTIONS_WIRE}, timeout=2)
            ok = r.ok and b"boolean" in r.content
            self._virtuoso = "virtuoso" in r.headers.get("Server", "").lower()
        except requests.RequestException:
            ok = False
        self._healthy_at = now if ok else float("-inf")
        return ok

    # --- results ------------------------------------------------------------------------

    def _solutions(self, body: bytes, kind: str, fmt: ox.QueryResultsFormat,
                   capped: bool = False) -> Result:
        wire = ox.QueryResultsFormat.from_media_type(kind or SOLUTIONS_WIRE)
        if wire is None:
            raise ValueError(f"not a SPARQL results format: {kind}")
        if wire == ox.QueryResultsFormat.JSON:
            body = _bnode_labels(body)
        results = ox.parse_query_results(body, wire)
        if isinstance(results, ox.QueryBoolean):
            return Result("boolean", fmt.media_type, _boolean(bool(results), fmt), None, False)
        # TSV is one line per row: cut there, then write the wanted format (as the embedded
        # executor does, so both give the same bytes for the same rows).
        lines = results.serialize(format=ox.QueryResultsFormat.TSV).split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        rows = lines[1:]
        truncated = capped or len(rows) > self.result_limit
        rows = rows[: self.result_limit]
        tsv = b"\n".join([lines[0], *rows]) + b"\n" if lines else b"\n"
        out = tsv if fmt == ox.QueryResultsFormat.TSV else ox.parse_query_results(
            tsv, ox.QueryResultsFormat.TSV).serialize(format=fmt)
        return Result("solutions", fmt.media_type, out, len(rows), truncated)

    def _graph(self, body: bytes, kind: str, fmt: ox.RdfFormat) -> Result:
        wire = ox.RdfFormat.from_media_type(kind) if kind else ox.RdfFormat.N_TRIPLES
        if kind == "text/plain":  # old Virtuoso name of N-Triples
            wire = ox.RdfFormat.N_TRIPLES
        if wire is None:
            raise ValueError(f"not an RDF format: {kind}")
        quads = fmt.supports_datasets  # N-Quads, TriG: the triples go in the default graph
        out, count, truncated = [], 0, False
        for t in ox.parse(body, format=wire):
            if count == self.result_limit:
                truncated = True
                break
            count += 1
            out.append(ox.Quad(t.subject, t.predicate, t.object) if quads
                       else ox.Triple(t.subject, t.predicate, t.object))
        return Result("graph", fmt.media_type, ox.serialize(out, format=fmt), count, truncated)


def _format(kind, media: str | None):
    if media is None:
        return None
    fmt = kind.from_media_type(media)
    if fmt is None:
        raise ValueError(f"unsupported media type: {media!r}")
    return fmt


def _bnode_labels(body: bytes) -> bytes:
    """SPARQL JSON results with every blank node value made a valid label: Virtuoso sends
    ``nodeID://b10000``, which pyoxigraph rejects (its ``:`` and ``/``).

    >>> body = _bnode_labels(b'{"head":{"vars":["b"]},"results":{"bindings":[{"b":'
    ...                      b'{"type":"bnode","value":"nodeID://b10000"}}]}}')
    >>> [row["b"] for row in ox.parse_query_results(body, ox.QueryResultsFormat.JSON)]
    [<BlankNode value=nodeID_b10000>]
    """
    if b'"bnode"' not in body:
        return body
    data = json.loads(body)
    for row in data.get("results", {}).get("bindings", []):
        for term in row.values():
            if term.get("type") == "bnode":
                term["value"] = re.sub(r"[^A-Za-z0-9_]+", "_", term["value"]) or "b"
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def _boolean(value: bool, fmt: ox.QueryResultsFormat) -> bytes:
    tsv = b"true\n" if value else b"false\n"
    return ox.parse_query_results(tsv, ox.QueryResultsFormat.TSV).serialize(format=fmt)


def _message(body: bytes, limit: int = 500) -> str:
    """The remote's error text, without Virtuoso's echo of the query, shortened."""
    text = body.decode("utf-8", "replace").strip()
    text = text.split("\n\nSPARQL query:")[0].strip()
    if text.lstrip().startswith("<"):  # an HTML error page says nothing useful
        return ""
    return text[:limit]


def _is_timeout(text: str) -> bool:
    return bool(re.search(r"estimated execution time|timed out|timeout|S1T00", text, re.I))
