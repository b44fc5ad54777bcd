"""The Flask application factory: the owners of the views, the route table mounted on them
(:mod:`namkg.web.routes`), the one middleware chain around it (:mod:`namkg.web.chain`), the
error pages, the proxy mode, and the served build.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from pathlib import Path

import pyoxigraph as ox
from flask import Flask
from werkzeug.exceptions import SecurityError

from ..config import Config
from ..iris import Iris
from ..kg.layout import current_path, open_counted
from ..query.backend import Backend, QueryError
from ..query.executor import Executor
from ..query.remote import RemoteExecutor
from . import discovery
from .cache import ResponseCache
from .chain import Chain
from .discovery import configure_host_handling
from .endpoint import SparqlViews
from .logbatch import BatchedStream
from .metrics import Metrics
from .ops import Operations
from .pages import Pages, error_response, query_error_response
from .routes import mount

RELOAD_EVERY = 2.0  # seconds between checks for a newly built store


def create_app(config: Config | None = None, *, executor: Backend | None = None) -> Flask:
    """Build the WSGI app over the store in ``config.store`` (built beforehand).

    ``executor`` replaces the one made from ``config`` (the worker pool, or ``--backend``):
    any :class:`namkg.query.backend.Backend`; ``bench/`` passes one without deadlines to
    price them.
    """
    config = config or Config.from_env()
    iris = Iris(config.base_iri)
    state = _StoreState(config)
    writable = config.update_token is not None
    if executor is None:
        executor = _executor(config, state.path, writable)
    atexit.register(executor.close)
    state.executor = executor
    metrics = Metrics()
    owners = {
        "sparql": SparqlViews(executor, config, iris,
                              update_executor=executor if writable else None),
        "pages": Pages(executor, config, iris, load_examples(config.root)),
        "discovery": discovery,  # VoID, dumps, robots.txt, sitemap
        "ops": Operations(config, state, executor, metrics),
    }
    # Updates and a remote backend change the data behind the cache's back: no cache then.
    cache = (ResponseCache(config.response_cache_mb * 2**20)
             if config.response_cache_mb > 0 and not writable and not config.backend else None)
    app = make_app(owners, config, metrics=metrics, state=state, cache=cache)
    app.extensions["namkg"] = {"config": config, "executor": executor, "metrics": metrics,
                               "state": state, "iris": iris}
    if not logging.getLogger().handlers:  # the access log's lines written in batches
        logging.basicConfig(level=logging.INFO, handlers=[BatchedStream(sys.stderr)])
    sandbox = executor.sandbox  # what the kernel refuses the query workers
    if sandbox:
        (app.logger.warning if sandbox.startswith("UNSANDBOXED") else app.logger.info)(
            "query workers sandboxed: %s", sandbox)
    configure_host_handling(app)  # NAMKG_TRUST_PROXY: ProxyFix outermost
    return app


def make_app(owners: dict[str, object], config: Config, *, metrics: Metrics | None = None,
             state=None, cache: ResponseCache | None = None) -> Flask:
    """A Flask app with the routes of ``owners`` (see :func:`namkg.web.routes.mount`), its
    error pages and the chain. :func:`create_app` gives it every owner; a test may give some
    (and no ``state``: then nothing is cached and no build is reloaded)."""
    app = Flask(__name__, static_folder=None)  # templates/ beside this module
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    plain = mount(app, owners)

    # Pages for browsers, text for other clients (pages.error_response decides).
    @app.errorhandler(413)
    def _too_large(_):
        return error_response(413, "Request too large",
                              f"request body over the limit of {config.max_body} bytes")

    @app.errorhandler(404)
    def _not_found(_):
        return error_response(404, "Not found", "not found")

    @app.errorhandler(405)
    def _bad_method(exc):
        allow = {k: v for k, v in exc.get_headers() if k == "Allow"}
        return error_response(405, "Method not allowed", "method not allowed", allow)

    @app.errorhandler(SecurityError)  # a Host outside NAMKG_TRUSTED_HOSTS: not echoed
    def _untrusted_host(_):
        return error_response(400, "Bad request", "this server does not answer for that host")

    @app.errorhandler(QueryError)  # a page's query timed out or found no free worker
    def _query_failed(exc):
        return query_error_response(exc)

    @app.errorhandler(500)
    def _failed(_):
        return error_response(500, "Server error", "the server failed to answer; it is logged")

    app.wsgi_app = Chain(app, plain, metrics=metrics or Metrics(), state=state,
                         rate_limit=config.rate_limit, cache=cache)
    return app


def _executor(config: Config, path: Path, writable: bool) -> Backend:
    """The embedded store's worker pool, or a remote SPARQL store with the same interface."""
    if config.backend:
        password = os.environ.get("NAMKG_BACKEND_PASSWORD")
        auth = (config.backend_user, password) if config.backend_user and password else None
        return RemoteExecutor.from_config(config, config.backend, auth=auth)
    return Executor(path, workers=1 if writable else config.query_workers,
                    timeout=config.query_timeout, result_limit=config.result_limit,
                    result_bytes=config.result_bytes, memory_mb=config.worker_memory_mb,
                    writable=writable, allowlist=config.service_allowlist)


def load_examples(root: Path) -> list[dict]:
    """The competency queries offered in the UI: name from the first comment line of each."""
    examples = []
    for path in sorted((root / "queries").glob("*.rq")):
        text = path.read_text(encoding="utf-8")
        first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")),
                     path.stem)
        examples.append({"name": first or path.stem, "file": path.name, "query": text})
    return examples


class _StoreState:
    """The served build: a read-only handle for health and dumps, reloaded after a new build."""

    def __init__(self, config: Config):
        self.config = config
        self.path = current_path(config.store)
        self._store, self.triples = open_counted(config.store)
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self.executor: Executor | None = None

    def store(self) -> ox.Store:
        return self._store

    def built_at(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.path.stat().st_mtime))

    def maybe_reload(self) -> None:
        if time.monotonic() - self._checked < RELOAD_EVERY or self.config.update_token:
            return
        with self._lock:
            self._checked = time.monotonic()
            try:
                new = current_path(self.config.store)
            except FileNotFoundError:
                return  # keep serving what we have
            if new != self.path:
                self._store, self.triples = open_counted(self.config.store)
                self.path = new
                if self.executor is not None:
                    self.executor.reload(new)

    def dump_file(self, name: str, fmt: ox.RdfFormat) -> Path:
        out = Path(self.config.store) / "dumps" / self.path.name / name
        with self._lock:
            if not out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(out.suffix + ".tmp")
                if fmt.supports_datasets:
                    self._store.dump(str(tmp), format=fmt)
                else:
                    triples = (ox.Triple(q.subject, q.predicate, q.object)
                               for q in self._store.quads_for_pattern(None, None, None, None))
                    ox.serialize(triples, str(tmp), format=fmt)
                tmp.replace(out)
        return out
