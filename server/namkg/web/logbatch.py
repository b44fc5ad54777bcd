"""The process's log lines on stderr, the access log's written in batches.

Written one by one, each access-log line cost a ``write(2)`` per request, for which the
request's thread let go of the GIL and had to win it back among the others: distinct-text
queries at 8 clients ran at ~1,860 requests/s with the line and ~2,370 without it (same
server, alternated runs). The access log's lines are now kept for at most ``interval``
seconds (or ``most`` lines) and written together; any other record (start-up, warnings,
errors) is written at once, after the lines kept before it, so the order stays. At exit,
``logging.shutdown()`` flushes what is kept; a process killed outright loses at most
``interval`` seconds of access lines.

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
>>> h.flush(); out.getvalue().splitlines()[-1]
'GET /id'
"""

from __future__ import annotations

import logging
import threading
import time

ACCESS = "namkg.access"


class BatchedStream(logging.StreamHandler):
    """A ``StreamHandler`` that keeps the lines of the loggers in ``batched`` and writes them
    every ``interval`` seconds, or once ``most`` are kept; other lines go out at once."""

    def __init__(self, stream=None, *, batched: tuple[str, ...] = (ACCESS,),
                 interval: float = 0.2, most: int = 256):
        super().__init__(stream)
        self.batched, self.most, self.interval = frozenset(batched), most, interval
        self.pending: list[str] = []
        threading.Thread(target=self._tick, daemon=True, name="namkg-log-batch").start()

    def emit(self, record: logging.LogRecord) -> None:  # called holding self.lock
        try:
            self.pending.append(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 - as logging does: report, never raise
            self.handleError(record)
            return
        if record.name not in self.batched or len(self.pending) >= self.most:
            self._write()

    def flush(self) -> None:
        with self.lock:
            self._write()

    def _write(self) -> None:
        if not self.pending:
            return
        text = "".join(self.pending)
        self.pending.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nowhere left to say it
            pass

    def _tick(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()
