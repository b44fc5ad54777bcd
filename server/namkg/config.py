"""Configuration: flags and ``NAMKG_*`` environment variables, with sane defaults.

>>> c = Config.from_env({"NAMKG_QUERY_TIMEOUT": "2.5", "NAMKG_SERVICE_ALLOWLIST": "https://a/ https://b/"})
>>> c.query_timeout, c.service_allowlist
(2.5, ('https://a/', 'https://b/'))
>>> Config.from_env({}).base_iri
'https://w3id.org/nam-kg/'
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

DEFAULT_BASE = "https://w3id.org/nam-kg/"
_HERE = Path(__file__).resolve().parent


def default_root() -> Path:
    """Where ``ontology/``, ``data/`` and ``queries/`` are read from: the checkout this package
    lives in (``server/namkg/`` of the repository, an editable install), else the copies a
    wheel installs beside the code (``namkg/resources/``). ``NAMKG_ROOT`` overrides both.

    >>> (default_root() / "ontology" / "nam.ttl").is_file()
    True
    """
    if os.environ.get("NAMKG_ROOT"):
        return Path(os.environ["NAMKG_ROOT"])
    for root in (_HERE.parent.parent, _HERE / "resources"):
        if (root / "ontology" / "nam.ttl").is_file() and (root / "data").is_dir():
            return root
    raise FileNotFoundError(f"no ontology/ and data/ beside {_HERE}: set NAMKG_ROOT")


REPO_ROOT = default_root()


# Settings a zero (or less) would break: a deadline of 0 s, no threads, no worker...
POSITIVE = ("http_threads", "query_workers", "query_timeout", "max_body", "result_limit",
            "result_bytes", "client_timeout", "max_connections")
NON_NEGATIVE = ("worker_memory_mb", "rate_limit", "response_cache_mb")  # 0: off


@dataclass(frozen=True)
class Config:
    """Every setting of nam-kg; each field ``x`` reads ``NAMKG_X`` from the environment."""

    root: Path = REPO_ROOT  # where ontology/ and data/ are read from
    # the current directory's store/, never one inside the installed package
    store: Path = field(default_factory=lambda: Path.cwd() / "store")
    base_iri: str = DEFAULT_BASE
    host: str = "127.0.0.1"
    port: int = 8000
    # Python threads of the HTTP worker (granian): more than the query workers and their burst
    # (2 x 8), so that a runaway on every worker still leaves threads for quick requests.
    http_threads: int = 32
    query_workers: int = 8  # processes running queries (~30 MB each), killed at the deadline
    query_timeout: float = 5.0  # seconds
    max_body: int = 1_000_000  # bytes of a request body
    result_limit: int = 10_000  # rows or triples of one result
    # bytes of one answer: rows alone do not bound it (10,000 rows of 10 kB are 100 MB, held
    # by the HTTP worker until a slow client has read them)
    result_bytes: int = 8_000_000
    # seconds a client may take to send a request head (or stay idle between requests) and,
    # separately, its body; a client that stops reading is dropped after 30 s (serve.py)
    client_timeout: float = 5.0
    max_connections: int = 4096  # open client connections at once (lowered to fit ulimit -n)
    worker_memory_mb: int = 1024  # address-space cap of a query worker
    service_allowlist: tuple[str, ...] = ()
    update_token: str | None = None
    # shows /healthz's details (store path, worker PIDs) to requests bearing it; without it
    # nobody sees them: they tell an attacker where the files are and which processes to aim at
    admin_token: str | None = None
    rate_limit: float = 0.0  # requests per second per client; 0 = off
    response_cache_mb: int = 64  # answers to repeated queries kept per build; 0 = off
    backend: str | None = None  # a remote SPARQL endpoint to serve from instead of the store
    backend_user: str | None = None  # its user; the password only from NAMKG_BACKEND_PASSWORD

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> Config:
        """Read ``NAMKG_*`` from ``env`` (default ``os.environ``); non-None ``overrides`` win."""
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get("NAMKG_" + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "root" in values and "store" not in values:
            values["store"] = Path(values["root"]) / "store"
        cfg = cls(**values)
        if not cfg.base_iri.endswith(("/", "#")):
            raise ValueError(f"NAMKG_BASE_IRI must end with '/' or '#': {cfg.base_iri!r}")
        for name in POSITIVE + NON_NEGATIVE:
            value = getattr(cfg, name)
            least = "0" if name in NON_NEGATIVE else "more than 0"
            if not math.isfinite(value) or value < 0 or (value == 0 and name in POSITIVE):
                raise ValueError(f"NAMKG_{name.upper()} must be a finite number, {least}: "
                                 f"{value!r}")
        return cfg

    def with_(self, **changes) -> Config:
        return replace(self, **changes)


def _convert(name: str, raw: str):
    kind = {f.name: f.type for f in fields(Config)}[name]
    try:
        if name in ("root", "store"):
            return Path(raw)
        if name == "service_allowlist":
            return tuple(raw.replace(",", " ").split())
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"NAMKG_{name.upper()}: not a valid value: {raw!r}") from exc
    return raw
