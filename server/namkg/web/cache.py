"""Answers to repeated queries, kept while the served build stays the same.

The served store is read-only and a build never changes once it is swapped in, so the same
request on the same build gets the same answer: a repeated query need not run again. This is
the response cache a caching proxy would give in front of the endpoint, except that it knows
exactly when the data changes (a new build) and which queries are not repeatable.

Kept: successful (200) answers to query requests asked a second time (one-off texts, such
as those with a counter or a time in a comment, would only push out the answers asked again:
:meth:`ResponseCache.first_sighting`), and pages, whose answer depends on nothing
but the request line, ``Host``, ``Content-Type``, ``Accept`` and a small body (the routes
flagged ``cached`` in :mod:`namkg.web.routes`). Never kept: errors, timeouts, and
queries whose text mentions a function that differs per call (``RAND``, ``NOW``, ``UUID``,
``STRUUID``, ``BNODE``), ``SERVICE`` (someone else's data) or a ``\\u`` escape (which could
spell either); the test is on the raw text, so a false alarm only costs a cache miss.
Updates (``NAMKG_UPDATE_TOKEN``) or a remote ``--backend`` change the data behind our back,
so :func:`namkg.web.app.create_app` gives them no cache.

>>> c = ResponseCache(max_bytes=80_000)
>>> key = request_key({"QUERY_STRING": "query=ASK%7B%7D"}, "GET")
>>> key == request_key({"QUERY_STRING": "query=ASK%7B%7D"}, "HEAD")  # HEAD is a GET, bodiless
True
>>> c.put("build-1", key, "answer", size=9_000)
>>> c.get("build-1", key), c.get("build-2", key)  # a new build empties the cache
('answer', None)
>>> c.get("build-1", key) is None
True
>>> keys = [request_key({"QUERY_STRING": f"query={i}"}, "GET") for i in range(10)]
>>> for i, k in enumerate(keys):
...     c.put("build-2", k, i, size=9_000)
>>> [c.get("build-2", k) for k in keys]  # 80 kB hold the 8 most recent
[None, None, 2, 3, 4, 5, 6, 7, 8, 9]
>>> c.put("build-2", key, "huge", size=20_000)  # over an eighth of the cache: not kept
>>> c.get("build-2", key) is None
True
>>> import io
>>> env = {"CONTENT_LENGTH": "10", "wsgi.input": io.BytesIO(b"query=ASK&")}
>>> request_key(env, "POST")[4], env["wsgi.input"].read()  # the body is put back
(b'query=ASK&', b'query=ASK&')
>>> c.first_sighting(key), c.first_sighting(key)  # a route with a doorkeeper keeps the second
(True, False)
>>> volatile("SELECT (NOW() AS ?t) {}"), volatile("SELECT * { ?s ?p ?o } LIMIT 10")
(True, False)
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict

from .protocol import BODY

KEY_BODY_MAX = 16 * 1024  # bytes: larger request bodies are answered, never cached
SIGHTINGS = 32_768  # requests remembered as asked once (their hashes, ~2 MB), then forgotten
# In any case (one pass, no lowered copy; IGNORECASE folds a little more than lower(): a false
# alarm costs a miss).
_VOLATILE = re.compile(r"rand|now|uuid|bnode|service|\\u", re.IGNORECASE)


def volatile(text: str) -> bool:
    """Whether a query's answer may differ between two runs on the same data."""
    return _VOLATILE.search(text) is not None


def request_key(environ, method: str) -> tuple | None:
    """What a query request's answer depends on, from its WSGI ``environ``; None when its body
    is too large or of unknown length to be worth keeping. A body read here is put back for
    the handler to read."""
    body = b""
    if method == "POST":
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > KEY_BODY_MAX:
            return None
        body = environ.get(BODY)  # read ahead by the gate
        if body is None:
            try:
                body = environ["wsgi.input"].read(int(length))
            except (OSError, ValueError):  # a disconnect, as werkzeug takes it
                body = b""
            environ["wsgi.input"] = io.BytesIO(body)
        if len(body) != int(length):  # the client sent less: the handler will say so
            return None
    return ("GET" if method == "HEAD" else method, environ.get("QUERY_STRING", ""),
            environ.get("CONTENT_TYPE", ""), environ.get("HTTP_ACCEPT", ""), body,
            # where: pages name their own URL (request.url_root) in what they say
            environ.get("PATH_INFO", ""), environ.get("SCRIPT_NAME", ""),
            environ.get("HTTP_HOST", ""), environ.get("wsgi.url_scheme", ""))


class ResponseCache:
    """A least-recently-used map of request -> answer for one build, at most ``max_bytes``."""

    def __init__(self, max_bytes: int, sightings: int = SIGHTINGS):
        self.max_bytes, self.bytes = max_bytes, 0
        self.sightings, self.sighted = sightings, set()
        self.build: object = None
        self.entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self.lock = threading.Lock()

    def first_sighting(self, key: tuple) -> bool:
        """Whether ``key`` is asked for the first time lately (remembering that it now was).
        A doorkeeper, as in TinyLFU: a route flagged so keeps an answer only from its second
        sighting on, so a flood of one-off queries neither pays for being kept nor flushes the
        cache. The memory is a set of hashes, emptied at ``sightings``; a kept answer's key
        asked after that is sighted anew, and answered once more without the cache."""
        h = hash(key)
        if h in self.sighted:  # (set operations are atomic: no lock)
            return False
        if len(self.sighted) >= self.sightings:
            self.sighted.clear()
        self.sighted.add(h)
        return True

    def get(self, build: object, key: tuple):
        with self.lock:
            if build != self.build:
                self._clear(build)
                return None
            entry = self.entries.get(key)
            if entry is None:
                return None
            self.entries.move_to_end(key)
            return entry[0]

    def put(self, build: object, key: tuple, value, *, size: int) -> None:
        """Keep ``value`` (``size`` bytes, its key's added here) if it was made on ``build``,
        the build now served: an answer computed before a reload must not outlive it."""
        size += len(key[1]) + len(key[4]) + 600  # + Python's own objects (~500 B measured)
        if size > self.max_bytes // 8:  # one huge answer would flush everything else
            return
        with self.lock:
            if build != self.build:
                self._clear(build)
            old = self.entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self.entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self.entries.popitem(last=False)
                self.bytes -= dropped

    def _clear(self, build: object) -> None:
        self.entries.clear()
        self.bytes, self.build = 0, build
