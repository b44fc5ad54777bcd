"""A query worker process: its main loop (in the child) and the executor's handle on it.

Workers are started by a multiprocessing fork server, which is safe in a threaded server and
fast: a worker is a fork of a process that already imported pyoxigraph. Each caps its own
address space (a query that eats memory kills only its worker), opens the store, confines
itself (:mod:`namkg.query.sandbox`), says :class:`~namkg.query.messages.Ready` and answers
jobs until its pipe closes. It dies with the fork server, which dies with the process that
started it (:mod:`namkg.query.forkserver_guard`): a killed server leaves no worker behind.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import resource
import select
import signal
import sys
import threading
import time
import types

import pyoxigraph as ox

from .messages import (
    CannotStart,
    Outcome,
    QueryJob,
    Ready,
    Replied,
    UpdateJob,
    receive,
    send,
    set_receive_timeout,
)
from .results import answer
from .sandbox import confine
from .schedule import NICE_STEPS

__all__ = ["READY_TIMEOUT", "Worker", "preload", "retire_all", "worker_main"]

_CTX = multiprocessing.get_context("forkserver")
READY_TIMEOUT = 60.0  # seconds for a new worker to open the store
FIRST_WAIT = NICE_STEPS[0][0]  # seconds a reply is awaited by one read (Worker.answered)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_START_LOCK = threading.Lock()  # multiprocessing's bookkeeping of children is not thread-safe


class Worker:
    """The executor's handle on one worker process; used by one thread at a time."""

    __slots__ = ("proc", "conn", "pid", "gen", "path", "started", "nice", "cpu", "poller")

    def __init__(self, proc, conn, gen: int, path: str, started: float):
        self.proc, self.conn, self.gen, self.pid = proc, conn, gen, proc.pid
        self.path, self.started, self.nice = path, started, 0
        self.cpu = 0.0  # the worker's CPU seconds when it last replied
        # One poll object for the worker's life: Connection.poll builds a selector per call
        # (~40 us of the request thread's time per query).
        self.poller = select.poll()
        self.poller.register(conn.fileno(), select.POLLIN)
        set_receive_timeout(conn, FIRST_WAIT)  # see answered()

    @classmethod
    def start(cls, path: str, gen: int, *, writable: bool, memory_mb: int,
              allowlist: tuple[str, ...]) -> Worker:
        """Start a worker on the store at ``path`` (``gen``: the executor's store generation);
        :meth:`await_ready` then waits until it opened the store."""
        ours, theirs = _CTX.Pipe()
        proc = _CTX.Process(target=worker_main, name="namkg-query-worker", daemon=True,
                            args=(theirs, path, writable, memory_mb, allowlist))
        with _START_LOCK:
            started = time.perf_counter()
            proc.start()
        theirs.close()
        return cls(proc, ours, gen, path, started)

    def await_ready(self) -> Ready:
        """The worker's :class:`Ready`; a worker that could not open the store is retired and
        RuntimeError raised."""
        try:
            msg = (receive(self.conn) if self.readable(READY_TIMEOUT)
                   else CannotStart("timed out opening the store"))
        except (EOFError, OSError):
            self.proc.join(5)
            msg = CannotStart(f"exited with code {self.proc.exitcode} while opening the store")
        if not isinstance(msg, Ready):
            self.retire()
            raise RuntimeError(f"query worker on {self.path!r} failed: {msg.reason}")
        self.cpu = msg.cpu
        return msg

    def readable(self, timeout: float) -> bool:
        """Whether the worker has replied (or died: EOF reads as readable) within ``timeout``."""
        return bool(self.poller.poll(max(0.0, timeout) * 1000))

    def ask(self, job: QueryJob | UpdateJob) -> None:
        send(self.conn, job)

    def reply(self) -> Outcome:
        """The outcome of the job asked (wait for :meth:`readable` first)."""
        replied = receive(self.conn)
        self.cpu = replied.cpu
        return replied.outcome

    def answered(self) -> Outcome | None:
        """The outcome of the job asked, read as it comes, or None if it did not come within
        ``FIRST_WAIT`` seconds (the pipe's receive timeout): a quick query's reply costs one
        blocking call, not a poll and a read (each lets go of the GIL, and getting it back
        under load cost the HTTP process ~40 us)."""
        replied = receive(self.conn)
        if replied is None:
            return None
        self.cpu = replied.cpu
        return replied.outcome

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the worker has used, from /proc; 0 where unreadable."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            return 0.0

    def renice(self, nice: int) -> None:
        """Set the worker's CPU priority; lowering it again needs root, so a failure is ignored
        (the worker then stays at low priority, which only slows it)."""
        if self.nice == nice:
            return
        try:
            os.setpriority(os.PRIO_PROCESS, self.pid, nice)
            self.nice = nice
        except OSError:
            pass

    def kill(self) -> None:
        if self.proc.exitcode is None:
            self.proc.kill()

    def retire(self) -> None:
        """Kill the worker, reap it and close its pipe."""
        retire_all([self])


def retire_all(workers: list[Worker]) -> None:
    """Kill workers, all at once, then reap them and close their pipes."""
    for w in workers:
        w.kill()
    for w in workers:
        w.proc.join(5)
        w.conn.close()


def preload() -> None:
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


# --- in the worker process ----------------------------------------------------------------


def worker_main(conn, path: str, writable: bool, memory_mb: int, allowlist=()) -> None:
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
        send(conn, CannotStart(f"{type(exc).__name__}: {exc}"))
        return
    # From here on the kernel refuses network and file writes, whatever query text arrives.
    how = confine(allowlist=allowlist, readable=[path], writable=[path] if writable else [])
    send(conn, Ready(os.getpid(), time.process_time(), how))
    allowed = frozenset(allowlist)  # for the guard, which reads the same list
    while True:
        try:
            job = receive(conn)
        except (EOFError, OSError):
            return  # the parent closed the pipe or died
        outcome = answer(store, job, allowed)
        try:  # with the CPU used: the parent's priority basis
            send(conn, Replied(outcome, time.process_time()))
        except (OSError, ValueError):
            return


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
