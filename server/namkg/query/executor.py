"""Run SPARQL in worker processes that are killed at a deadline.

pyoxigraph's ``Store.query`` cannot be cancelled, so each query runs in one of a few worker
processes (:mod:`namkg.query.worker`, kept by :mod:`namkg.query.pool`). A request thread
checks out an idle worker, sends it the job (:mod:`namkg.query.messages`) and waits with a
deadline; at the deadline the worker is SIGKILLed and replaced in the background while the
other workers keep serving. A query that runs long is deprioritised step by step and, while it
runs, an extra worker is started so that long queries never take all the workers from quick
ones (:mod:`namkg.query.schedule`). Results come back serialized, as bytes.

The interface and its errors are :mod:`namkg.query.backend`'s, importable from here too.

>>> import tempfile, pyoxigraph as ox
>>> from namkg.query.backend import Backend
>>> tmp = tempfile.TemporaryDirectory()
>>> store = ox.Store(tmp.name)
>>> store.add(ox.Quad(ox.NamedNode("http://ex/s"), ox.NamedNode("http://ex/p"),
...                   ox.Literal("o"), ox.NamedNode("http://ex/g")))
>>> del store  # read-only workers must not open the store beside a writer
>>> with Executor(tmp.name, workers=1) as ex:
...     r = ex.query("SELECT ?o { ?s ?p ?o }", solutions_format="text/csv", graph_format=None)
...     isinstance(ex, Backend)
True
>>> r.kind, r.media_type, r.count, r.truncated
('solutions', 'text/csv; charset=utf-8', 1, False)
>>> r.body
b'o\\r\\no\\r\\n'
>>> tmp.cleanup()
"""

from __future__ import annotations

import atexit
import logging
import math
import time
from pathlib import Path

import pyoxigraph as ox

from .backend import (
    Busy,
    QueryError,
    QueryTimeout,
    Result,
    UpdateRefused,
    WorkerCrashed,
)
from .messages import Answer, Done, Outcome, QueryJob, UpdateJob, query_job, unwrap
from .pool import Pool
from .schedule import LONG_AFTER, NICE_STEPS, TICK, History, nice_for
from .worker import FIRST_WAIT, Worker

log = logging.getLogger(__name__)
_KNOWN_MEDIA: set[tuple[str | None, str | None]] = set()  # format pairs already checked


