"""The process's log lines on stderr, the access log's written in batches.

Written one by one, each access-log line cost a ``write(2)`` per request, for which the
request's thread let go of the GIL and had to win it back among the others: distinct-text
queries at 8 clients ran at ~1,860 requests/s with the line and ~2,370 without it (same
server, alternated runs). The access log's lines are now kept for at most ``interval``
seconds (or ``most`` lines) and written together; any other record (start-up, warnings,
errors) is written at once, after the lines kept before it, so the order stays. At exit,
``logging.shutdown()`` flushes what is kept; a process killed outright loses at most
``interval`` seconds of access lines.

While this handler is the only place an access line can go (:func:`sink_of`), the chain hands
it the line itself (:meth:`BatchedStream.keep`), not a ``LogRecord`` to pass through logging:
the record, its handling and formatting were ~6 us of a query's ~30 us in the HTTP layers.
Any other set-up (a handler or filter of the operator's, pytest's ``caplog``) gets records.

>>> import io
>>> out = io.StringIO()
>>> h = BatchedStream(out, interval=3600)
>>> def record(name, msg, level=logging.INFO):
...     return logging.makeLogRecord({"name": name, "msg": msg, "levelno": level})
>>> h.emit(record("namkg.access", "GET /"))
>>> out.getvalue()  # kept
''
>>> h.emit(record("namkg", "warned", logging.WARNING))
>>> out.getvalue()  # written at once, after the line kept before it
'GET /\\nwarned\\n'
>>> h.emit(record("namkg.access", "GET /id"))
>>> h.keep("GET /sitemap.xml")  # the same, without a record
>>> h.flush(); out.getvalue().splitlines()[-2:]
['GET /id', 'GET /sitemap.xml']
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

ACCESS = "namkg.access"
MESSAGE = logging.Formatter("%(message)s")  # the line as it is: the access log's are JSON


def sink_of(logger: logging.Logger) -> BatchedStream | None:
    """The handler that alone gets ``logger``'s INFO records, written as they are, if it is a
    :class:`BatchedStream` batching them; else None (records must go through logging).

    >>> log = logging.getLogger("namkg.doctest.sink")
    >>> log.propagate, h = False, BatchedStream(batched=(log.name,), interval=3600)
    >>> log.addHandler(h); sink_of(log) is h
    True
    >>> log.addFilter(lambda r: True); sink_of(log) is None
    True
    """
    found = None
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters:
            return None
        for handler in node.handlers:
            if (found is not None or not isinstance(handler, BatchedStream)
                    or handler.filters or handler.formatter is not MESSAGE
                    or handler.level > logging.INFO or logger.name not in handler.batched):
                return None
            found = handler
        node = node.parent if node.propagate else None
    return found


class BatchedStream(logging.StreamHandler):
    """A ``StreamHandler`` that keeps the lines of the loggers in ``batched`` and writes them
    every ``interval`` seconds, or once ``most`` are kept; other lines go out at once.

    Kept lines wait in a deque, whose ``append`` needs no lock: a request thread that keeps a
    line never waits for one that writes (which the handler's lock made it do, at every
    write: ~10% of distinct-query throughput). Only writers take the lock, to keep the order."""

    def __init__(self, stream=None, *, batched: tuple[str, ...] = (ACCESS,),
                 interval: float = 0.2, most: int = 4096):
        super().__init__(stream)
        self.setFormatter(MESSAGE)
        self.batched, self.most, self.interval = frozenset(batched), most, interval
        self.pending: deque[str] = deque()
        threading.Thread(target=self._tick, daemon=True, name="namkg-log-batch").start()

    def emit(self, record: logging.LogRecord) -> None:  # called holding self.lock
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 - as logging does: report, never raise
            self.handleError(record)
            return
        if record.name in self.batched:
            self.keep_line(line)
        else:
            self._write(line)

    def keep(self, line: str) -> None:
        """Keep a line of a batched logger as ``emit`` would keep its record's."""
        self.keep_line(line + self.terminator)

    def keep_line(self, line: str) -> None:
        self.pending.append(line)
        if len(self.pending) >= self.most:  # the writer fell behind: this thread writes
            self.flush()

    def flush(self) -> None:
        with self.lock:
            self._write()

    def _write(self, then: str = "") -> None:  # called holding self.lock
        pop = self.pending.popleft
        parts = [pop() for _ in range(len(self.pending))]  # lines kept meanwhile: next time
        text = "".join(parts) + then
        if not text:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nowhere left to say it
            pass

    def _tick(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()
