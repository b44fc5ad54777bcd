"""Publishing into Virtuoso and serving from it, next to the embedded store: prints figures.

``python bench/backend.py [--seconds 2] [--out FILE]``: builds the repository's store, starts
bench/virtuoso.py's throwaway Virtuoso (Debian's ``virtuoso-opensource-7-bin``), times
``namkg publish`` (first publish and re-publishes, each validating, writing every graph through
the Graph Store Protocol, reading back and swapping), then serves the same site twice, from the
embedded store and with ``--backend`` on Virtuoso, and measures the p50 latency of each
competency query and of every entity page on both. A Markdown table goes to stdout (and to
``--out``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from namkg.config import Config  # noqa: E402

from bench.run import (  # noqa: E402
    NO_CACHE,
    Server,
    free_port,
    http_latency,
    log,
    machine,
    namkg_server,
    queries,
)
from bench.virtuoso import Virtuoso  # noqa: E402

PUBLISHES = 3
PASSWORD_ENV = "NAMKG_BENCH_VIRTUOSO_PW"


def namkg(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "namkg.cli", *args], cwd=REPO,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True)


def publish_times(store: Path, virtuoso) -> list[float]:
    """Seconds of each ``namkg publish`` into Virtuoso (the first, then re-publishes)."""
    env = {PASSWORD_ENV: virtuoso.password}
    times = []
    for _ in range(PUBLISHES):
        started = time.perf_counter()
        done = namkg("publish", "--to", virtuoso.gsp_auth, "--user", "dba", "--password-env",
                     PASSWORD_ENV, "--allow-altered", "--store", str(store), env=env)
        if done.returncode != 0:
            raise RuntimeError(f"publish failed: {done.stderr[-1000:]}")
        times.append(time.perf_counter() - started)
    return times


def entity_paths(url: str, base: str) -> list[str]:
    """The path on this server of every entity IRI the served graph mints under ``base``."""
    import requests

    r = requests.post(url, data={"query": "SELECT DISTINCT ?s WHERE { ?s ?p ?o "
                                          f'FILTER(STRSTARTS(STR(?s), "{base}id/")) }}'},
                      headers={"Accept": "application/sparql-results+json"}, timeout=60)
    r.raise_for_status()
    return sorted("/" + b["s"]["value"][len(base):] for b in r.json()["results"]["bindings"])


def page_latency(url: str, paths: list[str]) -> dict:
    """p50 and p90 of one GET per entity page (HTML), sequentially, on one connection."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    times, failed = [], 0
    try:
        for _ in range(2):  # the first round warms caches
            times = []
            for path in paths:
                t = time.perf_counter()
                conn.request("GET", path, headers={"Accept": "text/html"})
                r = conn.getresponse()
                r.read()
                failed += r.status != 200
                times.append(time.perf_counter() - t)
    finally:
        conn.close()
    if not times:
        raise RuntimeError("no entity pages to measure")
    times.sort()
    return {"pages": len(paths), "failed": failed,
            "p50_ms": statistics.median(times) * 1000,
            "p90_ms": times[int(0.9 * (len(times) - 1))] * 1000}


def backend_server(store: Path, backend: str, work: Path) -> Server:
    port = free_port()
    return Server([sys.executable, "-m", "namkg.cli", "serve", "--store", str(store),
                   "--port", str(port), "--backend", backend],
                  f"http://127.0.0.1:{port}/sparql", logfile=work / f"backend-{port}.log")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per query [2]")
    ap.add_argument("--out", type=Path, help="also write the Markdown here")
    args = ap.parse_args(argv)
    if shutil.which("virtuoso-t") is None:
        print("skipped: virtuoso-t is not installed (Debian: virtuoso-opensource-7-bin)")
        return 0

    work = Path(tempfile.mkdtemp(prefix="namkg-backend-"))
    store = work / "store"
    done = namkg("build", "--store", str(store))
    if done.returncode != 0:
        raise SystemExit(f"build failed: {done.stderr[-1000:]}")
    log("starting Virtuoso")
    virtuoso = Virtuoso(work / "virtuoso").start()
    servers: list[Server] = []
    try:
        log("publishing")
        published = publish_times(store, virtuoso)
        log("serving from the embedded store and from Virtuoso")
        # Both without the response cache (a server with --backend has none): each request
        # runs its query.
        embedded = namkg_server(store, work, env=NO_CACHE)
        servers.append(embedded)
        remote = backend_server(store, virtuoso.url, work)
        servers.append(remote)
        rows = []
        for name, text in queries().items():
            a = http_latency(embedded.url, text, args.seconds)
            b = http_latency(remote.url, text, args.seconds)
            rows.append((name, a, b))
            log(f"{name}: {a} / {b}")
        paths = entity_paths(embedded.url, Config.from_env().base_iri)
        pages = (page_latency(embedded.url, paths), page_latency(remote.url, paths))
    finally:
        for s in servers:
            s.stop()
        virtuoso.stop()
        shutil.rmtree(work, ignore_errors=True)

    def ms(cell: dict) -> str:
        return f"{cell['p50_ms']:.1f}" if "p50_ms" in cell else cell.get("error", "?")

    out = ["# Publishing into Virtuoso and serving from it", "",
           f"Generated by `python bench/backend.py {' '.join(argv or sys.argv[1:])}`; do not "
           "edit by hand.", ""]
    out.append("Machine: " + "; ".join(f"{k} {v}" for k, v in machine()) + ".")
    out.append("")
    out.append(f"`namkg publish` into Virtuoso (validate, Graph Store PUT of every graph into "
               f"temporary graphs, read back and compare, MOVE into place), {PUBLISHES} runs: "
               + ", ".join(f"{t:.2f} s" for t in published)
               + f" (median {statistics.median(published):.2f} s; the first is the first "
               "publish, the others replace it).")
    out.append("")
    out.append("Both servers run each query (the embedded one with `NAMKG_RESPONSE_CACHE_MB=0`; "
               "a server with `--backend` keeps no cache).")
    out.append("")
    out.append("| query (p50 ms, sequential, one connection) | embedded store | --backend "
               "Virtuoso | ratio |")
    out.append("|---|---|---|---|")
    for name, a, b in rows:
        ratio = (f"{b['p50_ms'] / a['p50_ms']:.1f}x" if "p50_ms" in a and "p50_ms" in b
                 else "")
        out.append(f"| {name} | {ms(a)} | {ms(b)} | {ratio} |")
    a, b = pages
    failed = f" ({b['failed']} failed)" if b["failed"] else ""
    out.append(f"| entity pages (HTML, {a['pages']} pages), p50 / p90 | "
               f"{a['p50_ms']:.1f} / {a['p90_ms']:.1f} | {b['p50_ms']:.1f} / {b['p90_ms']:.1f}"
               f"{failed} | {b['p50_ms'] / a['p50_ms']:.1f}x |")
    text = "\n".join(out) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
