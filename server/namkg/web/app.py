"""The Flask application factory and its explicit route list.

SPARQL protocol routes come from :mod:`namkg.web.endpoint`, entity/ontology pages and the UI
from :mod:`namkg.web.pages`, VoID, dumps, robots.txt and the sitemap from
:mod:`namkg.web.discovery`; this module wires them to one query executor and
adds what every route shares: CORS, gzip, a
structured access log, Prometheus metrics, an optional rate limit (the steps live in
:mod:`namkg.web.edge`, whose fast path answers /sparql queries ahead of Flask), error pages, the
proxy mode, and health.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import threading
import time
from pathlib import Path

import pyoxigraph as ox
from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import SecurityError

from ..config import Config
from ..iris import Iris
from ..kg.layout import current_path, open_counted
from ..query.executor import Backend, Executor
from ..query.remote import RemoteExecutor
from .cache import ResponseCache
from .discovery import configure_host_handling, make_discovery_blueprint
from .edge import CORS, Edge, FastQueries, compressible, gzipped
from .endpoint import make_blueprint, make_query_handler, to_response
from .metrics import Metrics
from .pages import error_response, make_pages_blueprint

RELOAD_EVERY = 2.0  # seconds between checks for a newly built store


def create_app(config: Config | None = None, *, executor: Backend | None = None) -> Flask:
    """Build the WSGI app over the store in ``config.store`` (built beforehand).

    ``executor`` replaces the one made from ``config`` (the worker pool, or ``--backend``):
    any :class:`namkg.query.executor.Backend`; ``bench/`` passes one without deadlines to price
    them.

    Query requests on /sparql are answered by :class:`namkg.web.edge.FastQueries` in front of
    Flask (``app.wsgi_app``); the Flask route answers them the same way when called directly.
    """

    config = config or Config.from_env()
    iris = Iris(config.base_iri)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body
    state = _StoreState(config)
    writable = config.update_token is not None
    if executor is None:
        executor = _executor(config, state.path, writable)
    atexit.register(executor.close)
    state.executor = executor
    metrics = Metrics()
    app.extensions["namkg"] = {"config": config, "executor": executor, "metrics": metrics,
                               "state": state, "iris": iris}

    # One query handler (and its memory of texts already checked) for both paths to /sparql.
    answer_query = make_query_handler(executor, config, iris)
    app.register_blueprint(make_blueprint(executor, config, iris,
                                          update_executor=executor if writable else None,
                                          answer_query=answer_query))
    app.register_blueprint(make_pages_blueprint(executor, config, iris,
                                                examples=load_examples(config.root)))
    app.register_blueprint(make_discovery_blueprint())  # VoID, dumps, robots.txt, sitemap
    for rule, endpoint, view in ROUTES:
        app.add_url_rule(rule, endpoint, view)

    edge = Edge(state, metrics, config.rate_limit)

    @app.before_request
    def _before():
        g.started = time.perf_counter()
        refusal = edge.admit(request.method, request.path, request.remote_addr)
        if request.method == "OPTIONS":
            return _cors(Response(status=204))
        return None if refusal is None else to_response(refusal)

    @app.after_request
    def _after(response: Response) -> Response:
        _cors(response)
        _gzip(response)
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        edge.done(rule, request.method, request.path, request.remote_addr,
                  response.status_code, elapsed, response.calculate_content_length(),
                  g.get("sparql_text"))  # set by the endpoint once it has parsed the request
        return response

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

    @app.errorhandler(500)
    def _failed(_):
        return error_response(500, "Server error", "the server failed to answer; it is logged")

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    sandbox = executor.sandbox  # what the kernel refuses the query workers
    if sandbox:
        (app.logger.warning if sandbox.startswith("UNSANDBOXED") else app.logger.info)(
            "query workers sandboxed: %s", sandbox)
    # Updates and a remote backend change the data behind the cache's back: no cache then.
    cache = (ResponseCache(config.response_cache_mb * 2**20)
             if config.response_cache_mb > 0 and not writable and not config.backend else None)
    app.wsgi_app = FastQueries(app.wsgi_app, answer_query, edge, max_body=config.max_body,
                               logger=app.logger, cache=cache)
    configure_host_handling(app)  # NAMKG_TRUST_PROXY: ProxyFix outermost
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


# --------------------------------------------------------------------------- dataset routes

def healthz():
    """Liveness and readiness: the store opens and the workers are alive."""
    ext = _ext()
    triples = ext["state"].triples
    stats = ext["executor"].stats()
    ready = stats.get("workers", 0) > 0
    public = {k: v for k, v in stats.items() if k != "pids"}
    body = {"status": "ok" if ready else "starting", "build": ext["state"].path.name,
            "triples": triples, "executor": public}
    token = ext["config"].admin_token
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        body.update(store=str(ext["state"].path), executor=stats,
                    sandbox=ext["executor"].sandbox)
    return body, 200 if ready else 503


def metrics_view():
    ext = _ext()
    text = ext["metrics"].render(ext["executor"].stats())
    return Response(text, mimetype="text/plain; version=0.0.4")


ROUTES = [  # rule, endpoint, view: the routes this module owns (others: endpoint.py, pages.py,
    # discovery.py)
    ("/healthz", "healthz", healthz),
    ("/metrics", "metrics", metrics_view),
]


# --------------------------------------------------------------------------- helpers

def _ext() -> dict:

    return current_app.extensions["namkg"]


def load_examples(root: Path) -> list[dict]:
    """The competency queries offered in the UI: name from the first comment line of each."""
    examples = []
    for path in sorted((root / "queries").glob("*.rq")):
        text = path.read_text(encoding="utf-8")
        first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")),
                     path.stem)
        examples.append({"name": first or path.stem, "file": path.name, "query": text})
    return examples


def _cors(response: Response) -> Response:
    h = response.headers
    allow_origin, expose = CORS
    h.set(*allow_origin)
    if request.method == "OPTIONS":
        h["Access-Control-Allow-Methods"] = "GET, POST, HEAD, OPTIONS"
        h["Access-Control-Allow-Headers"] = request.headers.get(
            "Access-Control-Request-Headers", "Content-Type, Accept, Authorization")
        h["Access-Control-Max-Age"] = "86400"
    h.set(*expose)
    return response


def _gzip(response: Response) -> None:
    if (response.direct_passthrough or "Content-Encoding" in response.headers
            or not compressible(response.status_code, response.mimetype,
                                request.headers.get("Accept-Encoding", ""))):
        return
    data = gzipped(response.get_data())
    if data is None:
        return
    response.set_data(data)
    response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")


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
