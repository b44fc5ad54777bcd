"""Run the app under granian: one HTTP worker process (its Rust HTTP/1.1 server with a pool of
Python threads), supervised by the ``namkg serve`` process; queries go to the executor's workers.

Why granian, not gunicorn: on this 2-core machine, an app that returns a constant answers
2,625 requests/s under gunicorn's threaded worker and 41,746 under granian (wrk, 8 keep-alive
connections on loopback), so under gunicorn no app could come near in-process speed; granian's
HTTP layer is Rust and leaves the CPU to the app (figures with queries: docs/benchmarks.md).

What granian 2.8 leaves to us (read from its source), and what we do about it:

- It reads a request body in the Python thread that runs the app, blocking, with no timeout:
  16 clients trickling bodies held all 16 threads. :class:`~namkg.web.gate.BodyGate` reads
  each body on a thread of its own before the app runs; one not complete in
  ``client_timeout`` gets a 408 and its connection is closed, which also ends the read.
- Its only client timeout is hyper's header read timeout, which also bounds the idle time
  between keep-alive requests: ``client_timeout``. Its connection cap ("backpressure",
  1,024 by default) is ``max_connections``. :func:`listen` sets, on the listening socket (every
  accepted socket inherits them), TCP_DEFER_ACCEPT (a connection that sends nothing is not
  handed to granian at all for ``client_timeout``) and TCP_USER_TIMEOUT (the kernel drops a
  client that has taken nothing for 30 s: the write timeout granian lacks).
- On Linux each worker binds its own SO_REUSEPORT socket, so a second server on the same port
  started and silently shared it. :func:`listen` binds one socket without SO_REUSEPORT, first.
- Its signal handlers set a ``threading.Event`` in the main thread, which may hold that
  Event's lock at that moment (a deadlock, seen once); ours only write to a pipe.
- Request lines over 65,534 bytes are refused by hyper itself (a bare 414) before any app
  sees them; nothing in granian changes that limit or that answer.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import multiprocessing
import os
import resource
import select
import signal
import socket
import struct
import threading
import time
from functools import partial

from granian._futures import _new_cbscheduler
from granian._granian import SocketHolder, WorkerSignal, WSGIWorker
from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.common import WORKERS_METHODS, TaskImpl
from granian.server.mp import MPServer, WorkerProcess
from granian.wsgi import _callback_wrapper

from ..config import Config
from .app import create_app
from .gate import READERS_PER_THREAD, BodyGate

log = logging.getLogger("namkg.web.serve")

BACKLOG = 4096  # pending connections; the kernel caps it at net.core.somaxconn
WRITE_TIMEOUT_MS = 30_000  # a client that has taken none of our bytes for this long is dropped
STOP_GRACE = 3.0  # seconds the HTTP worker lets open requests finish when told to stop
FD_RESERVE = 256  # descriptors kept for the store, pipes and query workers
# struct tcp_info (linux/tcp.h): tcpi_state, tcpi_last_data_recv (ms), tcpi_bytes_received
_TCP_INFO = struct.Struct("=B51xI72xQ")
_ESTABLISHED = 1

_APP = None  # the worker's app, so that the worker can stop its query workers on the way out
_CONFIG: Config | None = None
_MAIN_PID: int | None = None  # the `namkg serve` process: the HTTP worker dies with it


def listen(config: Config) -> socket.socket:
    """The listening socket, bound now: a port in use is an OSError here, before anything
    starts (granian's SO_REUSEPORT socket would have shared the port with its holder)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Lets a restart bind over connections in TIME_WAIT; a listening socket still refuses.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by each accepted socket (see the module's notes).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, math.ceil(config.client_timeout)
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, WRITE_TIMEOUT_MS)
        sock.bind((config.host, config.port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {config.host}:{config.port}: {exc.strerror}"
        ) from None
    return sock


def connection_cap(config: Config) -> int:
    """``config.max_connections``, lowered to fit the descriptor limit (first raised to its
    hard maximum: each connection is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):  # e.g. above fs.nr_open: keep the soft limit
            pass
    cap = min(config.max_connections, max(64, soft - FD_RESERVE))
    if cap < config.max_connections:
        log.warning("NAMKG_MAX_CONNECTIONS lowered to %d to fit ulimit -n %d", cap, soft)
    return cap


class _Server(MPServer):
    """granian's supervisor of the HTTP worker, on our listening socket, with signal handlers
    that take no lock."""

    def __init__(self, listener: socket.socket, **kwargs):
        super().__init__(**kwargs)
        self.listener = listener
        self._wake_r, self._wake_w = os.pipe()

    def _init_shared_socket(self):
        # What granian does where it has no SO_REUSEPORT: workers inherit the main socket.
        self.listener.set_inheritable(True)
        self._ssp, self._sfd = None, self.listener.fileno()
        self._shd = SocketHolder(self._sfd, False, BACKLOG)
        self._sso = self.listener  # closed by granian's shutdown

    def startup(self, spawn_target, target_loader):
        threading.Thread(target=self._relay, daemon=True, name="namkg-signals").start()
        super().startup(spawn_target, target_loader)

    def _relay(self) -> None:
        """Wakes granian's main loop on behalf of the signal handlers, from another thread."""
        while os.read(self._wake_r, 1):
            self.main_loop_interrupt.set()

    def signal_handler_interrupt(self, *args, **kwargs):
        self.interrupt_signal = True
        os.write(self._wake_w, b".")

    def signal_handler_reload(self, *args, **kwargs):
        self.reload_signal = True
        os.write(self._wake_w, b".")


def _load(config: Config, make_app):
    global _APP, _CONFIG
    # Per access-log line, the caller's file and line, thread and process names cost ~15% of
    # a cached answer's time; the lines are JSON that carries none of them (see logging's
    # "Optimization" notes).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if make_app is None:
        make_app = create_app
    _CONFIG = config
    _APP = make_app(config)
    # What start-up made (modules, the app, its routes and templates: ~80,000 objects) lives as
    # long as the process: kept out of the cyclic collector's passes, which hold the GIL for
    # every thread and took up to ~100 ms under load (p99 of distinct queries 30-80 ms, 11-14
    # ms with this).
    gc.collect()
    gc.freeze()
    return _APP


def _watch_parent(wake) -> None:
    """Call ``wake`` when the `namkg serve` process ends, even by SIGKILL (no signal then)."""
    try:
        pidfd = os.pidfd_open(_MAIN_PID)
    except ProcessLookupError:
        wake()
        return
    except OSError as exc:  # a kernel without pidfd (before 5.3)
        log.warning("the HTTP worker will not notice the server's death: %s", exc)
        return

    def watch():
        select.select([pidfd], [], [])
        wake()

    threading.Thread(target=watch, daemon=True, name="namkg-parent").start()


def _close_silent(listener_fd: int, timeout: float) -> None:
    """Every ``timeout / 2`` s (0.5 s at least), shut down each client connection that has
    sent nothing at all for ``timeout`` s since it was accepted: hyper's header timeout
    starts only with a first byte, so a silent connection held one of granian's connection
    slots forever (1,024 of them locked everyone out). The kernel's own figures decide
    (TCP_INFO of the socket itself, so a descriptor reused meanwhile is judged as what it
    now is)."""
    with socket.socket(fileno=os.dup(listener_fd)) as listener:
        port = listener.getsockname()[1]
    limit_ms = int(timeout * 1000)
    while True:
        time.sleep(max(timeout / 2, 0.5))
        for name in os.listdir("/proc/self/fd"):
            try:
                if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                    continue
                conn = socket.socket(fileno=os.dup(int(name)))
            except OSError:  # closed meanwhile
                continue
            with conn:
                try:
                    if (
                        conn.family not in (socket.AF_INET, socket.AF_INET6)
                        or conn.type != socket.SOCK_STREAM
                        or conn.getsockname()[1] != port
                    ):
                        continue
                    info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO.size)
                except OSError:
                    continue
                if len(info) < _TCP_INFO.size:  # a kernel before 4.1: no byte counts
                    log.warning("silent connections are not closed on this kernel")
                    return
                state, last_data_recv, bytes_received = _TCP_INFO.unpack(info)
                if state == _ESTABLISHED and bytes_received == 0 and last_data_recv >= limit_ms:
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)  # hyper sees the end and lets it go