class Executor:
    """A pool of query worker processes on one on-disk store; thread-safe."""

    def __init__(self, store_path: str | Path, *, workers: int = 2, timeout: float = 5.0,
                 result_limit: int = 10_000, memory_mb: int = 1024, writable: bool = False,
                 burst: int | None = None, result_bytes: int = 0, allowlist=()):
        """``burst``: extra workers started while queries run long (default: ``workers``);
        ``result_bytes``: cap on an answer's size (0: none); ``allowlist``: SERVICE
        endpoints the workers' sandbox lets them connect to (see :mod:`namkg.query.sandbox`)."""
        if workers < 1 or timeout <= 0 or result_limit < 0 or (burst or 0) < 0:
            raise ValueError("workers must be >= 1, timeout > 0, result_limit and burst >= 0")
        self.timeout, self.result_limit, self.result_bytes = timeout, result_limit, result_bytes
        self.memory_mb, self.writable = memory_mb, writable
        self._history = History()
        # RocksDB gives no guarantee for read-only opens beside a writer: one writer only.
        self._pool = Pool(str(store_path), size=1 if writable else workers,
                          burst=0 if writable else (workers if burst is None else burst),
                          writable=writable, memory_mb=memory_mb, allowlist=tuple(allowlist))
        atexit.register(self.close)

    @property
    def sandbox(self) -> str | None:
        """What confines the workers, as the first one said."""
        return self._pool.sandbox

    @property
    def spawn_seconds(self) -> float | None:
        """How long the last worker took to be ready."""
        return self._pool.spawn_seconds

    def query(self, sparql: str, *, solutions_format: str | None, graph_format: str | None,
              default_graphs: list[str] | None = None, named_graphs: list[str] | None = None,
              base_iri: str | None = None, timeout: float | None = None,
              deadline: float | None = None, client: bool = False,
              uselang: str | None = None) -> Result:
        """Run a query; formats are negotiated media types (None: not acceptable).

        ``deadline`` (``time.monotonic()``): when the client's time is up, counted from the
        request's arrival; the query gets the earlier of it and ``timeout`` from now.
        ``client``: ``sparql`` is a client's text, made ready in the worker first (the WDQS
        dialect, ``uselang`` for its labels, and the guard: :mod:`namkg.query.prepare`)."""
        if (solutions_format, graph_format) not in _KNOWN_MEDIA:
            for media, kind in ((solutions_format, ox.QueryResultsFormat),
                                (graph_format, ox.RdfFormat)):
                if media is not None and kind.from_media_type(media) is None:
                    raise ValueError(f"unsupported media type: {media!r}")
            _KNOWN_MEDIA.add((solutions_format, graph_format))
        job = query_job(sparql, solutions_format, graph_format, default_graphs, named_graphs,
                        base_iri, self.result_limit, self.result_bytes, client, uselang)
        answer, build = self._run(job, self.timeout if timeout is None else timeout, deadline)
        return answer.result(build)

    def update(self, sparql: str, *, timeout: float | None = None, client: bool = False) -> None:
        """Run a SPARQL update, all or nothing (``client``: a client's text, guarded in the
        worker first); refused unless the executor is writable."""
        if not self.writable:
            raise UpdateRefused("this endpoint is read-only: updates are not accepted")
        self._run(UpdateJob(sparql, client), self.timeout if timeout is None else timeout, None)

    def reload(self, store_path: str | Path) -> None:
        """Serve from ``store_path`` from now on; queries running on the old store finish."""
        self._pool.reload(str(store_path), self.timeout)
        self._history.forget()  # costs were measured on the old data

    def known_cost(self, sparql: str) -> float | None:
        """The CPU seconds ``sparql`` used when it last finished here, if remembered."""
        return self._history.cost(sparql)

    def stats(self) -> dict:
        return self._pool.stats()

    def close(self) -> None:
        """Kill every worker and wait for them: no orphans. Idempotent."""
        self._pool.close()
        atexit.unregister(self.close)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the request path ---------------------------------------------------------------

    def _run(self, job: QueryJob | UpdateJob, timeout: float,
             deadline: float | None) -> tuple[Answer | Done, str]:
        """The worker's answer to ``job`` (a failure raised) and the store it ran on."""
        # The deadline covers waiting for a worker too: the client hears back in time.
        asked = time.monotonic()
        if deadline is None or deadline > asked + timeout:
            deadline = asked + timeout
        seen = self._history.recall(job.sparql, asked)
        if seen.ran_away and self._pool.crowded():
            raise Busy("this query ran out of time moments ago; it is not run again while "
                       "the server is busy", max(1, math.ceil(timeout)))
        w = self._asked(job, deadline, timeout, seen.cost)
        got = time.monotonic()
        try:
            cpu = w.cpu
            outcome = self._await_reply(w, got, deadline, 2 * seen.cost)
        except (EOFError, OSError):
            if self._pool.lost(w, "crashes"):
                raise QueryError("the query executor is closed", 503) from None
            raise WorkerCrashed("the query worker died (out of memory or killed); "
                                "the query was not answered") from None
        except BaseException:
            self._pool.lost(w, None)  # e.g. KeyboardInterrupt: the worker's state is unknown
            raise
        if outcome is None:
            # Why it timed out, for the operator: queued behind others, or slow itself.
            log.warning("query timed out: waited %.3f s for a worker, ran %.3f s using %.3f s "
                        "CPU at nice %d", got - asked, time.monotonic() - got,
                        w.cpu_seconds() - w.cpu, w.nice)
            self._pool.lost(w, "timeouts")
            self._history.timed_out(seen, time.monotonic())
            raise QueryTimeout(f"the query did not finish within the {timeout:g} s deadline")
        self._history.finished(seen, w.cpu - cpu)
        self._pool.checkin(w)
        return unwrap(outcome), w.path

    def _asked(self, job: QueryJob | UpdateJob, deadline: float, timeout: float,
               cost: float) -> Worker:
        """A worker that has been sent ``job``. One that died idle is found here, by its
        closed pipe, and replaced; the job goes to another. (Not by polling each worker before
        use: every blocking call lets go of the GIL, ~40 us of the HTTP process a query.)"""
        while True:
            w = self._pool.checkout(deadline, timeout, cost)
            try:
                w.ask(job)
                return w
            except OSError:
                if self._pool.lost(w, "crashes", asked=False):
                    raise QueryError("the query executor is closed", 503) from None
            except BaseException:
                self._pool.lost(w, None)
                raise

    def _await_reply(self, w: Worker, started: float, deadline: float,
                     grace: float) -> Outcome | None:
        """The worker's outcome, or None at the deadline; deprioritises a query by the CPU
        time it has used beyond ``grace`` once it runs longer than the first step."""
        wait = NICE_STEPS[0][0]
        long = False
        first = deadline - time.monotonic() > FIRST_WAIT  # else a poll keeps to the deadline
        while True:
            if first:  # most replies come within it: one blocking read, no poll
                first = False
                outcome = w.answered()
                if outcome is not None:
                    return outcome
            elif w.readable(min(time.monotonic() + wait, deadline) - time.monotonic()):
                return w.reply()
            now = time.monotonic()
            if now >= deadline:
                return None
            nice = nice_for(w.cpu_seconds() - w.cpu, grace)
            if nice > w.nice:
                w.renice(nice)
            if not long and now - started >= LONG_AFTER:
                long = True
                self._pool.went_long(w)
            wait = TICK
