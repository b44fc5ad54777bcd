"""Where the benchmarks meet our package: its import name, once, so that renaming the package
is a one-line change here. Servers are started through its command line; the few in-process
uses (settings, store paths, the cost breakdown) go through :func:`ours`."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

PKG = "namkg"  # the import package of nam-kg (its code lives in server/namkg/)


def ours(module: str) -> ModuleType:
    """``PKG.module``, imported."""
    return importlib.import_module(f"{PKG}.{module}")


def cli(*args: str) -> list[str]:
    """The ``namkg`` command line, run by this interpreter (works from a checkout)."""
    return [sys.executable, "-m", f"{PKG}.cli", *args]


def serve_settings() -> dict:
    """The granian settings ``namkg serve`` uses (its ``serve.server``), from the defaults of
    its configuration, for the reference apps: same process and thread counts, backlog,
    connection cap, keep-alive and header timeout. Its app runs on at most ``http_threads``
    threads at once (the rest of its blocking threads only read bodies), so the reference
    apps get ``http_threads`` blocking threads."""
    config = ours("config").Config.from_env()
    serve = ours("web.serve")
    return {
        "workers": 1,
        "blocking_threads": config.http_threads,
        "backlog": serve.BACKLOG,
        "backpressure": config.max_connections,
        "header_read_timeout_ms": int(config.client_timeout * 1000),
        "base_iri": config.base_iri,
    }  # where its /id/ IRIs are minted
