"""Run SPARQL in worker processes that are killed at a deadline.

pyoxigraph's ``Store.query`` cannot be cancelled, so each query runs in one of a few worker
processes (started by a multiprocessing fork server, which is safe in a threaded server and
fast: a worker is a fork of a process that already imported pyoxigraph). A request thread
checks out an idle worker, sends the query text and options over a pipe and waits with a
deadline; at the deadline the worker is SIGKILLed and replaced in the background while the
other workers keep serving. A query that runs long is deprioritised step by step (the more CPU
it has used, the nicer it gets) and, while it runs, an extra worker is started so that long queries
never take all the workers from quick ones. Workers cap their own address space, so a query
that eats memory kills only its worker. Results come back serialized, as bytes.

>>> import tempfile, pyoxigraph as ox
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
import ctypes
import logging
import math
import multiprocessing
import os
import re
import resource
import select
import signal
import sys
import threading
import time
import types
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import pyoxigraph as ox

from .safety import declares_dataset
from .sandbox import confine

__all__ = [
    "Backend", "Busy", "Executor", "NotAcceptable", "QueryError", "QuerySyntaxError",
    "QueryTimeout", "Result", "UpdateRefused", "WorkerCrashed",
]

log = logging.getLogger(__name__)
_CTX = multiprocessing.get_context("forkserver")
_READY_TIMEOUT = 60.0  # seconds for a new worker to open the store
# (CPU seconds the query has used, nice): a query that burns CPU yields it to quick ones and to
# those that used less, so a query slowed only by load is not starved by runaways; priority
# by CPU used rather than by time waited.
_NICE_STEPS = ((0.05, 5), (0.1, 10), (0.2, 15), (0.4, 19))
# A query text that finished before is demoted only once it has used twice the CPU it needed
# then: a known, moderately costly query (an ORDER BY over the whole store, ~0.12 s) is not
# starved as if it were a runaway. Runaways never finish, so they never earn that grace.
_COSTS_KEPT = 4096  # query texts whose last CPU cost is remembered
_LONG_AFTER = 0.25  # seconds: a query still running then may get an extra worker started
_TICK = 0.05  # seconds between checks of a long query's CPU time
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Seconds a query is assumed to need at least: a request queued for a worker gives up (503)
# once less than this, or its last measured cost, is left before its deadline.
_MIN_SLICE = 0.05
# A query that ran past its deadline is remembered for this long (by its text, whitespace and
# a trailing comment aside) and, while it is, gets a worker only while fewer than half the
# pool run long queries: a storm of runaways then leaves the other half to quick queries.
_RUNAWAY_MEMORY = 60.0
_TRAILING_COMMENT = re.compile(r"#[^\n\"'<>]*\Z")


_KNOWN_MEDIA: set[tuple[type, str]] = set()  # media types already checked


def _renice(w, nice: int) -> None:
    """Set a worker's CPU priority; lowering it again needs root, so a failure is ignored
    (the worker then stays at low priority, which only slows it)."""
    if w.nice == nice:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, w.pid, nice)
        w.nice = nice
    except OSError:
        pass


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
    """What the app needs of a store to answer from: the worker pool (:class:`Executor`) and a
    remote SPARQL store (:class:`namkg.query.remote.RemoteExecutor`) both provide it; ``bench/``
    passes one without deadlines."""

    sandbox: str | None  # what confines the query processes, if anything

    def query(self, sparql: str, *, solutions_format: str | None, graph_format: str | None,
              default_graphs: list[str] | None = None, named_graphs: list[str] | None = None,
              base_iri: str | None = None, timeout: float | None = None,
              deadline: float | None = None) -> Result: ...

    def update(self, sparql: str, *, timeout: float | None = None) -> None: ...

    def reload(self, store_path) -> None: ...

    def stats(self) -> dict: ...

    def close(self) -> None: ...


class _Worker:
    __slots__ = ("proc", "conn", "pid", "gen", "path", "started", "nice", "cpu", "poller")

    def __init__(self, proc, conn, gen: int, path: str, started: float):
        self.proc, self.conn, self.gen, self.pid = proc, conn, gen, proc.pid
        self.path, self.started, self.nice = path, started, 0
        self.cpu = 0.0  # the worker's CPU seconds when it last replied
        # One poll object for the worker's life: Connection.poll builds a selector per call
        # (~40 us of the request thread's time per query).
        self.poller = select.poll()
        self.poller.register(conn.fileno(), select.POLLIN)

    def readable(self, timeout: float) -> bool:
        """Whether the worker has replied (or died: EOF reads as readable) within ``timeout``."""
        return bool(self.poller.poll(max(0.0, timeout) * 1000))


class Executor:
    """A pool of query worker processes on one on-disk store; thread-safe."""

    def __init__(self, store_path: str | Path, *, workers: int = 2, timeout: float = 5.0,
                 result_limit: int = 10_000, memory_mb: int = 1024, writable: bool = False,
                 burst: int | None = None, result_bytes: int = 0, allowlist=()):
        """``result_bytes``: cap on an answer's size (0: none); ``allowlist``: SERVICE
        endpoints the workers' sandbox lets them connect to (see :mod:`namkg.query.sandbox`)."""
        if workers < 1 or timeout <= 0 or result_limit < 0 or (burst or 0) < 0:
            raise ValueError("workers must be >= 1, timeout > 0, result_limit and burst >= 0")
        # RocksDB gives no guarantee for read-only opens beside a writer: one writer only.
        self.size = 1 if writable else workers
        # Extra workers started while queries run long (at most this many at once).
        self.burst = 0 if writable else (workers if burst is None else burst)
        self.timeout, self.result_limit, self.result_bytes = timeout, result_limit, result_bytes
        self.allowlist = tuple(allowlist)
        self.sandbox: str | None = None  # what confines the workers, as the first one said
        self.memory_mb, self.writable = memory_mb, writable
        self._path = str(store_path)
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._spawn_lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._long: set[_Worker] = set()  # busy with a query past the first nice step
        self._starting = 0
        self._gen = 0
        self._closed = False
        self._replacers: set[threading.Thread] = set()
        self._counts = {"timeouts": 0, "crashes": 0, "queries": 0}
        self._costs: OrderedDict[int, float] = OrderedDict()  # hash(query) -> CPU seconds
        self._runaways: OrderedDict[int, float] = OrderedDict()  # hash(shape) -> when
        self.spawn_seconds: float | None = None  # how long the last worker took to be ready
        _preload()
        self._idle = self._start_many(self.size, 0)
        atexit.register(self.close)

    # --- public API -------------------------------------------------------------------

    def query(self, sparql: str, *, solutions_format: str | None, graph_format: str | None,
              default_graphs: list[str] | None = None, named_graphs: list[str] | None = None,
              base_iri: str | None = None, timeout: float | None = None,
              deadline: float | None = None) -> Result:
        """Run a query; formats are negotiated media types (None: not acceptable).

        ``deadline`` (``time.monotonic()``): when the client's time is up, counted from the
        request's arrival; the query gets the earlier of it and ``timeout`` from now."""
        for media, kind in ((solutions_format, ox.QueryResultsFormat),
                            (graph_format, ox.RdfFormat)):
            if media is not None and (kind, media) not in _KNOWN_MEDIA:
                if kind.from_media_type(media) is None:
                    raise ValueError(f"unsupported media type: {media!r}")
                _KNOWN_MEDIA.add((kind, media))
        job = query_job(sparql, solutions_format, graph_format, default_graphs, named_graphs,
                        base_iri, self.result_limit, self.result_bytes)
        reply, build = self._run(job, self.timeout if timeout is None else timeout, deadline)
        return Result(*reply[1:], build=build)

    def update(self, sparql: str, *, timeout: float | None = None) -> None:
        """Run a SPARQL update, all or nothing; refused unless the executor is writable."""
        if not self.writable:
            raise UpdateRefused("this endpoint is read-only: updates are not accepted")
        self._run(("update", sparql), self.timeout if timeout is None else timeout, None)

    def reload(self, store_path: str | Path) -> None:
        """Serve from ``store_path`` from now on; queries running on the old store finish."""
        path = str(store_path)
        if self.writable:  # the new writer may need the old one's lock: stop it first
            with self._cond:
                self._gen += 1
                gen, old_path, self._path = self._gen, self._path, path
                old, self._idle = self._idle, []
            self._retire_all(old)
            self._drain(time.monotonic() + self.timeout + 5)
            try:
                fresh = self._start_many(self.size, gen)
            except Exception:
                with self._cond:
                    self._path = old_path
                self._idle = self._start_many(self.size, gen)  # back to the old store
                raise
        else:
            with self._cond:
                gen = self._gen + 1
            fresh = self._start_many(self.size, gen, path)
        with self._cond:
            if self._closed:
                old = fresh
            else:
                self._gen, self._path = gen, path
                old, self._idle = self._idle, fresh
                self._costs.clear()  # costs were measured on the old data
                self._runaways.clear()
                self._cond.notify_all()
        self._retire_all(old)

    def known_cost(self, sparql: str) -> float | None:
        """The CPU seconds ``sparql`` used when it last finished here, if remembered."""
        with self._cond:
            return self._costs.get(hash(sparql))

    def stats(self) -> dict:
        with self._cond:
            workers = self._idle + list(self._busy)
            return {"workers": len(workers), "busy": len(self._busy), "long": len(self._long),
                    "starting": self._starting, **self._counts,
                    "pids": sorted(w.pid for w in workers)}

    def close(self) -> None:
        """Kill every worker and wait for them: no orphans. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle = []
            self._cond.notify_all()
        for w in idle + busy:
            _kill(w)
        for w in idle + busy:
            w.proc.join(5)
        for w in idle:  # a busy worker's pipe belongs to its request thread
            w.conn.close()
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:  # replacers reap the workers they killed
            with self._cond:
                replacers = list(self._replacers)
            if not replacers:
                break
            for t in replacers:
                t.join(max(0.0, deadline - time.monotonic()))
        atexit.unregister(self.close)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- request path -----------------------------------------------------------------

    def _run(self, job: tuple, timeout: float, deadline: float | None) -> tuple:
        # The deadline covers waiting for a worker too: the client hears back in time.
        asked = time.monotonic()
        if deadline is None or deadline > asked + timeout:
            deadline = asked + timeout
        key, shape = hash(job[1]), hash(_shape(job[1]))
        with self._cond:
            known = self._costs.get(key, 0.0)
            ran_away = self._runaways.get(shape, -_RUNAWAY_MEMORY) > asked - _RUNAWAY_MEMORY
            if ran_away and (not self._idle or len(self._long) >= self.size // 2):
                raise Busy("this query ran out of time moments ago; it is not run again while "
                           "the server is busy", max(1, math.ceil(timeout)))
        w = self._checkout(deadline, timeout, known)
        got = time.monotonic()
        with self._cond:
            self._counts["queries"] += 1
        try:
            w.conn.send(job)
            cpu = w.cpu
            reply = self._await_reply(w, got, deadline, 2 * known)
        except (EOFError, OSError):
            if self._lost(w, "crashes"):
                raise QueryError("the query executor is closed", 503) from None
            raise WorkerCrashed("the query worker died (out of memory or killed); "
                                "the query was not answered") from None
        except BaseException:
            self._lost(w, None)  # e.g. KeyboardInterrupt: the worker's state is unknown
            raise
        if reply is None:
            # Why it timed out, for the operator: queued behind others, or slow itself.
            log.warning("query timed out: waited %.3f s for a worker, ran %.3f s using %.3f s "
                        "CPU at nice %d", got - asked, time.monotonic() - got,
                        _cpu_seconds(w.pid) - w.cpu, w.nice)
            self._lost(w, "timeouts")
            with self._cond:
                self._costs.pop(key, None)
                self._runaways[shape] = time.monotonic()
                self._runaways.move_to_end(shape)
                if len(self._runaways) > _COSTS_KEPT:
                    self._runaways.popitem(last=False)
            raise QueryTimeout(f"the query did not finish within the {timeout:g} s deadline")
        self._checkin(w)
        with self._cond:
            self._runaways.pop(shape, None)
            self._costs[key] = w.cpu - cpu
            self._costs.move_to_end(key)
            if len(self._costs) > _COSTS_KEPT:
                self._costs.popitem(last=False)
        return unwrap(reply), w.path

    def _await_reply(self, w: _Worker, started: float, deadline: float,
                     grace: float) -> tuple | None:
        """The worker's reply, or None at the deadline; deprioritises a query by the CPU
        time it has used beyond ``grace`` once it runs longer than the first step."""
        wait = _NICE_STEPS[0][0]
        long = False
        while True:
            if w.readable(min(time.monotonic() + wait, deadline) - time.monotonic()):
                reply, w.cpu = w.conn.recv()
                return reply
            now = time.monotonic()
            if now >= deadline:
                return None
            nice = _nice_for(_cpu_seconds(w.pid) - w.cpu, grace)
            if nice > w.nice:
                _renice(w, nice)
            if not long and now - started >= _LONG_AFTER:
                long = True
                self._went_long(w)
            wait = _TICK

    def _went_long(self, w: _Worker) -> None:
        """Start an extra worker if long queries leave fewer than ``size`` for quick ones."""
        with self._cond:
            self._long.add(w)
            total = len(self._idle) + len(self._busy) + self._starting
            if (self._closed or w.gen != self._gen or total >= self.size + self.burst
                    or total - len(self._long) >= self.size):
                return
            self._starting += 1
        self._start_refill(None, True)

    def _checkout(self, deadline: float, timeout: float, cost: float) -> _Worker:
        """An idle worker; a request that could no longer finish by ``deadline`` (it needs
        ``cost`` CPU seconds, as last measured, or a minimal slice) is shed at once: 503."""
        if os.getpid() != self._pid:
            raise RuntimeError("Executor was created before a fork; create it in the process "
                               "that uses it (the HTTP worker, not its parent)")
        need = max(cost, _MIN_SLICE)
        while True:
            with self._cond:
                while not self._idle:
                    if self._closed:
                        raise QueryError("the query executor is closed", 503)
                    remaining = deadline - time.monotonic() - need
                    # Every worker busy with a long query and none starting: none is likely
                    # to be free in time, and waiting would hold an HTTP thread: shed now.
                    hopeless = not self._starting and self._busy <= self._long
                    if remaining <= 0 or hopeless:
                        raise Busy("all query workers are busy with long queries; try again "
                                   "later", max(1, math.ceil(timeout)))
                    self._cond.wait(min(remaining, _TICK))
                if deadline - time.monotonic() <= 0:
                    raise QueryTimeout("the request's time ran out before its query could start "
                                       "(it was queued or read too long)")
                w = self._idle.pop()
                self._busy.add(w)
            if not w.readable(0):  # an idle worker has nothing to say unless it died
                return w
            self._lost(w, "crashes")

    def _checkin(self, w: _Worker) -> None:
        refill = False
        with self._cond:
            self._busy.discard(w)
            self._long.discard(w)
            total = len(self._idle) + len(self._busy) + self._starting + 1
            keep = not self._closed and w.gen == self._gen
            if keep and total - len(self._long) > self.size:
                keep = False  # an extra worker no long query needs any more: retire it
            elif keep:
                _renice(w, 0)
                if w.nice != 0:  # raising priority needs privileges: replace the worker
                    keep, refill = False, True
                    self._starting += 1
            if keep:
                self._idle.append(w)
                self._cond.notify()
                return
        _kill(w)  # extra, from before a reload, or closed meanwhile
        w.proc.join(5)
        w.conn.close()
        if refill:
            self._start_refill(None, True)

    def _lost(self, w: _Worker, counter: str | None) -> bool:
        """Kill a checked-out worker and replace it in the background; True if closed."""
        with self._cond:
            closed = self._closed
            if counter and not closed:
                self._counts[counter] += 1
            if not closed:
                self._busy.discard(w)
                self._long.discard(w)
                total = len(self._idle) + len(self._busy) + self._starting
                # Keep ``size`` workers beside those busy with long queries, within the burst.
                replace = (w.gen == self._gen and total - len(self._long) < self.size
                           and total < self.size + self.burst)
                if replace:
                    self._starting += 1
        if closed:  # close() kills and reaps it
            w.conn.close()
            return True
        _kill(w)
        w.conn.close()
        log.warning("query worker %s killed (%s)", w.pid, counter or "interrupted")
        self._start_refill(w, replace)
        return False

    # --- worker management ------------------------------------------------------------

    def _start_refill(self, dead: _Worker | None, replace: bool) -> None:
        """Reap ``dead`` and, if ``replace`` (counted in ``_starting``), start a worker."""
        with self._cond:
            gen = self._gen if dead is None else dead.gen
            t = threading.Thread(target=self._replace, args=(dead, gen, replace), daemon=True,
                                 name="namkg-worker-replacer")
            self._replacers.add(t)
        t.start()

    def _replace(self, dead: _Worker | None, for_gen: int, replace: bool) -> None:
        try:
            if dead is not None:
                dead.proc.join(5)  # reap it: no zombie
            if not replace:
                return
            delay = 0.1
            while True:
                with self._cond:
                    if self._closed or for_gen != self._gen:
                        return
                    path, gen = self._path, self._gen
                try:
                    w = self._spawn(path, gen)
                    self._await_ready(w)
                    break
                except (OSError, RuntimeError) as exc:
                    log.error("could not start a query worker: %s", exc)
                    time.sleep(delay)
                    delay = min(delay * 2, 5.0)
            with self._cond:
                if not self._closed and w.gen == self._gen:
                    self._idle.append(w)
                    self._cond.notify()
                    return
            _kill(w)
            w.proc.join(5)
            w.conn.close()
        finally:
            with self._cond:
                if replace:
                    self._starting -= 1
                self._replacers.discard(threading.current_thread())
                self._cond.notify_all()

    def _start_many(self, n: int, gen: int, path: str | None = None) -> list[_Worker]:
        """Start ``n`` workers and wait until all opened the store, or raise."""
        path = self._path if path is None else path
        workers: list[_Worker] = []
        try:
            for _ in range(n):
                workers.append(self._spawn(path, gen))
            for w in workers:
                self._await_ready(w)
        except BaseException:
            self._retire_all(workers)
            raise
        return workers

    def _spawn(self, path: str, gen: int) -> _Worker:
        ours, theirs = _CTX.Pipe()
        proc = _CTX.Process(target=_worker_main, name="namkg-query-worker", daemon=True,
                            args=(theirs, path, self.writable, self.memory_mb, self.allowlist))
        with self._spawn_lock:  # multiprocessing's bookkeeping of children is not thread-safe
            started = time.perf_counter()
            proc.start()
        theirs.close()
        return _Worker(proc, ours, gen, path, started)

    def _await_ready(self, w: _Worker) -> None:
        ok = w.readable(_READY_TIMEOUT)
        try:
            msg = w.conn.recv() if ok else ("failed", "timed out opening the store")
            if msg[0] == "ready":
                w.cpu = msg[2]
                self._sandboxed(msg[3])
        except (EOFError, OSError):
            w.proc.join(5)
            msg = ("failed", f"exited with code {w.proc.exitcode} while opening the store")
        if msg[0] != "ready":
            _kill(w)
            w.proc.join(5)
            w.conn.close()
            raise RuntimeError(f"query worker on {w.path!r} failed: {msg[1]}")
        self.spawn_seconds = time.perf_counter() - w.started

    def _sandboxed(self, how: str) -> None:
        """Log once what confines the workers: loudly where the kernel offers nothing."""
        if self.sandbox != how:
            self.sandbox = how
            (log.warning if how.startswith("UNSANDBOXED") else log.debug)(
                "query workers sandboxed: %s", how)

    def _retire_all(self, workers: list[_Worker]) -> None:
        for w in workers:
            _kill(w)
        for w in workers:
            w.proc.join(5)
            w.conn.close()

    def _drain(self, deadline: float) -> None:
        """Wait until no worker of an older generation is busy or starting (writable reload)."""
        with self._cond:
            while self._busy or self._starting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    for w in self._busy:
                        _kill(w)
                    self._cond.wait(1.0)
                    return
                self._cond.wait(remaining)


def _preload() -> None:
    """Have the fork server import what every worker needs, before it starts (once).

    A forked worker also re-runs the parent's ``__main__`` module (multiprocessing does that
    for pickling); preloaded, its imports are already done (240 ms -> 25 ms per worker for
    a main module that imports rdflib and flask).
    """
    modules = ["namkg.query.forkserver_guard", "pyoxigraph", __name__]
    main = sys.modules["__main__"]
    name = getattr(main.__spec__, "name", None)
    if name:  # python -m package.module
        modules += [] if name.endswith("__main__") else [name]
    else:  # a script (a console entry point): preload the modules it took names from
        for value in list(vars(main).values()):
            mod = value.__name__ if isinstance(value, types.ModuleType) else getattr(
                value, "__module__", None)
            if isinstance(mod, str) and mod in sys.modules and mod not in ("__main__", "builtins"):
                modules.append(mod)
    _CTX.set_forkserver_preload(sorted(set(modules), key=modules.index))


def _shape(text: str) -> str:
    """A query's text without its layout or a trailing comment (a request counter, say).

    >>> _shape("SELECT *\\n{ ?s ?p ?o }  # 17") == _shape("SELECT * { ?s ?p ?o } # 18")
    True
    """
    return " ".join(_TRAILING_COMMENT.sub("", text).split())


def _nice_for(used: float, grace: float = 0.0) -> int:
    """The nice value of a query that has used ``used`` CPU seconds, ``grace`` of them free.

    >>> _nice_for(0.01), _nice_for(0.15), _nice_for(5.0), _nice_for(0.15, grace=0.24)
    (0, 10, 19, 0)
    """
    used -= grace
    return max([n for after, n in _NICE_STEPS if used >= after], default=0)


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, from /proc; 0 where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def _kill(w: _Worker) -> None:
    if w.proc.exitcode is None:
        w.proc.kill()


# --- the worker process -------------------------------------------------------------------


def _worker_main(conn, path: str, writable: bool, memory_mb: int, allowlist=()) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which closes us
    os.environ["RUST_BACKTRACE"] = "0"  # out of memory: one line in the log, not a backtrace
    try:
        _fewer_malloc_arenas()
        if memory_mb:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            cap = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
        store = ox.Store(path) if writable else ox.Store.read_only(path)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    # From here on the kernel refuses network and file writes, whatever query text arrives.
    how = confine(allowlist=allowlist, readable=[path], writable=[path] if writable else [])
    conn.send(("ready", os.getpid(), time.process_time(), how))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return  # the parent closed the pipe or died
        reply = answer(store, job)
        try:
            conn.send((reply, time.process_time()))  # CPU used: the parent's priority basis
        except (OSError, ValueError):
            return


def query_job(sparql: str, solutions_format: str | None, graph_format: str | None,
              default_graphs, named_graphs, base_iri: str | None, limit: int,
              max_bytes: int = 0) -> tuple:
    """The message a worker answers a query from (plain, picklable values)."""
    return ("query", sparql, solutions_format, graph_format,
            None if default_graphs is None else list(default_graphs),
            None if named_graphs is None else list(named_graphs), base_iri, limit, max_bytes)


def answer(store: ox.Store, job: tuple) -> tuple:
    """The reply to ``job`` on ``store``: a tuple that pickles, never an exception."""
    try:
        return _serve(store, job)
    except SyntaxError as exc:
        return ("syntax", str(exc))
    except MemoryError:
        return ("error", 503, "the query ran out of memory")
    except (RuntimeError, ValueError, TypeError) as exc:
        return ("error", 400, f"query evaluation failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - the worker must keep serving
        return ("error", 500, f"query failed: {type(exc).__name__}: {exc}")


def unwrap(reply: tuple) -> tuple:
    """A successful reply as it is; a failed one raised as its :class:`QueryError`."""
    kind = reply[0]
    if kind in ("ok", "done"):
        return reply
    if kind == "syntax":
        raise QuerySyntaxError(reply[1])
    if kind == "notacceptable":
        raise NotAcceptable(f"no acceptable format for a {reply[1]} result")
    raise QueryError(reply[2], reply[1])


def _fewer_malloc_arenas() -> None:
    """Each thread's glibc malloc arena reserves 64 MB+ of address space, which the cap
    counts: without this a worker's size after opening the store varied from 370 to 900 MB
    (and a 1 GB cap made RocksDB fail to start threads); with two arenas it is ~180 MB."""
    try:
        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent (the fork server) dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)


def _serve(store: ox.Store, job: tuple) -> tuple:
    if job[0] == "update":
        store.update(job[1])
        return ("done",)
    _, sparql, solutions_media, graph_media, default_graphs, named_graphs, base, limit = job[:8]
    max_bytes = job[8] if len(job) > 8 else 0
    options: dict = {}
    if base is not None:
        options["base_iri"] = base
    if default_graphs is not None:
        options["default_graph"] = [ox.NamedNode(g) for g in default_graphs]
    elif not declares_dataset(sparql):  # FROM in the query would lose to the union flag
        options["use_default_graph_as_union"] = True
    if named_graphs is not None:
        options["named_graphs"] = [ox.NamedNode(g) for g in named_graphs]
    results = store.query(sparql, **options)
    if isinstance(results, ox.QueryBoolean):
        if solutions_media is None:
            return ("notacceptable", "boolean")
        fmt = ox.QueryResultsFormat.from_media_type(solutions_media)
        return ("ok", "boolean", fmt.media_type, results.serialize(format=fmt), None, False)
    if isinstance(results, ox.QuerySolutions):
        if solutions_media is None:
            return ("notacceptable", "solutions")
        fmt = ox.QueryResultsFormat.from_media_type(solutions_media)
        return ("ok", "solutions", fmt.media_type, *_solutions(results, fmt, limit, max_bytes))
    if graph_media is None:
        return ("notacceptable", "graph")
    fmt = ox.RdfFormat.from_media_type(graph_media)
    return ("ok", "graph", fmt.media_type, *_graph(results, fmt, limit, max_bytes))


class _Full(Exception):
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
        results.serialize(cap, format=ox.QueryResultsFormat.TSV)
    except _Full:
        pass
    # Complete lines only: a byte cap may have stopped the serializer within a row.
    lines = [line + b"\n" for line in b"".join(cap.parts).split(b"\n")[:-1]]

    def body(n: int) -> bytes:  # the header and n rows, in the wanted format
        tsv = b"".join(lines[: n + 1])
        if fmt == ox.QueryResultsFormat.TSV:
            return tsv
        return ox.parse_query_results(tsv, ox.QueryResultsFormat.TSV).serialize(format=fmt)

    out, rows = _within(body, len(lines) - 1, max_bytes)
    return out, rows, cap.truncated or rows < len(lines) - 1


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
