"""Answer a job on an open store: make a client's text ready (:mod:`namkg.query.prepare`), run
the query or update, and serialize its results within the job's row and byte caps. Runs in a
worker process (:mod:`namkg.query.worker`), or in the caller's thread where no deadline is
wanted (``bench/nodeadline.py``).

>>> from namkg.query.messages import query_job
>>> store = ox.Store()
>>> store.add(ox.Quad(ox.NamedNode("http://ex/s"), ox.NamedNode("http://ex/p"), ox.Literal("o")))
>>> a = answer(store, query_job("SELECT ?o { ?s ?p ?o }", "text/csv", None, None, None, None, 5))
>>> a.kind, a.body, a.count, a.truncated
('solutions', b'o\\r\\no\\r\\n', 1, False)
>>> answer(store, query_job("ASK {", "text/csv", None, None, None, None, 5)).error().status
400
>>> refused = query_job("ASK { SERVICE <http://x/> {} }", "text/csv", None, None, None, None, 5,
...                     client=True)
>>> answer(store, refused).error().message
'SERVICE <http://x/> is refused: the endpoint is not allowlisted'
"""

from __future__ import annotations

import re

import pyoxigraph as ox

from .backend import QueryError, QuerySyntaxError
from .messages import Answer, Done, Failure, NoFormat, Outcome, QueryJob, SyntaxFault, UpdateJob
from .prepare import prepare_query, prepare_update
from .safety import declares_dataset

__all__ = ["answer"]


