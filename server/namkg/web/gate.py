"""Request bodies read in full, within the client's time, before the app runs
(:class:`BodyGate`): granian itself reads a body in the app's thread, blocking, without a
timeout (see :mod:`namkg.web.serve`)."""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections import deque

from .chain import CORS  # so that a browser's client can read gate answers too
from .endpoint import ARRIVED
from .protocol import BODY

log = logging.getLogger(__name__)

READERS_PER_THREAD = 4  # bodies received at once per HTTP thread (503 beyond)
ABORTERS = 4  # threads answering 408, each pausing ABORT_PAUSE seconds per answer
ABORT_PAUSE = 0.05
EXPIRY_TICK = 0.05  # seconds: a 408 is sent at most this late


class _Pending:
    """A body being received: either it completes (the app answers) or its time runs out
    (we answer 408), whichever claims it first."""

    __slots__ = ("proto", "_once")

    def __init__(self, proto):
        self.proto, self._once = proto, threading.Lock()

    def claim(self) -> bool:
        return self._once.acquire(blocking=False)


class BodyGate:
    """granian's WSGI callable ``run(proto, scope)``, with request bodies read in full before
    the app runs, on threads apart from the app's.

    granian reads a body only while its callable runs (a read after it returned gets
    nothing), so a reading thread is one of granian's: granian gets ``readers`` threads more
    than the ``slots`` that may run the app at once. A body not complete within ``timeout``
    seconds is answered 408 and its connection closed, which ends the blocked read and frees
    its thread; beyond ``readers`` bodies at once, 503. A request without a body never waits
    for a reader, so slow bodies cannot hold up /healthz or a GET query.
    """

    def __init__(self, run, *, timeout: float, max_body: int, readers: int, slots: int):

        self.run, self.timeout, self.max_body, self.arrived = run, timeout, max_body, ARRIVED
        self.cors = list(CORS)
        self.readers = readers
        # Counted by tokens in C queues, not threading semaphores, whose acquire and release
        # run a Condition in Python under the GIL: both gates cost a request 2.3 us that way
        # and 0.12 us so (timeit), and py-spy --gil put the semaphores at ~5% of the HTTP
        # process's GIL time under load.
        self.free = _tokens(readers)
        self.slots = _tokens(slots)
        # (deadline, pending) in deadline order, since every body gets the same timeout; a
        # deque's append and popleft are atomic, so the request path takes no lock for it
        self.expiring: deque[tuple[float, _Pending]] = deque()
        self.aborts: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._expire, daemon=True, name="namkg-body-timeout").start()
        for i in range(ABORTERS):
            threading.Thread(target=self._abort, daemon=True, name=f"namkg-408-{i}").start()

    def __call__(self, proto, scope) -> None:
        now = scope[self.arrived] = time.monotonic()  # the deadline counts from here
        length = _body_length(scope, self.max_body)
        if length is not None:
            try:
                reader = self.free.get_nowait()
            except queue.Empty:
                log.warning("503: %d request bodies already being received", self.readers)
                return _answer(
                    proto,
                    503,
                    "Too many requests being received at once; retry.\n",
                    [("Retry-After", "1"), *self.cors],
                )
            try:
                pending = _Pending(proto)
                self.expiring.append((now + self.timeout, pending))
                body = _read(scope["wsgi.input"], length, self.max_body)
            finally:
                self.free.put(reader)
            if not pending.claim():
                return  # answered 408; the read ended as its connection closed
            scope[BODY], scope["wsgi.input"] = body, io.BytesIO(body)
        slot = self.slots.get()
        try:
            self.run(proto, scope)
        finally:
            self.slots.put(slot)

    def _expire(self) -> None:
        """Claim the bodies whose time has run out, waking at most every ``EXPIRY_TICK``
        seconds, never per request: waking this thread for each body cost every request a
        switch of the GIL. An empty queue needs no watching for ``timeout`` seconds, since a
        body that comes meanwhile expires later than that."""
        while True:
            if not self.expiring:
                time.sleep(self.timeout)
                continue
            delay = self.expiring[0][0] - time.monotonic()
            if delay > 0:
                time.sleep(max(delay, EXPIRY_TICK))
                continue
            _, pending = self.expiring.popleft()
            if pending.claim():
                self.aborts.put(pending.proto)

    def _abort(self) -> None:
        """Answer 408 and close the connection: one byte more is declared than sent, so that
        hyper drops the connection after the text (with ``Connection: close`` alone it would
        wait for the rest of the body, and the reading thread with it)."""
        text = f"Request body not received within {self.timeout:g} s\n".encode()
        head = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Connection", "close"),
            ("Content-Length", str(len(text) + 1)),
            *self.cors,
        ]
        while True:
            proto = self.aborts.get()
            log.info("408: request body not received within %g s", self.timeout)
            proto.response_iter(408, head, _then_pause(text))


def _tokens(n: int) -> queue.SimpleQueue:
    """``n`` tokens: ``get`` takes one (waiting while none is left), ``put`` gives it back."""
    pool: queue.SimpleQueue = queue.SimpleQueue()
    for token in range(n):
        pool.put(token)
    return pool


def _then_pause(text: bytes):
    """``text``, then a pause that lets hyper write it before the short body closes the
    connection (without it the client got no answer, only the close)."""
    yield text
    time.sleep(ABORT_PAUSE)


def _body_length(scope, max_body: int) -> int | None:
    """How much body to read ahead: its declared length, 0 for a chunked body, or None when
    there is none (or a declared length the app refuses, 413 or 400, without reading it)."""
    declared = scope.get("CONTENT_LENGTH")
    if declared is None or declared == "":
        return 0 if "HTTP_TRANSFER_ENCODING" in scope else None
    try:
        length = int(declared)
    except ValueError:
        return None
    return length if 0 < length <= max_body else None


def _read(stream, length: int, max_body: int) -> bytes:
    """The whole body of a known ``length`` (or less if the client ends it early); else up to
    ``max_body + 1`` bytes of it, so that the app still sees that it is too long (413)."""
    limit = length or max_body + 1
    chunks, total = [], 0
    while total < limit:
        chunk = stream.read(min(65536, limit - total))  # may return less: whatever has come
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _answer(proto, status: int, text: str, headers=()) -> None:
    """A plain-text answer from here, not from the app; the connection is closed after it."""
    body = text.encode()
    head = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
        *headers,
    ]
    proto.response_bytes(status, head, body)
