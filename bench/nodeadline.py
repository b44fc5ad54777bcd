"""``namkg serve`` without its deadline machinery: the price of that machinery, measured.

The same app (the route table and its one chain, safety checks, negotiation, CORS, gzip, log,
metrics) under the same HTTP server settings, but queries run in the request thread on one
in-process read-only store instead of in worker processes killed at the deadline: no pipe,
no pickling, no worker checkout, no deadline. Unsafe (a runaway query holds its thread until it
ends), so only for benchmarks: ``python bench/nodeadline.py --store DIR --port N``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyoxigraph as ox

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pkg import ours  # noqa: E402  (our package, named once there)

layout, Config = ours("kg.layout"), ours("config").Config
Result, UpdateRefused = ours("query.backend").Result, ours("query.backend").UpdateRefused
answer = ours("query.results").answer  # what a worker does with a job
query_job, unwrap = ours("query.messages").query_job, ours("query.messages").unwrap


class InThread:
    """Executor's interface, with each query run in the calling thread (no deadline)."""

    sandbox = None  # queries run in the HTTP worker itself

    def __init__(self, path: Path, result_limit: int, result_bytes: int, allowlist=()):
        self.result_limit, self.result_bytes = result_limit, result_bytes
        self.allowlist = frozenset(allowlist)
        self.path = str(path)
        self.store = ox.Store.read_only(self.path)
        self.queries = 0

    def query(self, sparql: str, *, solutions_format: str | None, graph_format: str | None,
              default_graphs=None, named_graphs=None, base_iri=None, timeout=None,
              deadline=None, client=False, uselang=None) -> Result:
        self.queries += 1
        job = query_job(sparql, solutions_format, graph_format, default_graphs, named_graphs,
                        base_iri, self.result_limit, self.result_bytes, client, uselang)
        # as a worker would answer; the build is the store path, as the executor gives it
        return unwrap(answer(self.store, job, self.allowlist)).result(self.path)

    def update(self, sparql: str, *, timeout=None, client=False) -> None:
        raise UpdateRefused("this endpoint is read-only: updates are not accepted")

    def reload(self, store_path) -> None:
        self.path = str(store_path)
        self.store = ox.Store.read_only(self.path)

    def stats(self) -> dict:
        return {"workers": 1, "busy": 0, "long": 0, "starting": 0, "timeouts": 0,
                "crashes": 0, "queries": self.queries, "pids": []}

    def close(self) -> None:
        pass


def make_app(config: Config):
    executor = InThread(layout.current_path(config.store), config.result_limit,
                        config.result_bytes, config.service_allowlist)
    return ours("web.app").create_app(config, executor=executor)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args(argv)
    config = Config.from_env(store=args.store, port=args.port, host="127.0.0.1")
    ours("web.serve").run(config, make_app)


if __name__ == "__main__":
    main()
