"""Slow and silent clients against a real `namkg serve` on loopback: none of them keeps others
from being served (a probe on /healthz answered within 1 s throughout), each is cut off after
its time, and the server's life cycle holds under them (a port in use, SIGTERM, SIGKILL).

The servers here have few HTTP threads (THREADS) and a short NAMKG_CLIENT_TIMEOUT, so that a
handful of slow clients would take every thread and the cut-offs come within seconds.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from .conftest import NAMKG, REPO
from .test_faults import proc_stat, served, tree, wait_for

THREADS = 4  # NAMKG_HTTP_THREADS of the servers here
CLIENT_TIMEOUT = 2  # NAMKG_CLIENT_TIMEOUT of the servers here, seconds
ENV = {
    "NAMKG_HTTP_THREADS": str(THREADS),
    "NAMKG_CLIENT_TIMEOUT": str(CLIENT_TIMEOUT),
    "NAMKG_QUERY_TIMEOUT": "2",
}
SILENT = 1_100  # more than granian's default connection cap (1,024), which they used to fill
BODY_HEAD = (
    b"POST /sparql HTTP/1.1\r\nHost: x\r\nContent-Type: application/sparql-query\r\n"
    b"Content-Length: %d\r\n\r\n"
)


@pytest.fixture(scope="module")
def server(built_store):
    with served(built_store, ENV) as srv:
        yield srv


class Probe:
    """GET /healthz on a new connection every 0.2 s, in a thread; the time of each answer
    (10 s, the socket timeout, for none)."""

    def __init__(self, port: int):
        self.port, self.times, self.bad = port, [], []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    head = s.recv(64)
                if not head.startswith(b"HTTP/1.1 200"):
                    self.bad.append(head)
            except OSError as exc:
                self.bad.append(repr(exc))
            self.times.append(time.monotonic() - started)
            time.sleep(0.2)

    def stop(self) -> None:
        self.running = False
        self.thread.join(15)

    def check(self, at_least: int) -> None:
        assert not self.bad, self.bad[:3]
        assert len(self.times) >= at_least, f"only {len(self.times)} probes answered"
        assert max(self.times) < 1.0, f"slowest probe {max(self.times):.2f} s"


@contextlib.contextmanager
def probing(port: int, at_least: int):
    probe = Probe(port)
    try:
        yield probe
    finally:
        probe.stop()
    probe.check(at_least)


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors():
    """Room in this process for SILENT sockets and more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * SILENT:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * SILENT), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 2 * SILENT, "ulimit -n too low"
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def until_closed(s: socket.socket, within: float) -> bytes | None:
    """What the server sends before it ends the connection within ``within`` s, else None."""
    s.settimeout(within)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except TimeoutError:
        return None
    except OSError:  # reset: ended too
        pass
    return data


def closed_by_server(s: socket.socket, within: float) -> bool:
    return until_closed(s, within) is not None


