"""What the app asks of a store, whichever answers: the :class:`Backend` interface, the
:class:`Result` it gives and the :class:`QueryError` family it raises, each error with the HTTP
status to answer with. The worker pool (:class:`namkg.query.executor.Executor`) and a remote
SPARQL store (:class:`namkg.query.remote.RemoteExecutor`) both provide it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "Backend", "Busy", "NotAcceptable", "QueryError", "QuerySyntaxError", "QueryTimeout",
    "Result", "UpdateRefused", "WorkerCrashed",
]


class QueryError(Exception):
    """A query failed; ``status`` is the HTTP status to answer with."""

    status = 500
    retry_after: float | None = None  # seconds, where the error knows (Busy)

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def http_headers(self) -> dict[str, str]:
        """``Retry-After`` for a 503: when Busy says, else soon (a timeout or crash may pass).

        >>> Busy("busy", 4.2).http_headers(), QueryTimeout("late").http_headers()
        ({'Retry-After': '5'}, {'Retry-After': '1'})
        >>> QuerySyntaxError("bad").http_headers()
        {}
        """
        if self.status != 503:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after or 1)))}


class QuerySyntaxError(QueryError):
    status = 400


class QueryTimeout(QueryError):
    status = 503


class WorkerCrashed(QueryError):
    status = 503


class Busy(QueryError):
    status = 503

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class NotAcceptable(QueryError):
    status = 406


class UpdateRefused(QueryError):
    status = 403


@dataclass
class Result:
    kind: str  # "boolean" | "solutions" | "graph"
    media_type: str
    body: bytes
    count: int | None  # rows or triples serialized; None for a boolean
    truncated: bool  # cut at the executor's result_limit or result_bytes
    build: str | None = None  # the store the answer came from (changes with a reload)


@runtime_checkable
class Backend(Protocol):
    """What the app needs of a store to answer from (see the module's docstring); ``bench/``
    passes one without deadlines."""

    sandbox: str | None  # what confines the query processes, if anything

    def query(self, sparql: str, *, solutions_format: str | None, graph_format: str | None,
              default_graphs: list[str] | None = None, named_graphs: list[str] | None = None,
              base_iri: str | None = None, timeout: float | None = None,
              deadline: float | None = None, client: bool = False,
              uselang: str | None = None) -> Result:
        """``client``: ``sparql`` is a client's text: its WDQS dialect is made plain and the
        guard applied before it runs (:mod:`namkg.query.prepare`), a refusal raised as
        :class:`QueryError` 400."""

    def update(self, sparql: str, *, timeout: float | None = None, client: bool = False) -> None:
        """``client``: a client's update, guarded (:mod:`namkg.query.prepare`) before it runs."""

    def reload(self, store_path) -> None: ...

    def stats(self) -> dict: ...

    def close(self) -> None: ...
