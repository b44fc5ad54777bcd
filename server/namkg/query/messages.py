"""The messages between the executor and its worker processes, and how they travel.

Each is a small frozen dataclass. The executor sends a job (:class:`QueryJob`,
:class:`UpdateJob`); a new worker says :class:`Ready` (or :class:`CannotStart`), then answers
each job with :class:`Replied`: the outcome and the CPU time the worker has used, which the
executor's scheduling is based on. An outcome never is an exception: :func:`unwrap` raises a
failed one as its :class:`~namkg.query.backend.QueryError` in the executor's process.

On the pipe (:func:`send`, :func:`receive`) a message travels as its kind's number and its
field values, pickled, after its length: one ``write`` and, for all but large answers, one
``read`` (``Connection.recv_bytes`` reads the length and the rest apart). In the HTTP process
each such call lets go of the GIL and must win it back from the request threads: under load
each one more cost about 40 us of that process's time per query.

Pickled as itself, a dataclass is named by its module, which pickle imports at both ends, and
built through ``dataclasses.fields()``: a query's job and reply took ~6 us more than as
tuples, ~2 us more this way. Not ``Connection.send`` either: its pickler (multiprocessing's,
for sockets and pipes) costs ~1.5 us a message more than :func:`pickle.dumps`, and ours carry
plain values only.

>>> import multiprocessing
>>> ours, theirs = multiprocessing.Pipe()
>>> send(ours, Replied(Answer("boolean", "text/csv", b"true", None, False), 0.25))
>>> got = receive(theirs)
>>> got.cpu, unwrap(got.outcome).result("b1").body
(0.25, b'true')
>>> for message in (UpdateJob("x"), UpdateJob("y", True), Done(), CannotStart("why"),
...                 Ready(7, 0.5, "landlock"),
...                 query_job("ASK {}", "text/csv", None, ["http://g"], None, None, 10),
...                 query_job("ASK {}", "text/csv", None, None, None, None, 10, 0, True, "ar"),
...                 Replied(Failure(500, "x"), 1.0), Replied(SyntaxFault("y"), 1.5),
...                 Replied(NoFormat("graph"), 2.0), Replied(Done(), 2.5)):
...     send(ours, message)
...     assert receive(theirs) == message, message
>>> set_receive_timeout(theirs, 0.01); receive(theirs) is None  # nothing came within it
True
>>> send(ours, Done()); receive(theirs)
Done()
>>> unwrap(Failure(400, "query evaluation failed: x"))
Traceback (most recent call last):
...
namkg.query.backend.QueryError: query evaluation failed: x
"""

from __future__ import annotations

import os
import pickle
import select
import socket
import struct
from dataclasses import dataclass, fields
from operator import attrgetter

from .backend import NotAcceptable, QueryError, QuerySyntaxError, Result

__all__ = [
    "Answer", "CannotStart", "Done", "Failure", "NoFormat", "Outcome", "QueryJob", "Ready",
    "Replied", "SyntaxFault", "UpdateJob", "query_job", "receive", "send", "set_receive_timeout",
    "unwrap",
]


# --- executor -> worker -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryJob:
    sparql: str
    solutions_format: str | None  # a media type; None: no format for solutions is acceptable
    graph_format: str | None  # the same for triples
    default_graphs: tuple[str, ...] | None  # the request's dataset; None: the union graph
    named_graphs: tuple[str, ...] | None
    base_iri: str | None
    limit: int  # rows or triples kept
    max_bytes: int = 0  # size of the answer kept (0: no cap)
    client: bool = False  # a client's text: dialect made plain and guarded first (prepare)
    uselang: str | None = None  # the label service's [AUTO_LANGUAGE], for a client's text


@dataclass(frozen=True, slots=True)
class UpdateJob:
    sparql: str
    client: bool = False  # a client's text: guarded first (prepare)


def query_job(sparql: str, solutions_format: str | None, graph_format: str | None,
              default_graphs, named_graphs, base_iri: str | None, limit: int,
              max_bytes: int = 0, client: bool = False, uselang: str | None = None) -> QueryJob:
    """The job for a query, the request's graph lists frozen."""
    return QueryJob(sparql, solutions_format, graph_format,
                    None if default_graphs is None else tuple(default_graphs),
                    None if named_graphs is None else tuple(named_graphs), base_iri, limit,
                    max_bytes, client, uselang)


# --- worker -> executor -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker opened the store and is confined (``sandbox`` says how) and waiting."""

    pid: int
    cpu: float  # CPU seconds used so far
    sandbox: str


@dataclass(frozen=True, slots=True)
class CannotStart:
    reason: str  # why the store could not be opened, e.g. under the memory cap