@WorkerProcess.wrap_target
def _serve(
    worker_id,
    callback,
    sock,
    ipc,
    loop,
    runtime_mode,
    runtime_threads,
    runtime_blocking_threads,
    blocking_threads,
    blocking_threads_idle_timeout,
    backpressure,
    task_impl,
    http_mode,
    http1_settings,
    http2_settings,
    websockets,
    static_path,
    log_access_fmt,
    ssl_ctx,
    scope_opts,
    metrics,
) -> None:
    """granian's WSGI worker (its ``_spawn_wsgi_worker``, same arguments), with the app behind
    a :class:`BodyGate`, and stopped by a signal or by the death of the `namkg serve` process
    without taking a lock in a signal handler; open requests get ``STOP_GRACE`` seconds."""
    wake_r, wake_w = os.pipe()

    def wake(*_):
        os.write(wake_w, b".")

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, wake)
    _watch_parent(wake)
    threading.Thread(
        target=_close_silent,
        args=(sock[1].get_fd(), _CONFIG.client_timeout),
        daemon=True,
        name="namkg-silent",
    ).start()
    stop, stopped = WorkerSignal(), threading.Event()
    stop.add_cb(stopped.set)  # called by granian once its connections are done
    config = _CONFIG
    gate = BodyGate(
        _callback_wrapper(callback, scope_opts, log_access_fmt),
        timeout=config.client_timeout,
        max_body=config.max_body,
        readers=READERS_PER_THREAD * config.http_threads,
        slots=config.http_threads,
    )
    worker = WSGIWorker(
        worker_id,
        sock,
        ipc,
        runtime_threads,
        runtime_blocking_threads,
        blocking_threads,
        blocking_threads_idle_timeout,
        backpressure,
        http_mode,
        http1_settings,
        http2_settings,
        static_path,
        *ssl_ctx,
        metrics,
    )
    serve = getattr(worker, WORKERS_METHODS[runtime_mode][False])
    serve(_new_cbscheduler(loop, gate, impl_asyncio=task_impl == TaskImpl.asyncio), loop, stop)
    os.read(wake_r, 1)
    stop.set()
    stopped.wait(STOP_GRACE)


