"""Figures of the hardening work: a hostile client's view of `namkg serve`, on loopback only.

Each row is one finding of the hardening issue, measured the same way on any checkout:

    python bench/hostile.py                      # this checkout
    python bench/hostile.py --repo /tmp/old      # another one (e.g. a worktree of an older commit)

Every load is bounded in count and time and goes to 127.0.0.1 only. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests

RUNAWAY = "SELECT (COUNT(*) AS ?c) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"
SIMPLE = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
BIG = ("SELECT ?i ?big WHERE { VALUES ?i { %s } "
       "{ SELECT (GROUP_CONCAT(STR(?o)) AS ?big) WHERE { ?s ?p ?o } } }")
BUILD_TIME = "SELECT ?t WHERE { GRAPH ?g { ?b <http://www.w3.org/ns/prov#endedAtTime> ?t } }"
SMUGGLED = """PREFIX ex: <http://example.org/>
SELECT * WHERE {
  VALUES ?x { \"\"\" " }
  SERVICE <%s> { ?leak ?p ?o }
  VALUES ?y { ex:a\\~b } # \"\"\"
}"""


def cli(repo: Path) -> list[str]:
    """The command line of ``namkg`` in ``repo`` (older checkouts had the package ``server``)."""
    package = "namkg" if (repo / "server" / "namkg").is_dir() else "server"
    return [sys.executable, "-m", f"{package}.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`namkg serve` of ``repo`` (its own code) on a free port; every process ends on exit."""

    def __init__(self, repo: Path, store: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*cli(repo), "serve", "--store", str(store),
             "--port", str(self.port)], cwd=repo, start_new_session=True,
            env={**os.environ, "NAMKG_RESPONSE_CACHE_MB": "0", **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def http_worker(self) -> int:
        return next(pid for pid, ppid in processes(self.proc.pid) if ppid == self.proc.pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for pid, _ in processes(self.proc.pid):  # orphans of a broken version, if any
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def processes(session: int) -> list[tuple[int, int]]:
    """(pid, ppid) of the live processes of a session."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == session and fields[0] != "Z":
                out.append((int(entry), int(fields[1])))
    return out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def probe(url: str) -> float:
    """Seconds for /healthz to answer (30 when it does not)."""
    t = time.monotonic()
    try:
        requests.get(url + "/healthz", timeout=30)
    except requests.RequestException:
        return 30.0
    return time.monotonic() - t


def ssrf(repo: Path, store: Path) -> str:
    hits = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    with Served(repo, store) as srv:
        r = requests.post(srv.url + "/sparql", timeout=30,
                          data=SMUGGLED % f"http://127.0.0.1:{listener.getsockname()[1]}/",
                          headers={"Content-Type": "application/sparql-query"})
        with contextlib.suppress(OSError):
            hits.append(listener.accept())
    listener.close()
    return f"status {r.status_code}, listener connections {len(hits)}"


def slow_bodies(repo: Path, store: Path) -> str:
    with Served(repo, store) as srv:
        socks = []
        for _ in range(40):  # more than the HTTP threads
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"POST /sparql HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                      b"sparql-query\r\nContent-Length: 100000\r\n\r\nSELECT")
            socks.append(s)
        worst = 0.0
        end = time.monotonic() + 10
        while time.monotonic() < end:
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(b" ")
            worst = max(worst, probe(srv.url))
            time.sleep(0.5)
        for s in socks:
            s.close()
    return f"40 trickled bodies, 10 s: slowest /healthz {worst:.2f} s"


def silent_sockets(repo: Path, store: Path) -> str:
    with Served(repo, store) as srv:
        socks = []
        for _ in range(1100):
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=2))
        time.sleep(1)
        worst = max(probe(srv.url) for _ in range(5))
        for s in socks:
            s.close()
    return f"{len(socks)} silent sockets: slowest /healthz {worst:.2f} s"


def slow_readers(repo: Path, store: Path) -> str:
    query = BIG % " ".join(map(str, range(10_000)))
    with Served(repo, store, NAMKG_QUERY_TIMEOUT="20") as srv:
        first = requests.post(srv.url + "/sparql", data={"query": query}, timeout=60)
        http = srv.http_worker()
        before = peak = rss_mb(http)
        socks = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            body = f"query={quote(query)}".encode()
            s.sendall(b"POST /sparql HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-"
                      b"form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            socks.append(s)
        end = time.monotonic() + 15
        while time.monotonic() < end:
            with contextlib.suppress(OSError, StopIteration):
                peak = max(peak, rss_mb(srv.http_worker()))
            time.sleep(0.05)
        for s in socks:
            s.close()
    return (f"one answer {first.status_code}, {len(first.content) / 1e6:.1f} MB; 8 slow readers: "
            f"HTTP worker {before:.0f} -> {peak:.0f} MB")


def storm(repo: Path, store: Path) -> str:
    results: list[tuple[str, int, float]] = []
    with Served(repo, store, NAMKG_QUERY_TIMEOUT="2") as srv:
        stop = time.monotonic() + 10

        def client(kind: str, n: int) -> None:
            i = 0
            while time.monotonic() < stop:
                i += 1
                t = time.monotonic()
                try:
                    r = requests.post(srv.url + "/sparql", timeout=60, data={
                        "query": (RUNAWAY if kind == "r" else SIMPLE) + f" # {n}-{i}"})
                    results.append((kind, r.status_code, time.monotonic() - t))
                except requests.RequestException:
                    results.append((kind, 0, time.monotonic() - t))
                if kind == "o":
                    time.sleep(0.05)

        with ThreadPoolExecutor(44) as pool:
            for job in [pool.submit(client, "r", n) for n in range(40)] + [
                    pool.submit(client, "o", n) for n in range(4)]:
                job.result()
    o = [r for r in results if r[0] == "o"]
    r = [x for x in results if x[0] == "r"]
    ok = sum(x[1] == 200 for x in o)
    return (f"deadline 2 s; ordinary: {len(o)} sent, {ok} answered 200, max "
            f"{max(x[2] for x in o):.2f} s, median {statistics.median(x[2] for x in o):.2f} s; "
            f"runaways: max {max(x[2] for x in r):.2f} s")


def rebuild(repo: Path, store: Path) -> str:
    with Served(repo, store, NAMKG_RESPONSE_CACHE_MB="64") as srv:
        def ask() -> str:
            r = requests.post(srv.url + "/sparql", data={"query": BUILD_TIME}, timeout=10)
            if r.status_code != 200:
                return f"{r.status_code}: {r.text.strip()}"
            return r.json()["results"]["bindings"][0]["t"]["value"]

        old = ask()
        stop = threading.Event()
        threads = [threading.Thread(target=lambda: [ask() for _ in iter(stop.is_set, True)],
                                    daemon=True) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(max(0.0, 1.1 - (time.time() % 1)))
        subprocess.run([*cli(repo), "build", "--store", str(store)],
                       cwd=repo, check=True, capture_output=True)
        time.sleep(5)  # past the reload check and the old workers' last answers
        stop.set()
        for t in threads:
            t.join(10)
        stale = sum(ask() == old for _ in range(5))
    return f"after the rebuild, {stale} of 5 repeats answered from the old build"


def orphans(repo: Path, store: Path) -> str:
    with Served(repo, store, NAMKG_QUERY_TIMEOUT="300") as srv:
        time.sleep(1)
        http = srv.http_worker()
        old = [pid for pid, _ in processes(srv.proc.pid) if pid != srv.proc.pid]
        def run_away():
            with contextlib.suppress(requests.RequestException):
                requests.post(srv.url + "/sparql", data={"query": RUNAWAY}, timeout=60)

        threading.Thread(target=run_away, daemon=True).start()
        time.sleep(1)
        os.kill(http, signal.SIGKILL)
        t = time.monotonic()
        while time.monotonic() - t < 30:
            alive = {pid for pid, _ in processes(srv.proc.pid)} & set(old)
            if not alive:
                return f"every old process gone {time.monotonic() - t:.2f} s after the SIGKILL"
            time.sleep(0.05)
    return f"{len(alive)} old process(es) still running 30 s after the SIGKILL"


def big_query(repo: Path, store: Path) -> str:
    text = "SELECT * WHERE { " + "?s <http://ex/p> \"x\" . " * 38_000 + "} LIMIT 1"
    with Served(repo, store) as srv:
        http = srv.http_worker()
        before = rss_mb(http)
        with ThreadPoolExecutor(6) as pool:
            def post(_):
                t = time.monotonic()
                r = requests.post(srv.url + "/sparql", data=text.encode(), timeout=60,
                                  headers={"Content-Type": "application/sparql-query"})
                return r.status_code, time.monotonic() - t
            got = list(pool.map(post, range(6)))
        after = rss_mb(http)
    return (f"6 clients x {len(text) / 1e6:.1f} MB query: statuses "
            f"{sorted({s for s, _ in got})}, median {statistics.median(t for _, t in got):.2f} s, "
            f"max {max(t for _, t in got):.2f} s; HTTP worker {before:.0f} -> {after:.0f} MB")


ROWS = [("1 SERVICE smuggled past the text guard", ssrf),
        ("2 slow request bodies", slow_bodies),
        ("3 silent connections", silent_sockets),
        ("4 slow readers of maximal answers", slow_readers),
        ("5 runaway storm (40 runaway + 4 ordinary clients, 10 s)", storm),
        ("5 1 MB queries", big_query),
        ("6 response cache after a rebuild under load", rebuild),
        ("7 SIGKILL of the HTTP worker mid-runaway", orphans)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--only", help="run the rows whose name contains this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        subprocess.run([*cli(args.repo), "build", "--store", str(store)],
                       cwd=args.repo, check=True, capture_output=True)
        print("| finding | measured |\n|---|---|")
        for name, measure in ROWS:
            if args.only and args.only not in name:
                continue
            try:
                figure = measure(args.repo, store)
            except Exception as exc:  # noqa: BLE001 - a row that fails says so
                figure = f"failed: {type(exc).__name__}: {exc}"
            print(f"| {name} | {figure} |", flush=True)


if __name__ == "__main__":
    main()
