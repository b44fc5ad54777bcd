"""Run the app under gunicorn (threads in one process; queries go to the executor's workers)."""

from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

from .config import Config


class _Gunicorn(BaseApplication):
    def __init__(self, config: Config, make_app=None):
        self.config_, self.make_app = config, make_app
        super().__init__()

    def load_config(self) -> None:
        c = self.config_
        for key, value in {
            "bind": f"[{c.host}]:{c.port}" if ":" in c.host else f"{c.host}:{c.port}",
            "workers": 1,  # one process; the query executor owns the parallel workers
            "worker_class": "gthread",
            "threads": c.http_threads,
            "timeout": int(c.query_timeout * 4) + 30,
            "graceful_timeout": 5,
            "accesslog": None,  # the app logs one structured line per request itself
            "errorlog": "-",
            "loglevel": "info",
            "limit_request_line": 16384,
            "worker_exit": _worker_exit,
            "control_socket_disable": True,  # gunicorn 27 shares one socket path otherwise
        }.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app

        return (self.make_app or create_app)(self.config_)


def _worker_exit(server, worker) -> None:
    """Stop the query workers, then leave without interpreter finalization: tearing down
    pyoxigraph's RocksDB handles there crashed the worker with SIGSEGV on every SIGTERM."""
    import os

    app = getattr(worker, "wsgi", None)
    ext = getattr(app, "extensions", {}).get("namkg") if app is not None else None
    if ext is not None:
        ext["executor"].close()
    logging.shutdown()
    os._exit(0)


def run(config: Config, make_app=None) -> None:
    """Serve ``make_app(config)`` (default: :func:`server.app.create_app`) under gunicorn."""
    _Gunicorn(config, make_app).run()
