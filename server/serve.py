"""Run the app under granian: one HTTP worker process (its Rust HTTP/1.1 server with a pool of
Python threads), supervised by the ``namkg serve`` process; queries go to the executor's workers.

Why granian, not gunicorn: on this 2-core machine, an app that returns a constant answers
2,625 requests/s under gunicorn's threaded worker and 41,746 under granian (wrk, 8 keep-alive
connections on loopback), so under gunicorn no app could come near in-process speed; granian's
HTTP layer is Rust and leaves the CPU to the app (figures with queries: docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import os
from functools import partial

from granian.constants import Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.mp import MPServer

from .config import Config

_APP = None  # the worker's app, so that the worker can stop its query workers on the way out


def _load(config: Config, make_app):
    global _APP
    # Per access-log line, the caller's file and line, thread and process names cost ~15% of
    # a cached answer's time; the lines are JSON that carries none of them (see logging's
    # "Optimization" notes).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if make_app is None:
        from .app import create_app as make_app
    _APP = make_app(config)
    return _APP


def _worker(*args, **kwargs) -> None:
    """granian's WSGI worker; then stop the query workers and leave without interpreter
    finalization: tearing down pyoxigraph's RocksDB handles there crashed with SIGSEGV."""
    try:
        MPServer._spawn_wsgi_worker(*args, **kwargs)
    finally:
        ext = getattr(_APP, "extensions", {}).get("namkg") if _APP is not None else None
        if ext is not None:
            ext["executor"].close()
        logging.shutdown()
        os._exit(0)


def server(config: Config) -> MPServer:
    """The granian server for ``config`` (not started)."""
    return MPServer(
        "namkg",  # a name only: the app comes from _load
        address=config.host,
        port=config.port,
        interface=Interfaces.WSGI,
        workers=1,  # one process; the query executor owns the parallel workers
        # More threads than granian's rule of thumb (it warns above 2 x cores + 1): most of
        # them wait on a query worker's pipe, and a runaway holds one until its deadline.
        blocking_threads=config.http_threads,
        websockets=False,
        # Room for a request line twice the body limit, so that the app itself refuses a longer
        # query string with a 414 that says why (granian's own refusal is a bare 431).
        http1_settings=HTTP1Settings(header_read_timeout=30_000, keep_alive=True,
                                     max_buffer_size=2 * config.max_body + 64 * 1024),
        log_level=LogLevels.info,
        log_access=False,  # the app logs one structured line per request itself
        respawn_failed_workers=True,  # a crashed HTTP worker is replaced
        workers_kill_timeout=10,
    )


def _not_thread_advice(record: logging.LogRecord) -> bool:
    """granian's advice against many threads (see :func:`server`): expected here, not logged."""
    return "Python threads" not in record.getMessage()


def run(config: Config, make_app=None) -> None:
    """Serve ``make_app(config)`` (default: :func:`server.app.create_app`) under granian."""
    logging.getLogger("_granian").addFilter(_not_thread_advice)  # kept by granian's dictConfig
    server(config).serve(spawn_target=_worker, target_loader=partial(_load, config, make_app),
                         wrap_loader=False)
