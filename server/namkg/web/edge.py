"""What every response passes through (rate limit, CORS, gzip, access log, metrics), and a
plain-WSGI fast path for SPARQL queries on ``/sparql``, in front of Flask.

A simple SELECT costs ~0.4 ms in the executor, and Flask's request context, routing, response
objects and hooks added ~1.5 ms to it. :class:`FastQueries` answers the requests the Flask
route would answer with a query (:func:`namkg.web.endpoint.is_query`) through the same handler
(:func:`namkg.web.endpoint.make_query_handler`) and the same :class:`Edge` steps as the Flask
hooks in :mod:`namkg.web.app`, on plain header lists; every other request goes to Flask.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import logging
import threading
import time

from werkzeug.exceptions import InternalServerError
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

from .cache import ResponseCache, request_key, volatile
from .endpoint import ARRIVED, PLAIN, Answer, is_query

log = logging.getLogger("namkg.access")

COMPRESSIBLE = ("text/", "application/sparql-results", "application/json", "application/ld+json",
                "application/n-", "application/trig", "application/rdf+xml", "application/xml")
GZIP_MIN = 512  # bytes: smaller bodies are sent as they are
CORS = (("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers",
        "X-Result-Count, X-Result-Truncated, X-Result-Limit, ETag, Last-Modified, Retry-After"))
UNLIMITED = ("/healthz", "/metrics")  # monitoring is never rate-limited
RATE_LIMITED = Answer(429, [("Retry-After", "1"), ("Content-Type", PLAIN)],
                      b"rate limit exceeded\n")
QUERY_PATH = "/sparql"


def compressible(status: int, mimetype: str, accept_encoding: str) -> bool:
    """Whether a response may be gzipped (its body must also be at least ``GZIP_MIN``)."""
    return (status >= 200 and status != 204 and "gzip" in accept_encoding
            and mimetype.startswith(COMPRESSIBLE))


def gzipped(data: bytes) -> bytes | None:
    """``data`` compressed, or None when it is too small to be worth it."""
    return gzip.compress(data, compresslevel=5) if len(data) >= GZIP_MIN else None


def add_vary(headers: list[tuple[str, str]], token: str) -> None:
    """Add ``token`` to the Vary header in place, as werkzeug's ``response.vary.add`` does."""
    for i, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            tokens = [t.strip() for t in value.split(",") if t.strip()]
            if token.lower() not in (t.lower() for t in tokens):
                headers[i] = (name, ", ".join([*tokens, token]))
            return
    headers.append(("Vary", token))


class Edge:
    """The steps every request takes, whichever path answers it: before (pick up a new
    build, the rate limit) and after (metrics, one JSON access-log line)."""

    def __init__(self, state, metrics, rate_limit: float):
        self.state, self.metrics = state, metrics
        self.limiter = RateLimiter(rate_limit)

    def admit(self, method: str, path: str, remote: str | None) -> Answer | None:
        """The 429 answer when the client is over the rate limit, else None."""
        self.state.maybe_reload()
        limiter = self.limiter
        if (not limiter.enabled or method == "OPTIONS" or path in UNLIMITED
                or limiter.allow(remote or "?")):
            return None
        self.metrics.count("namkg_rate_limited_total")
        return RATE_LIMITED

    def done(self, rule: str, method: str, path: str, remote: str | None, status: int,
             seconds: float, nbytes: int | None, text: str | None) -> None:
        self.metrics.observe(rule, status, seconds)
        log.info(json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "remote": remote,
            "method": method, "path": path, "status": status,
            "ms": round(seconds * 1000, 2), "bytes": nbytes, "query": _hash(text),
        }))


def _hash(text: str | None) -> str | None:
    """The query's hash in the access log; a repeated short query is hashed once (long ones
    are not remembered: 1,024 texts of up to 4,096 characters hold at most ~4 MB)."""
    if not text:
        return None
    return _short_hash(text) if len(text) <= 4096 else _sha(text)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


_short_hash = functools.lru_cache(maxsize=1024)(_sha)