def trickle(socks: list[socket.socket], seconds: float, every: float = 0.5) -> None:
    """Send one body byte on each socket every ``every`` s, for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            with contextlib.suppress(OSError):
                s.send(b"x")
        time.sleep(every)


# --------------------------------------------------------------------------- bodies


def test_trickled_bodies_beyond_the_threads_leave_the_others_served(server):
    # Each body is declared, then sent a byte at a time: they used to hold one HTTP thread
    # each, for as long as they trickled, so that THREADS of them took every route down.
    n = 3 * THREADS
    socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(n)]
    for s in socks:
        s.sendall(BODY_HEAD % 1000 + b"A")
    with probing(server.port, at_least=8):
        trickle(socks, CLIENT_TIMEOUT + 1.5)
    answers = [until_closed(s, 5) for s in socks]
    for s in socks:
        s.close()
    assert None not in answers, "a trickled body kept its connection"
    assert all(a.startswith((b"HTTP/1.1 408", b"HTTP/1.1 503")) for a in answers), answers
    assert any(a.startswith(b"HTTP/1.1 408") and b"not received within" in a for a in answers)


def test_a_body_that_arrives_slowly_but_in_time_is_answered(server):
    query = b"ASK { ?s ?p ?o }"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            BODY_HEAD.replace(b"\r\n\r\n", b"\r\nAccept: application/json\r\n\r\n") % len(query)
        )
        for i in range(len(query)):
            s.send(query[i : i + 1])
            time.sleep(CLIENT_TIMEOUT / 2 / len(query))
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200") and b'"boolean":true' in answer, answer


# --------------------------------------------------------------------------- connections


def test_silent_connections_beyond_the_old_cap_leave_the_others_served(server):
    # SILENT connections that never send a byte used to fill granian's connection cap and
    # stay forever: every new client waited.
    socks = []
    try:
        for _ in range(SILENT):
            socks.append(socket.create_connection(("127.0.0.1", server.port)))
        with probing(server.port, at_least=10):
            time.sleep(3)
        # and they are closed: deferred by the kernel, then cut off after CLIENT_TIMEOUT
        assert all(closed_by_server(s, 4 * CLIENT_TIMEOUT + 4) for s in socks[:20])
    finally:
        for s in socks:
            s.close()


def test_slow_heads_and_idle_keep_alive_are_cut_off(server):
    # A request head trickled a header line at a time (slowloris), and a keep-alive
    # connection left idle after its answer: each used to hold a connection for 30 s.
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    for s in slow:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    for s in idle:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    with probing(server.port, at_least=5):
        end = started + CLIENT_TIMEOUT + 1
        while time.monotonic() < end:
            for s in slow:
                with contextlib.suppress(OSError):
                    s.send(b"X-Slow: 1\r\n")
            time.sleep(0.3)
    assert all(closed_by_server(s, CLIENT_TIMEOUT + 2) for s in slow + idle)
    assert time.monotonic() - started < 3 * CLIENT_TIMEOUT + 3
    for s in slow + idle:
        s.close()


# --------------------------------------------------------------------------- life cycle


def listeners(port: int) -> int:
    """Sockets listening on ``port`` (IPv4), from /proc/net/tcp."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A")


def test_a_second_server_on_a_port_in_use_fails_at_once(server, built_store):
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*NAMKG, "serve", "--store", str(built_store), "--port", str(server.port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, **ENV},
        )
    except subprocess.TimeoutExpired:
        pytest.fail("a second server started on a port in use")
    assert done.returncode != 0 and time.monotonic() - started < 10
    assert f"cannot listen on 127.0.0.1:{server.port}" in done.stderr
    assert "in use" in done.stderr, done.stderr
    assert listeners(server.port) == 1


def _load(port: int, stop: threading.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(requests.RequestException):
            requests.post(
                f"http://127.0.0.1:{port}/sparql",
                timeout=5,
                data={"query": "SELECT * WHERE { ?s ?p ?o } LIMIT 20"},
            )


@contextlib.contextmanager
def under_load(port: int):
    """Clients sending queries, trickled bodies and silent connections."""
    stop = threading.Event()
    clients = [
        threading.Thread(target=_load, args=(port, stop), daemon=True) for _ in range(THREADS)
    ]
    for c in clients:
        c.start()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(2 * THREADS + 50)]
    for s in socks[: 2 * THREADS]:
        s.sendall(BODY_HEAD % 1000 + b"A")
    time.sleep(1)
    try:
        yield
    finally:
        stop.set()
        for s in socks:
            s.close()


def test_sigterm_under_load_stops_every_process_promptly(built_store):
    with served(built_store, ENV) as srv:
        leader = srv.proc.pid
        with under_load(srv.port):
            assert len(tree(leader)) >= 3  # granian, its HTTP worker, query processes
            started = time.monotonic()
            os.kill(leader, signal.SIGTERM)
            code = srv.proc.wait(30)
            seconds = time.monotonic() - started
        left = wait_for(lambda: not tree(leader), timeout=10) or tree(leader)
    assert code == 0 and seconds < 6, f"exit {code} after {seconds:.1f} s"
    assert left is True, f"left running: {left}"


def test_the_http_worker_dies_with_a_killed_server(built_store):
    # SIGKILL reaches only the main process: no handler runs there; the HTTP worker (and the
    # query processes it owns) must notice and end.
    with served(built_store, ENV) as srv:
        leader = srv.proc.pid
        with under_load(srv.port):
            procs = tree(leader)
            [worker] = [
                pid
                for pid, p in procs.items()
                if p["ppid"] == leader
                and b"serve\0--store" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
            os.kill(leader, signal.SIGKILL)
            srv.proc.wait(10)

            def running(pid: int) -> bool:
                return (proc_stat(pid) or {"state": "Z"})["state"] != "Z"

            assert wait_for(lambda: not running(worker), timeout=10), "HTTP worker outlived"
            left = wait_for(lambda: not [p for p in procs if running(p)], timeout=10)
            assert left, [p for p in procs if running(p)]
