"""bench/bare_app.py with namkg's query path in place of its in-process store: every query goes
through namkg's executor (the WDQS dialect and the SERVICE guard, a sandboxed worker process,
the deadline, the row and byte caps), and nothing else of namkg (no Flask, no chain, no cache,
no log). Against the bare app it prices the worker hop alone; against ``namkg serve`` it prices
everything else on the request path. bench/run.py serves it as it serves the bare app:
``BENCH_STORE=<build dir> granian --interface wsgi --working-dir bench hop_app:app``.
"""

import os
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pkg import ours  # noqa: E402  (our package, named once there)

Config = ours("config").Config
Executor = ours("query.executor").Executor
QueryError = ours("query.backend").QueryError
JSON = "application/sparql-results+json"
_made = threading.Lock()
_executor = None  # made in the serving process (an executor refuses to cross a fork)


def executor():
    global _executor
    if _executor is None:
        with _made:  # once, by the first request's thread
            if _executor is None:
                config = Config.from_env()
                _executor = Executor(
                    os.environ["BENCH_STORE"], workers=config.query_workers,
                    timeout=config.query_timeout, result_limit=config.result_limit,
                    result_bytes=config.result_bytes, memory_mb=config.worker_memory_mb,
                    allowlist=config.service_allowlist)
    return _executor


def app(environ, start_response):
    size = int(environ.get("CONTENT_LENGTH") or 0)
    form = parse_qs(environ["wsgi.input"].read(size).decode("utf-8"))
    try:
        result = executor().query(form["query"][0], solutions_format=JSON, graph_format=None,
                                  client=True)
    except (KeyError, QueryError) as exc:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [str(exc).encode()]
    start_response("200 OK", [("Content-Type", result.media_type),
                              ("Content-Length", str(len(result.body)))])
    return [result.body]
