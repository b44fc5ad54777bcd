"""A client's SPARQL text made ready to run, where it runs: a query's WDQS dialect made plain
(:mod:`namkg.query.wdqs`), then the guard (:mod:`namkg.query.safety`), which refuses what it
finds unsafe with :class:`~namkg.query.backend.QueryError` 400.

The embedded store's executor does this in its worker process (:mod:`namkg.query.results`),
not in the HTTP process: both passes are Python, linear in the text but holding a GIL (about
0.7 us a character), so there they run beside other queries on other cores, within the
query's deadline, and the HTTP process only relays the text. A remote store's executor does
it in the HTTP process, large texts one at a time (:class:`LargeTexts`). A text with no
``service`` and no backslash in it skips the guard's lexer
(:func:`~namkg.query.safety.cannot_offend`): most queries, once the label service is local;
one with no ``:`` and no ``service`` also skips the dialect's tokens (:func:`to_local`).

>>> print(prepare_query('SELECT ?n { wd:Q1 wdt:P2124 ?n }'))  # doctest: +ELLIPSIS
PREFIX wd: <http://www.wikidata.org/entity/> PREFIX wdt: <...> SELECT ?n { wd:Q1 wdt:P2124 ?n }
>>> prepare_query('SELECT * { SERVICE <http://evil/> { ?s ?p ?o } }')
Traceback (most recent call last):
...
namkg.query.backend.QueryError: SERVICE <http://evil/> is refused: the endpoint is not allowlisted
>>> prepare_update('LOAD <http://evil/data.ttl>')
Traceback (most recent call last):
...
namkg.query.backend.QueryError: LOAD <http://evil/data.ttl> is refused: the IRI is not allowlisted
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from functools import lru_cache

from .backend import Busy, QueryError
from .safety import UnsafeQuery, check_query, check_update
from .wdqs import to_local

__all__ = ["LargeTexts", "prepare_query", "prepare_update"]

REMEMBERED = 8192  # characters: clients repeat their queries, a shorter text is kept ready


def prepare_query(text: str, uselang: str | None = None,
                  allowlist: frozenset[str] = frozenset()) -> str:
    """``text`` as plain SPARQL, checked (``allowlist``: the SERVICE endpoints allowed);
    ``uselang``: the label service's ``[AUTO_LANGUAGE]``. Raises :class:`QueryError` 400."""
    if len(text) <= REMEMBERED:
        return _remembered(text, uselang, allowlist)
    return _prepare(text, uselang, allowlist)


def prepare_update(text: str, allowlist: frozenset[str] = frozenset()) -> str:
    """``text``, checked (SERVICE and LOAD); raises :class:`QueryError` 400."""
    try:
        check_update(text, allowlist=allowlist)
    except UnsafeQuery as exc:
        raise QueryError(str(exc), 400) from None
    return text


def _prepare(text: str, uselang: str | None, allowlist: frozenset[str]) -> str:
    local = to_local(text, uselang)  # a WdqsError is a QuerySyntaxError (400) already
    try:
        check_query(local, allowlist=allowlist)
    except UnsafeQuery as exc:
        raise QueryError(str(exc), 400) from None
    return local


_remembered = lru_cache(maxsize=256)(_prepare)


class LargeTexts:
    """Where the passes run in the HTTP process (a remote store), large texts are read one at
    a time, and only when they can still be read before the request's deadline: six 1 MB
    queries at once would take the server's time for seconds and be answered late."""

    LARGE = 64 * 1024  # characters: smaller texts take < 50 ms and go straight through
    SECONDS_PER_CHAR = 1e-6  # both passes, measured ~0.7 us, with room for a loaded machine

    def __init__(self):
        self.lock = threading.Lock()

    @contextmanager
    def turn(self, size: int, deadline: float):
        if size < self.LARGE:
            yield
            return
        need = size * self.SECONDS_PER_CHAR
        if not self.lock.acquire(timeout=max(0.0, deadline - time.monotonic() - need)):
            raise Busy("other large queries are being read; try again later", 1)
        try:
            if deadline - time.monotonic() < need:
                raise Busy("this large query cannot be read before its deadline; "
                           "try again later", 1)
            yield
        finally:
            self.lock.release()