def _worker(*args, **kwargs) -> None:
    """The HTTP worker; then stop the query workers and leave without interpreter
    finalization: tearing down pyoxigraph's RocksDB handles there crashed with SIGSEGV."""
    try:
        _serve(*args, **kwargs)
    finally:
        ext = getattr(_APP, "extensions", {}).get("namkg") if _APP is not None else None
        if ext is not None:
            ext["executor"].close()
        logging.shutdown()
        os._exit(0)


def server(config: Config, listener: socket.socket) -> MPServer:
    """The granian server for ``config`` on ``listener`` (not started)."""
    return _Server(
        listener,
        target="namkg",  # a name only: the app comes from _load
        address=config.host,
        port=listener.getsockname()[1],
        interface=Interfaces.WSGI,
        workers=1,  # one process; the query executor owns the parallel workers
        # More threads than granian's rule of thumb (it warns above 2 x cores + 1): most of
        # them wait on a query worker's pipe, and a runaway holds one until its deadline.
        blocking_threads=(1 + READERS_PER_THREAD) * config.http_threads,  # see BodyGate
        websockets=False,
        backlog=BACKLOG,
        backpressure=connection_cap(config),
        http1_settings=HTTP1Settings(
            header_read_timeout=int(config.client_timeout * 1000),
            keep_alive=True,
            # hyper refuses a request line over 65,534 bytes with a bare 414, but only once it
            # holds the whole line: with less room than this it says 431 instead.
            max_buffer_size=2 * config.max_body + 64 * 1024,
        ),
        log_level=LogLevels.info,
        log_access=False,  # the app logs one structured line per request itself
        respawn_failed_workers=True,  # a crashed HTTP worker is replaced
        workers_kill_timeout=int(STOP_GRACE) + 2,
    )


def _not_thread_advice(record: logging.LogRecord) -> bool:
    """granian's advice against many threads (see :func:`server`): expected here, not logged."""
    return "Python threads" not in record.getMessage()


def run(config: Config, make_app=None, listener: socket.socket | None = None) -> None:
    """Serve ``make_app(config)`` (default: :func:`namkg.web.app.create_app`) under granian, on
    ``listener`` (default: :func:`listen`)."""
    global _MAIN_PID
    if multiprocessing.get_start_method() != "fork":  # the worker inherits the socket, globals
        raise RuntimeError("namkg serve needs multiprocessing's 'fork' start method")
    _MAIN_PID = os.getpid()
    if listener is None:
        listener = listen(config)
    logging.getLogger("_granian").addFilter(_not_thread_advice)  # kept by granian's dictConfig
    server(config, listener).serve(
        spawn_target=_worker, target_loader=partial(_load, config, make_app), wrap_loader=False
    )