class FastQueries:
    """WSGI middleware: query requests on ``/sparql`` answered without Flask; the rest to
    ``app`` (Flask's own ``wsgi_app``, which answers queries identically, only slower).
    With a ``cache``, a repeated query on the same build is answered from it."""

    def __init__(self, app, answer, edge: Edge, *, max_body: int, logger: logging.Logger,
                 cache: ResponseCache | None = None):
        self.app, self.answer, self.edge, self.logger = app, answer, edge, logger
        self.cache = cache
        # werkzeug's request, limited like Flask's (MAX_CONTENT_LENGTH) for read_body
        self.request_class = type("QueryRequest", (Request,), {"max_content_length": max_body})
        self.statuses: dict[int, str] = {}

    def __call__(self, environ, start_response):
        environ.setdefault(ARRIVED, time.monotonic())  # the deadline counts from here
        if environ.get("PATH_INFO") != QUERY_PATH:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET").upper()  # as werkzeug reads them
        if not is_query(method, environ.get("QUERY_STRING", "").encode("latin-1")):
            return self.app(environ, start_response)
        started = time.perf_counter()
        remote = environ.get("REMOTE_ADDR")
        answer = self.edge.admit(method, QUERY_PATH, remote)
        if answer is None:
            answer = self._answer(environ, method)
        status, body, headers = answer.status, answer.body, list(answer.headers)
        mimetype = next(v for k, v in headers if k == "Content-Type").split(";")[0].strip()
        packed = (gzipped(body) if compressible(status, mimetype,
                                                environ.get("HTTP_ACCEPT_ENCODING", "")) else None)
        body = body if packed is None else packed
        headers.append(("Content-Length", str(len(body))))  # the order Flask's would have
        headers += CORS
        if packed is not None:
            headers.append(("Content-Encoding", "gzip"))
            add_vary(headers, "Accept-Encoding")
        self.edge.done(QUERY_PATH, method, QUERY_PATH, remote, status,
                       time.perf_counter() - started, len(body), answer.text)
        start_response(self._status(status), headers)
        return [] if method == "HEAD" else [body]

    def _answer(self, environ, method: str) -> Answer:
        cache = self.cache
        key = None if cache is None else request_key(environ, method)
        if key is not None:
            answer = cache.get(str(self.edge.state.path), key)
            if answer is not None:
                self.edge.metrics.count("namkg_response_cache_hits_total")
                return answer
        try:
            answer = self.answer(self.request_class(environ))
        except Exception:  # as Flask does: log it, answer 500, still pass the edge
            self.logger.exception("Exception on %s [%s]", QUERY_PATH, method)
            return Answer(500, [("Content-Type", "text/html; charset=utf-8")],
                          InternalServerError().get_body().encode("utf-8"))
        # Kept only under the build that computed it, and only while that build is served:
        # just after a reload, old workers may still answer from the old store.
        if (key is not None and answer.status == 200 and answer.text is not None
                and answer.build is not None and answer.build == str(self.edge.state.path)
                and not volatile(answer.text)):
            cache.put(answer.build, key, answer, size=len(answer.body) + len(answer.text))
        return answer

    def _status(self, code: int) -> str:
        line = self.statuses.get(code)
        if line is None:  # werkzeug's wording, so both paths send the same status line
            line = f"{code} {HTTP_STATUS_CODES.get(code, 'unknown').upper()}"
            self.statuses[code] = line
        return line


class RateLimiter:
    """A token bucket per client address: ``rate`` requests per second, bursts of 2x.

    A bucket idle long enough to have refilled is the same as no bucket, so such buckets are
    dropped (swept once the map passes ``SWEEP_AT`` entries, then twice what a sweep left, so
    that sweeps stay rare however many clients are active): memory follows the clients seen in
    the last refill time, not every address ever seen.

    >>> r = RateLimiter(rate=1000.0)
    >>> [r.allow(f"10.0.0.{i}") for i in range(5)]
    [True, True, True, True, True]
    >>> time.sleep(0.01)  # a bucket of 2,000 refills one token in 1 ms
    >>> r.SWEEP_AT = r.sweep_at = 3
    >>> r.allow("10.0.0.9"), sorted(r.buckets), r.sweep_at
    (True, ['10.0.0.9'], 3)
    """

    SWEEP_AT = 10_000  # entries

    def __init__(self, rate: float):
        self.rate, self.enabled = rate, rate > 0
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()
        self.sweep_at = self.SWEEP_AT

    def allow(self, client: str) -> bool:
        now, burst = time.monotonic(), max(1.0, 2 * self.rate)
        with self.lock:
            tokens, last = self.buckets.get(client, (burst, now))
            tokens = min(burst, tokens + (now - last) * self.rate)
            ok = tokens >= 1
            self.buckets[client] = (tokens - 1 if ok else tokens, now)
            if len(self.buckets) > self.sweep_at:
                self._sweep(now, burst)
            return ok

    def _sweep(self, now: float, burst: float) -> None:
        full = [c for c, (tokens, last) in self.buckets.items()
                if tokens + (now - last) * self.rate >= burst]
        for c in full:
            del self.buckets[c]
        self.sweep_at = max(self.SWEEP_AT, 2 * len(self.buckets))