def answer(store: ox.Store, job: QueryJob | UpdateJob,
           allowlist: frozenset[str] = frozenset()) -> Outcome:
    """The outcome of ``job`` on ``store`` (``allowlist``: the SERVICE endpoints a client's
    text may call): a message that pickles, never an exception."""
    try:
        if isinstance(job, UpdateJob):
            store.update(prepare_update(job.sparql, allowlist) if job.client else job.sparql)
            return Done()
        sparql = (prepare_query(job.sparql, job.uselang, allowlist) if job.client
                  else job.sparql)
        return _query(store, job, sparql)
    except SyntaxError as exc:
        return SyntaxFault(str(exc))
    except QuerySyntaxError as exc:  # the dialect's
        return SyntaxFault(exc.message)
    except QueryError as exc:  # the guard's
        return Failure(exc.status, exc.message)
    except MemoryError:
        return Failure(503, "the query ran out of memory")
    except (RuntimeError, ValueError, TypeError) as exc:
        return Failure(400, f"query evaluation failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - the worker must keep serving
        return Failure(500, f"query failed: {type(exc).__name__}: {exc}")


def _query(store: ox.Store, job: QueryJob, sparql: str) -> Answer | NoFormat:
    options: dict = {}
    if job.base_iri is not None:
        options["base_iri"] = job.base_iri
    if job.default_graphs is not None:
        options["default_graph"] = [ox.NamedNode(g) for g in job.default_graphs]
    elif not declares_dataset(sparql):  # FROM in the query would lose to the union flag
        options["use_default_graph_as_union"] = True
    if job.named_graphs is not None:
        options["named_graphs"] = [ox.NamedNode(g) for g in job.named_graphs]
    results = store.query(sparql, **options)
    if isinstance(results, (ox.QueryBoolean, ox.QuerySolutions)):
        kind = "boolean" if isinstance(results, ox.QueryBoolean) else "solutions"
        if job.solutions_format is None:
            return NoFormat(kind)
        fmt = ox.QueryResultsFormat.from_media_type(job.solutions_format)
        if kind == "boolean":
            return Answer(kind, fmt.media_type, results.serialize(format=fmt), None, False)
        if fmt == _JSON and _few_rows(sparql, job.limit):
            direct = _json_counted(results, job.limit, job.max_bytes)
            if direct is not None:
                return Answer(kind, fmt.media_type, *direct)
            results = store.query(sparql, **options)  # (rare: see _json_counted)
        return Answer(kind, fmt.media_type, *_solutions(results, fmt, job.limit, job.max_bytes))
    if job.graph_format is None:
        return NoFormat("graph")
    fmt = ox.RdfFormat.from_media_type(job.graph_format)
    return Answer("graph", fmt.media_type, *_graph(results, fmt, job.limit, job.max_bytes))


_TSV, _JSON = ox.QueryResultsFormat.TSV, ox.QueryResultsFormat.JSON
DIRECT_ROWS = 100  # an outer LIMIT up to this: the answer is first written as JSON directly
DIRECT_BYTES = 64 * 1024  # at most this much of it, else it is written again, the TSV way
# The text's end: its outer LIMIT (a LIMIT read inside a trailing comment only costs a second
# run when the answer turns out larger than that: the count decides, not this).
_OUTER_LIMIT = re.compile(r"\bLIMIT\s+(\d{1,9})\s*(?:OFFSET\s+\d+\s*)?\Z", re.IGNORECASE)


def _few_rows(sparql: str, limit: int) -> bool:
    """Whether the text ends with a LIMIT of at most ``DIRECT_ROWS`` rows (and ``limit``)."""
    m = _OUTER_LIMIT.search(sparql, max(0, len(sparql) - 64))
    return m is not None and int(m.group(1)) <= min(DIRECT_ROWS, limit)


def _json_counted(results: ox.QuerySolutions, limit: int,
                  max_bytes: int = 0) -> tuple[bytes, int, bool] | None:
    """The solutions written in JSON at once (~10 us less than the TSV way for a few rows)
    and counted in the text; None, with ``results`` spent, when that count could be wrong or
    over a cap: a body over ``DIRECT_BYTES`` (or ``max_bytes``), over ``limit`` rows, or
    holding ``{}`` (an empty solution, or a literal's text: rare).

    Rows are told apart where pyoxigraph writes ``}},{"`` before a variable's name: a JSON
    string holds no bare ``"``, so inside a literal the sequence can only end the string,
    whose closing quote is followed by ``,`` or ``}``, never by a name (those are not
    counted)."""
    cap = _ByteCap(min(DIRECT_BYTES, max_bytes or DIRECT_BYTES))
    try:
        results.serialize(cap, format=_JSON)
    except _Full:
        return None
    body = b"".join(cap.parts)
    if b"{}" in body:
        return None
    rows = body.count(b'}},{"') - body.count(b'}},{",') - body.count(b'}},{"}')
    rows += not body.endswith(b'"bindings":[]}}')  # the first row, if any
    return (body, rows, False) if rows <= limit else None


class _Full(Exception):
    pass


class _ByteCap:
    """A file for pyoxigraph's serializer that keeps at most ``max_bytes`` bytes, then stops
    it (no part of a chunk that would go over is kept)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.bytes = max_bytes, 0
        self.parts: list[bytes] = []

    def write(self, chunk) -> int:
        self.bytes += len(chunk)
        if self.bytes > self.max_bytes:
            raise _Full
        self.parts.append(bytes(chunk))
        return len(chunk)

    def flush(self) -> None:
        pass


class _LineCap:
    """A file for pyoxigraph's serializer that keeps ``lines`` lines (and, with ``max_bytes``,
    little more than that many bytes), then stops it."""

    def __init__(self, lines: int, max_bytes: int = 0):
        self.max, self.lines = lines, 0
        self.max_bytes, self.bytes = max_bytes, 0
        self.parts: list[bytes] = []
        self.truncated = False

    def write(self, chunk) -> int:
        chunk = bytes(chunk)
        if not chunk:
            return 0
        if self.lines == self.max or (self.max_bytes and self.lines
                                      and self.bytes > self.max_bytes):
            self.truncated = True
            raise _Full
        self.bytes += len(chunk)
        n = chunk.count(b"\n")
        if self.lines + n < self.max:
            self.parts.append(chunk)
            self.lines += n
            return len(chunk)
        end = -1
        for _ in range(self.max - self.lines):
            end = chunk.index(b"\n", end + 1)
        self.parts.append(chunk[: end + 1])
        self.lines = self.max
        if end + 1 < len(chunk):
            self.truncated = True
            raise _Full
        return len(chunk)

    def flush(self) -> None:
        pass


def _solutions(results: ox.QuerySolutions, fmt, limit: int,
               max_bytes: int = 0) -> tuple[bytes, int, bool]:
    """Serialize at most ``limit`` rows and, with ``max_bytes``, at most that many bytes. TSV
    has exactly one line per row, so rows are cut as TSV (stopping evaluation early) and
    re-serialized by pyoxigraph in the wanted format."""
    cap = _LineCap(limit + 1, max_bytes)  # + the header line
    try:
        results.serialize(cap, format=_TSV)
    except _Full:
        pass
    tsv = b"".join(cap.parts)
    tsv = tsv[: tsv.rfind(b"\n") + 1]  # complete lines: a byte cap may stop within a row
    rows = tsv.count(b"\n") - 1

    def body(n: int) -> bytes:  # the header and n rows, in the wanted format
        head = tsv if n == rows else b"".join(line + b"\n" for line in tsv.split(b"\n")[: n + 1])
        return head if fmt == _TSV else ox.parse_query_results(head, _TSV).serialize(format=fmt)

    out, kept = _within(body, rows, max_bytes)
    return out, kept, cap.truncated or kept < rows


def _within(body, n: int, max_bytes: int) -> tuple[bytes, int]:
    """``body(n)``, with n lowered until it fits in ``max_bytes`` (0: no cap). Formats differ
    in size for the same rows (JSON is about twice TSV), so the cut is made on the real
    output, in proportion to its size: a few passes, never a body over the cap."""
    out = body(n)
    while max_bytes and len(out) > max_bytes and n > 0:
        n = min(n - 1, int(n * max_bytes / len(out) * 0.95))
        out = body(n)
    return out, n


def _graph(results: ox.QueryTriples, fmt, limit: int,
           max_bytes: int = 0) -> tuple[bytes, int, bool]:
    triples: list = []
    size, truncated = 0, False
    quads = fmt.supports_datasets  # N-Quads, TriG: the triples go in the default graph
    for triple in results:
        if len(triples) == limit or (max_bytes and size > max_bytes):
            truncated = True
            break
        triples.append(ox.Quad(triple.subject, triple.predicate, triple.object)
                       if quads else triple)
        if max_bytes:  # the N-Triples size, close to every format's
            size += len(str(triple)) + 3
    out, n = _within(lambda k: ox.serialize(triples[:k], format=fmt), len(triples), max_bytes)
    return out, n, truncated or n < len(triples)
