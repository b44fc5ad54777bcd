"""Shared fixtures: a store built by the real `namkg build`, and a real `namkg serve` process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parent.parent
NAMKG = [sys.executable, "-m", "namkg.cli"]


def namkg(*args: str, env: dict | None = None, timeout: float = 120,
          **kw) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess."""
    return subprocess.run([*NAMKG, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, **(env or {})}, **kw)


@contextlib.contextmanager
def serve(app):
    """A WSGI app on a real threaded HTTP server on a free loopback port, in this process."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def built_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("store")
    done = namkg("build", "--store", str(store))
    assert done.returncode == 0, done.stderr
    return store


ADMIN_TOKEN = "test-admin-token"  # NAMKG_ADMIN_TOKEN of test servers: /healthz's details


class Server:
    """A `namkg serve` process on a free loopback port."""

    def __init__(self, store: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [*NAMKG, "serve", "--store", str(store), "--port", str(self.port)],
            cwd=REPO, env={**os.environ, "NAMKG_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        # Drain the log as it comes: an unread pipe fills up and blocks the server.
        self.log: deque[bytes] = deque(maxlen=10_000)
        self.log_reader = threading.Thread(
            target=lambda: self.log.extend(iter(self.proc.stderr.readline, b"")), daemon=True)
        self.log_reader.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log_reader.join(5)
                raise RuntimeError(f"server exited: {self.log_text()[-2000:]}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # not up yet, or busy starting
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not answer within 60 s")

    def log_text(self) -> str:
        return b"".join(self.log).decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log_reader.join(5)


@pytest.fixture(scope="session")
def live_server(built_store) -> str:
    """Base URL of a real server over the repository's graph, shared by the session."""
    server = Server(built_store, env={"NAMKG_QUERY_TIMEOUT": "3"})
    yield server.url
    server.stop()