@dataclass(frozen=True, slots=True)
class Answer:
    """A query's results, serialized."""

    kind: str  # "boolean" | "solutions" | "graph"
    media_type: str
    body: bytes
    count: int | None  # rows or triples; None for a boolean
    truncated: bool

    def result(self, build: str | None) -> Result:
        return Result(self.kind, self.media_type, self.body, self.count, self.truncated, build)


@dataclass(frozen=True, slots=True)
class Done:
    """An update applied."""


@dataclass(frozen=True, slots=True)
class SyntaxFault:
    message: str  # the parser's

    def error(self) -> QueryError:
        return QuerySyntaxError(self.message)


@dataclass(frozen=True, slots=True)
class NoFormat:
    form: str  # the result's kind, for which the job named no format

    def error(self) -> QueryError:
        return NotAcceptable(f"no acceptable format for a {self.form} result")


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    message: str

    def error(self) -> QueryError:
        return QueryError(self.message, self.status)


Outcome = Answer | Done | SyntaxFault | NoFormat | Failure


@dataclass(frozen=True, slots=True)
class Replied:
    outcome: Outcome
    cpu: float  # the worker's CPU seconds once it had answered


def unwrap(outcome: Outcome) -> Answer | Done:
    """A successful outcome as it is; a failed one raised as its :class:`QueryError`."""
    if isinstance(outcome, (Answer, Done)):
        return outcome
    raise outcome.error()


# --- the pipe -----------------------------------------------------------------------------

_KINDS = (QueryJob, UpdateJob, Ready, CannotStart, Answer, Done, SyntaxFault, NoFormat, Failure)
_NUMBER = {kind: n for n, kind in enumerate(_KINDS)}
_REPLIED = len(_KINDS)  # Replied holds a message: sent as (_REPLIED, cpu, its outcome's)


def _values_of(kind):
    names = [f.name for f in fields(kind)]
    return attrgetter(*names) if len(names) > 1 else lambda m: tuple(
        getattr(m, n) for n in names)


_VALUES = [_values_of(kind) for kind in _KINDS]


_LENGTH = struct.Struct("!Q")  # bytes of pickle that follow
READ_AT_ONCE = 1 << 16  # bytes asked of the first read: a whole message, mostly


def send(conn, message) -> None:
    """Send one message down a pipe (an end of ``multiprocessing.Pipe``): its length and its
    pickle, in one write where the pipe takes it."""
    data = pickle.dumps(_flat(message), pickle.HIGHEST_PROTOCOL)
    view, fd = memoryview(_LENGTH.pack(len(data)) + data), conn.fileno()
    while view:
        view = view[os.write(fd, view):]


def receive(conn):
    """The next message from a pipe; EOFError once the other end closed it (also within a
    message: a worker killed while writing). On a pipe with a receive timeout
    (:func:`set_receive_timeout`), None when nothing came within it."""
    fd = conn.fileno()
    try:
        head = _read_some(fd, READ_AT_ONCE)
    except BlockingIOError:  # the timeout passed: nothing read, nothing lost
        return None
    while len(head) < _LENGTH.size:
        head += _read_rest(fd, READ_AT_ONCE)
    end = _LENGTH.size + _LENGTH.unpack_from(head)[0]
    parts, got = [head], len(head)
    while got < end:
        parts.append(_read_rest(fd, min(end - got, 1 << 20)))
        got += len(parts[-1])
    if got > end:  # one message at a time is ever in the pipe
        raise OSError("the pipe holds more than one message")
    data = b"".join(parts) if len(parts) > 1 else head
    return _unflat(pickle.loads(memoryview(data)[_LENGTH.size:]))


def set_receive_timeout(conn, seconds: float) -> None:
    """Make a read on ``conn`` that waits longer than ``seconds`` for a first byte give up
    (the kernel's ``SO_RCVTIMEO``): one blocking read then waits for a quick reply, where a
    poll and a read took two calls."""
    whole, part = divmod(round(seconds * 1_000_000), 1_000_000)
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # a dup
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, part))


def _read_some(fd: int, most: int) -> bytes:
    data = os.read(fd, most)
    if not data:
        raise EOFError
    return data


def _read_rest(fd: int, most: int) -> bytes:
    """More of a message begun: waited for past any receive timeout (its writer is at it)."""
    while True:
        try:
            return _read_some(fd, most)
        except BlockingIOError:
            select.select([fd], [], [])


def _flat(message) -> tuple:
    if type(message) is Replied:
        return (_REPLIED, message.cpu, _flat(message.outcome))
    n = _NUMBER[type(message)]
    return (n, _VALUES[n](message))


def _unflat(flat: tuple):
    if flat[0] == _REPLIED:
        return Replied(_unflat(flat[2]), flat[1])
    return _KINDS[flat[0]](*flat[1])
