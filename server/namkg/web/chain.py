"""The one middleware chain: every request, whatever route answers it, passes here once.

In order: the arrival time (the client's deadline counts from it), a newly built store picked
up, the rate limit, the answer (from the cache, a plain route, or Flask for the rest of the
route table, :mod:`namkg.web.routes`), then on the way out CORS, gzip, ``Content-Length``,
metrics and one JSON access-log line. Nothing of this is written anywhere else.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import time
from json.encoder import encode_basestring_ascii
from typing import NamedTuple

from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES, is_resource_modified, parse_date, unquote_etag

from .cache import ResponseCache, request_key, volatile
from .endpoint import ARRIVED, BUILDS, PLAIN, TEXT, Answer
from .logbatch import ACCESS, sink_of
from .ratelimit import RateLimiter
from .routes import ROUTES

log = logging.getLogger(ACCESS)

COMPRESSIBLE = ("text/", "application/sparql-results", "application/json", "application/ld+json",
                "application/n-", "application/trig", "application/rdf+xml", "application/xml")
GZIP_MIN = 512  # bytes: smaller bodies are sent as they are
JOIN_MAX = 8 * 2**20  # bytes: a Flask body up to this is read whole (to gzip or keep it)
CORS = (("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers",
        "X-Result-Count, X-Result-Truncated, X-Result-Limit, ETag, Last-Modified, Retry-After"))
UNLIMITED = ("/healthz", "/metrics")  # monitoring is never rate-limited
RATE_LIMITED = Answer(429, [("Retry-After", "1"), ("Content-Type", PLAIN)],
                      b"rate limit exceeded\n")
KEPT_BY_304 = ("etag", "last-modified", "cache-control", "vary", "content-location")


class Reply(NamedTuple):
    """What the chain sends: ``body`` is bytes, or an iterable it passes on untouched (files,
    HEAD answers); ``rule`` names the route in metrics; ``text`` is the SPARQL text."""

    status: int
    headers: list[tuple[str, str]]
    body: object
    rule: str
    text: str | None = None
    packed: list | None = None  # a kept answer's slot for its gzipped body, filled once


def compressible(status: int, mimetype: str, accept_encoding: str) -> bool:
    """Whether a response may be gzipped (its body must also be at least ``GZIP_MIN``)."""
    return (200 <= status != 204 and status != 206 and "gzip" in accept_encoding
            and mimetype.startswith(COMPRESSIBLE))


class Chain:
    """WSGI middleware over a Flask app's own ``wsgi_app``: the ``plain`` (route, view) pairs
    are answered here, the rest by Flask; the ``cache`` keeps the answers of the routes
    flagged ``cached`` (with a ``state``, the served build, to key them by)."""

    CACHED = frozenset(r.endpoint for r in ROUTES if r.cached and not r.plain)  # Flask's
    DOORKEPT = frozenset(r.endpoint for r in ROUTES if r.doorkeeper and not r.plain)

    def __init__(self, flask_app, plain, *, metrics, state=None, rate_limit: float = 0.0,
                 cache: ResponseCache | None = None):
        self.flask_app, self.flask_wsgi = flask_app, flask_app.wsgi_app
        self.plain = {route.rule: (route, view) for route, view in plain}
        self.metrics, self.state, self.cache = metrics, state, cache
        self.limiter = RateLimiter(rate_limit)
        self.statuses: dict[int, str] = {}

    def __call__(self, environ, start_response):
        environ.setdefault(ARRIVED, time.monotonic())
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET").upper()  # as werkzeug reads it
        path, remote = environ.get("PATH_INFO", ""), environ.get("REMOTE_ADDR")
        if self.state is not None:
            self.state.maybe_reload()
        if (self.limiter.enabled and method != "OPTIONS" and path not in UNLIMITED
                and not self.limiter.allow(remote or "?")):
            self.metrics.count("namkg_rate_limited_total")
            reply = Reply(RATE_LIMITED.status, list(RATE_LIMITED.headers), RATE_LIMITED.body,
                          rule="rate limit")
        else:
            reply = self._answer(environ, method, path)
        status, headers, body = reply.status, reply.headers, reply.body
        if isinstance(body, bytes):  # (its headers hold no Content-Length: see _flask)
            accept_encoding = environ.get("HTTP_ACCEPT_ENCODING", "")
            if ("gzip" in accept_encoding
                    and compressible(status, _mimetype(headers), accept_encoding)
                    and _header(headers, "content-encoding") == ""
                    and _header(headers, "accept-ranges") == ""
                    and (packed := _packed(body, reply.packed)) is not None):
                body = packed
                headers += [("Content-Encoding", "gzip")]
                add_vary(headers, "Accept-Encoding")
            headers.append(("Content-Length", str(len(body))))
        headers += CORS
        if method == "OPTIONS":
            headers += preflight(environ)
        size = len(body) if isinstance(body, bytes) else _length(headers)
        self.done(reply.rule, method, path, remote, status, time.perf_counter() - started,
                  size, reply.text or environ.get(TEXT))
        start_response(self._status(status), headers)
        if isinstance(body, bytes):
            return [] if method == "HEAD" else [body]
        return body

    # ------------------------------------------------------------ answers

    def _answer(self, environ, method: str, path: str) -> Reply:
        entry = self.plain.get(path)
        if entry is not None and entry[0].when(method, environ.get("QUERY_STRING", "")
                                                .encode("latin-1")):
            route, view = entry
            rule, kept, door = route.rule, route.cached, route.doorkeeper
            make = functools.partial(self._plain, view, environ, method, rule)
        else:
            # Matched here for the metrics' route name and the cache (Flask's request, which
            # matches again, is gone once it has answered).
            endpoint, rule = self._match(environ)
            kept = endpoint in self.CACHED and method in ("GET", "HEAD")
            door = endpoint in self.DOORKEPT
            make = functools.partial(self._flask, environ, method, rule)
        return self._cached(environ, method, rule, make, door) if kept else make()

    def _cached(self, environ, method: str, rule: str, make, doorkeeper: bool) -> Reply:
        """``make()``'s reply, or the one kept for this request under the served build."""
        cache, state = self.cache, self.state
        if cache is None or state is None:
            return make()
        key = request_key(environ, method)
        if key is None or (doorkeeper and cache.first_sighting(key)):
            return make()  # (asked once so far: it can be in the cache only after a reset)
        served = str(state.path)
        hit = cache.get(served, key)
        if hit is not None:
            self.metrics.count("namkg_response_cache_hits_total")
            status, headers, body, text, packed = hit
            if not_modified(environ, headers):
                headers = [h for h in headers if h[0].lower() in KEPT_BY_304]
                return Reply(304, headers, b"", rule, text)
            return Reply(status, list(headers), body, rule, text, packed)
        environ[BUILDS] = builds = []
        reply = make()
        # Kept only under the build that computed it, and only while that build is served:
        # just after a reload, old workers may still answer from the old store.
        if (reply.status == 200 and isinstance(reply.body, bytes)  # (Flask's HEAD: no body)
                and str(state.path) == served and builds.count(served) == len(builds)
                and not (reply.text and volatile(reply.text))):
            size = len(reply.body) + len(reply.text or "")
            cache.put(served, key, (200, tuple(reply.headers), reply.body, reply.text, [None]),
                      size=size + len(reply.body) // 4)  # + its gzipped copy, once made
        return reply

    def _plain(self, view, environ, method: str, rule: str) -> Reply:
        try:
            answer = view(environ)
        except Exception:  # as Flask does: log it, answer 500, still pass the chain
            self.flask_app.logger.exception("Exception on %s [%s]", rule, method)
            answer = Answer(500, [("Content-Type", PLAIN)], b"the server failed to answer\n")
        if answer.build is not None and BUILDS in environ:
            environ[BUILDS].append(answer.build)
        return Reply(answer.status, list(answer.headers), answer.body, rule, answer.text)

    def _flask(self, environ, method: str, rule: str) -> Reply:
        seen: list = []

        def capture(status, headers, exc_info=None):
            seen[:] = [status, headers]
            return _no_write

        body = self.flask_wsgi(environ, capture)
        status, headers = int(seen[0][:3]), list(seen[1])
        length = _length(headers)
        if method != "HEAD" and length is not None and length <= JOIN_MAX:
            parts = body
            try:
                body = b"".join(parts)
            finally:
                getattr(parts, "close", _nothing)()
            # A body in bytes gets its Content-Length from the chain, once it is final.
            headers = [h for h in headers if h[0].lower() != "content-length"]
        return Reply(status, headers, body, rule)

    def _match(self, environ) -> tuple[str | None, str]:
        try:
            rule, _ = self.flask_app.url_map.bind_to_environ(environ).match(return_rule=True)
        except HTTPException:
            return None, "unmatched"
        return rule.endpoint, rule.rule

    # ------------------------------------------------------------ log

    def done(self, rule: str, method: str, path: str, remote: str | None, status: int,
             seconds: float, nbytes: int | None, text: str | None) -> None:
        self.metrics.observe(rule, status, seconds)
        if not log.isEnabledFor(logging.INFO):
            return
        line = access_line(_now(int(time.time())), remote, method, path, status,
                           round(seconds * 1000, 2), nbytes, _hash(text))
        sink = sink_of(log)
        if sink is not None:  # the line goes where a record would, as the record would
            sink.keep(line)
            return
        # A record made here, not by log.info: that one first walks the stack for the caller's
        # file and line (findCaller), which the access line does not show (~5 us a request).
        log.handle(log.makeRecord(ACCESS, logging.INFO, __file__, 0, line, None, None))

    def _status(self, code: int) -> str:
        line = self.statuses.get(code)
        if line is None:  # werkzeug's wording, as Flask sends it
            line = f"{code} {HTTP_STATUS_CODES.get(code, 'unknown').upper()}"
            self.statuses[code] = line
        return line


def access_line(when: str, remote: str | None, method: str, path: str, status: int,
                ms: float, nbytes: int | None, query: str | None) -> str:
    """One access-log line: what ``json.dumps`` of these fields writes, in a third of its time
    (no dict, no encoder object: each string through the encoder's own C function).

    >>> import json
    >>> fields = ("2026-12-05T18:00:00+0000", None, "GET", '/id/"x"', 200, 1.5, None, "ab12")
    >>> names = ("time", "remote", "method", "path", "status", "ms", "bytes", "query")
    >>> access_line(*fields) == json.dumps(dict(zip(names, fields)))
    True
    """
    return (f'{{"time": {_string(when)}, "remote": {_string(remote)}, '
            f'"method": {_string(method)}, "path": {_string(path)}, "status": {status:d}, '
            f'"ms": {ms!r}, "bytes": {"null" if nbytes is None else f"{nbytes:d}"}, '
            f'"query": {_string(query)}}}')


def _string(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def preflight(environ) -> list[tuple[str, str]]:
    """The CORS preflight headers of an OPTIONS answer (any route)."""
    asked = environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS",
                        "Content-Type, Accept, Authorization")
    return [("Access-Control-Allow-Methods", "GET, POST, HEAD, OPTIONS"),
            ("Access-Control-Allow-Headers", asked), ("Access-Control-Max-Age", "86400")]


def not_modified(environ, headers) -> bool:
    """Whether the client's copy of a kept answer is current (its ETag / Last-Modified)."""
    if "HTTP_IF_NONE_MATCH" not in environ and "HTTP_IF_MODIFIED_SINCE" not in environ:
        return False
    etag = _header(headers, "etag")
    if not etag:
        return False
    modified = _header(headers, "last-modified")
    return not is_resource_modified(environ, etag=unquote_etag(etag)[0],
                                    last_modified=parse_date(modified) if modified else None)


def _packed(body: bytes, slot: list | None) -> bytes | None:
    """``body`` gzipped; a kept answer's copy is made once and kept beside it."""
    if slot is None:
        return gzipped(body)
    if slot[0] is None:
        slot[0] = gzipped(body) or b""
    return slot[0] or None


def gzipped(data: bytes) -> bytes | None:
    """``data`` compressed, or None when it is too small to be worth it."""
    return gzip.compress(data, compresslevel=5) if len(data) >= GZIP_MIN else None


def add_vary(headers: list[tuple[str, str]], token: str) -> None:
    """Add ``token`` to the Vary header in place, as werkzeug's ``response.vary.add`` does.

    >>> h = [("Vary", "Accept")]; add_vary(h, "Accept-Encoding"); add_vary(h, "accept"); h
    [('Vary', 'Accept, Accept-Encoding')]
    """
    for i, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            tokens = [t.strip() for t in value.split(",") if t.strip()]
            if token.lower() not in (t.lower() for t in tokens):
                headers[i] = (name, ", ".join([*tokens, token]))
            return
    headers.append(("Vary", token))


def _mimetype(headers) -> str:
    return _header(headers, "content-type").split(";")[0].strip()


def _header(headers, lower_name: str) -> str:
    return next((v for k, v in headers if k.lower() == lower_name), "")


def _length(headers) -> int | None:
    value = _header(headers, "content-length")
    return int(value) if value.isdigit() else None


def _no_write(_data: bytes) -> None:
    raise RuntimeError("the write() of start_response is not supported")


def _nothing() -> None:
    return None


@functools.lru_cache(maxsize=2)
def _now(second: int) -> str:
    """The access log's timestamp, formatted once a second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(second))


def _hash(text: str | None) -> str | None:
    """The query's hash in the access log; a repeated short query is hashed once (long ones
    are not remembered: 1,024 texts of up to 4,096 characters hold at most ~4 MB)."""
    if not text:
        return None
    return _short_hash(text) if len(text) <= 4096 else _sha(text)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


_short_hash = functools.lru_cache(maxsize=1024)(_sha)
