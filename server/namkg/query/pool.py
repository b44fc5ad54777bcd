"""The executor's worker processes: ``size`` of them on one store, plus up to ``burst`` extra
while queries run long, so that long queries never take all the workers from quick ones.

A request thread checks a worker out (or is shed with 503 when none could serve it in time),
and checks it in when answered; a worker that timed out or died is killed and replaced in
the background while the others keep serving. A reload starts workers on the new store (a
new generation) and retires the old ones as their queries end.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

from .backend import Busy, QueryError, QueryTimeout
from .schedule import MIN_SLICE, TICK
from .worker import READY_TIMEOUT, Worker, preload, retire_all

__all__ = ["Pool"]

log = logging.getLogger(__name__)


class Pool:
    """The worker processes of one executor; thread-safe."""

    def __init__(self, path: str, *, size: int, burst: int, writable: bool, memory_mb: int,
                 allowlist: tuple[str, ...]):
        self.size, self.burst = size, burst
        self.writable, self.memory_mb, self.allowlist = writable, memory_mb, allowlist
        self.sandbox: str | None = None  # what confines the workers, as the first one said
        self.spawn_seconds: float | None = None  # how long the last worker took to be ready
        self.counts = {"timeouts": 0, "crashes": 0, "queries": 0}
        self._path = path
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._long: set[Worker] = set()  # busy with a query past the first nice step
        self._starting = 0
        self._gen = 0
        self._closed = False
        self._replacers: set[threading.Thread] = set()
        preload()
        self._idle = self._start_many(size, 0)

    # --- the request path ---------------------------------------------------------------

    def crowded(self) -> bool:
        """No worker idle, or half the pool or more on long queries: no room for a query
        that ran away lately."""
        with self._cond:
            return not self._idle or len(self._long) >= self.size // 2

    def checkout(self, deadline: float, timeout: float, cost: float) -> Worker:
        """An idle worker; a request that could no longer finish by ``deadline`` (it needs
        ``cost`` CPU seconds, as last measured, or a minimal slice) is shed at once: 503."""
        if os.getpid() != self._pid:
            raise RuntimeError("Executor was created before a fork; create it in the process "
                               "that uses it (the HTTP worker, not its parent)")
        need = max(cost, MIN_SLICE)
        with self._cond:
            while not self._idle:
                if self._closed:
                    raise QueryError("the query executor is closed", 503)
                remaining = deadline - time.monotonic() - need
                # Every worker busy with a long query and none starting: none is likely to be
                # free in time, and waiting would hold an HTTP thread: shed now.
                hopeless = not self._starting and self._busy <= self._long
                if remaining <= 0 or hopeless:
                    raise Busy("all query workers are busy with long queries; try again "
                               "later", max(1, math.ceil(timeout)))
                self._cond.wait(min(remaining, TICK))
            if deadline - time.monotonic() <= 0:
                raise QueryTimeout("the request's time ran out before its query could start "
                                   "(it was queued or read too long)")
            w = self._idle.pop()
            self._busy.add(w)
            self.counts["queries"] += 1
            return w

    def checkin(self, w: Worker) -> None:
        """A worker whose query was answered: idle again, or retired if no longer needed."""
        refill = False
        with self._cond:
            self._busy.discard(w)
            self._long.discard(w)
            total = len(self._idle) + len(self._busy) + self._starting + 1
            keep = not self._closed and w.gen == self._gen
            if keep and total - len(self._long) > self.size:
                keep = False  # an extra worker no long query needs any more: retire it
            elif keep:
                w.renice(0)
                if w.nice != 0:  # raising priority needs privileges: replace the worker
                    keep, refill = False, True
                    self._starting += 1
            if keep:
                self._idle.append(w)
                self._cond.notify()
                return
        w.retire()  # extra, from before a reload, or closed meanwhile
        if refill:
            self._start_refill(None, True)

    def went_long(self, w: Worker) -> None:
        """Start an extra worker if long queries leave fewer than ``size`` for quick ones."""
        with self._cond:
            self._long.add(w)
            total = len(self._idle) + len(self._busy) + self._starting
            if (self._closed or w.gen != self._gen or total >= self.size + self.burst
                    or total - len(self._long) >= self.size):
                return
            self._starting += 1
        self._start_refill(None, True)

    def lost(self, w: Worker, counter: str | None, *, asked: bool = True) -> bool:
        """Kill a checked-out worker and replace it in the background; True if closed.
        ``asked=False``: it died idle, before a query reached it (not counted as a query)."""
        with self._cond:
            closed = self._closed
            if counter and not closed:
                self.counts[counter] += 1
                self.counts["queries"] -= not asked
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
        w.kill()
        w.conn.close()
        log.warning("query worker %s killed (%s)", w.pid, counter or "interrupted")
        self._start_refill(w, replace)
        return False

    # --- the pool's life ----------------------------------------------------------------

    def reload(self, path: str, timeout: float) -> None:
        """Serve from ``path`` from now on; queries running on the old store finish (a writer
        first waits up to ``timeout`` for them: the new one may need the old one's lock)."""
        if self.writable:
            with self._cond:
                self._gen += 1
                gen, old_path, self._path = self._gen, self._path, path
                old, self._idle = self._idle, []
            retire_all(old)
            self._drain(time.monotonic() + timeout + 5)
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
                self._cond.notify_all()
        retire_all(old)

    def stats(self) -> dict:
        with self._cond:
            workers = self._idle + list(self._busy)
            return {"workers": len(workers), "busy": len(self._busy), "long": len(self._long),
                    "starting": self._starting, **self.counts,
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
            w.kill()
        for w in idle + busy:
            w.proc.join(5)
        for w in idle:  # a busy worker's pipe belongs to its request thread
            w.conn.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:  # replacers reap the workers they killed
            with self._cond:
                replacers = list(self._replacers)
            if not replacers:
                break
            for t in replacers:
                t.join(max(0.0, deadline - time.monotonic()))

    # --- starting workers ---------------------------------------------------------------

    def _start_refill(self, dead: Worker | None, replace: bool) -> None:
        """Reap ``dead`` and, if ``replace`` (counted in ``_starting``), start a worker."""
        with self._cond:
            gen = self._gen if dead is None else dead.gen
            t = threading.Thread(target=self._replace, args=(dead, gen, replace), daemon=True,
                                 name="namkg-worker-replacer")
            self._replacers.add(t)
        t.start()

    def _replace(self, dead: Worker | None, for_gen: int, replace: bool) -> None:
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
                    w = self._start(path, gen)
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
            w.retire()
        finally:
            with self._cond:
                if replace:
                    self._starting -= 1
                self._replacers.discard(threading.current_thread())
                self._cond.notify_all()

    def _start_many(self, n: int, gen: int, path: str | None = None) -> list[Worker]:
        """Start ``n`` workers and wait until all opened the store, or raise."""
        path = self._path if path is None else path
        workers: list[Worker] = []
        try:
            for _ in range(n):
                workers.append(self._start(path, gen))
            for w in workers:
                self._await_ready(w)
        except BaseException:
            retire_all(workers)
            raise
        return workers

    def _start(self, path: str, gen: int) -> Worker:
        return Worker.start(path, gen, writable=self.writable, memory_mb=self.memory_mb,
                            allowlist=self.allowlist)

    def _await_ready(self, w: Worker) -> None:
        how = w.await_ready().sandbox
        self.spawn_seconds = time.perf_counter() - w.started
        if self.sandbox != how:  # said once: loudly where the kernel offers nothing
            self.sandbox = how
            (log.warning if how.startswith("UNSANDBOXED") else log.debug)(
                "query workers sandboxed: %s", how)

    def _drain(self, deadline: float) -> None:
        """Wait until no worker of an older generation is busy or starting (writable reload)."""
        with self._cond:
            while self._busy or self._starting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    for w in self._busy:
                        w.kill()
                    self._cond.wait(1.0)
                    return
                self._cond.wait(remaining)
