"""A throwaway Virtuoso server for tests: its own database in a tmp dir, loopback ports only.

Needs Debian's ``virtuoso-opensource-7-bin`` (``virtuoso-t`` and ``isql-vt``). Without it the
tests that use the fixture are skipped with the reason, unless ``NAMKG_REQUIRE_VIRTUOSO=1`` makes
that a failure (for CI, where the package is installed).

Use it from a test module with ``from tests.virtuoso import virtuoso_fixture  # noqa: F401`` and
a ``virtuoso`` argument.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

USER = "dba"
INSTALL = "apt-get install -y --no-install-recommends virtuoso-opensource-7-bin"

INI = """\
[Database]
DatabaseFile = {dir}/virtuoso.db
ErrorLogFile = {dir}/virtuoso.log
LockFile = {dir}/virtuoso.lck
TransactionFile = {dir}/virtuoso.trx
xa_persistent_file = {dir}/virtuoso.pxa
ErrorLogLevel = 7
FileExtend = 200
Striping = 0
TempStorage = TempDatabase

[TempDatabase]
DatabaseFile = {dir}/virtuoso-temp.db
TransactionFile = {dir}/virtuoso-temp.trx
Striping = 0

[Parameters]
ServerPort = 127.0.0.1:{sql_port}
DisableUnixSocket = 1
DisableTcpSocket = 0
MaxClientConnections = 10
CheckpointInterval = 60
CaseMode = 2
AllowOSCalls = 0
DirsAllowed = ., {dir}
NumberOfBuffers = 10000
MaxDirtyBuffers = 6000

[HTTPServer]
ServerPort = 127.0.0.1:{http_port}
ServerRoot = {dir}/vsp
MaxClientConnections = 10
ServerThreads = 10
Charset = UTF-8
EnabledGzipContent = 0

[SPARQL]
; Below the ~1.5 k triples of the graph on purpose, so the tests see the cap at work.
ResultSetMaxRows = 1000
MaxQueryExecutionTime = 60
MaxQueryCostEstimationTime = 400
"""


def _die_with_parent() -> None:
    """In the child: be SIGTERMed if pytest dies without stopping us (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Virtuoso:
    """One ``virtuoso-t`` process in its own process group; ``stop()`` leaves no orphans."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.sql_port, self.http_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.sparql = self.url + "/sparql"  # public, read-only
        self.sparql_auth = self.url + "/sparql-auth"  # Digest, updates as dba
        self.gsp_auth = self.url + "/sparql-graph-crud-auth"  # Graph Store Protocol, Digest
        self.password = "dba"  # the default until start() changes it
        self.proc: subprocess.Popen | None = None

    @property
    def auth(self) -> tuple[str, str]:
        return USER, self.password

    def start(self, timeout: float = 60) -> Virtuoso:
        (self.dir / "vsp").mkdir(parents=True, exist_ok=True)
        ini = self.dir / "virtuoso.ini"
        ini.write_text(INI.format(dir=self.dir, sql_port=self.sql_port, http_port=self.http_port))
        self.log = open(self.dir / "stdout.log", "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            ["virtuoso-t", "+foreground", "+configfile", str(ini)], cwd=self.dir,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"virtuoso-t exited {self.proc.returncode}: {self.tail()}")
            try:
                if requests.get(self.sparql, params={"query": "ASK {}"}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"virtuoso did not answer within {timeout} s: {self.tail()}")
            time.sleep(0.2)
        try:
            new = "v" + secrets.token_hex(16)  # an identifier to isql: a letter first
            self.isql(f"SET PASSWORD dba {new};")  # never leave the well-known default on
            self.password = new
            self.isql("checkpoint;")
        except BaseException:
            self.stop()
            raise
        return self

    def isql(self, sql: str) -> str:
        done = subprocess.run(
            ["isql-vt", f"127.0.0.1:{self.sql_port}", USER, self.password, f"exec={sql}"],
            capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or "*** Error" in done.stdout + done.stderr:
            raise RuntimeError(f"isql failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
        return done.stdout

    def tail(self, n: int = 2000) -> str:
        log = self.dir / "virtuoso.log"
        return log.read_text(errors="replace")[-n:] if log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


def unavailable() -> str | None:
    """Why Virtuoso cannot run here, or None."""
    missing = [b for b in ("virtuoso-t", "isql-vt") if shutil.which(b) is None]
    return f"{', '.join(missing)} not installed (Debian: {INSTALL})" if missing else None


@pytest.fixture(scope="session", name="virtuoso")
def virtuoso_fixture(tmp_path_factory):
    """A running Virtuoso with a random dba password, stopped at the end of the session."""
    reason = unavailable()
    if reason:
        if os.environ.get("NAMKG_REQUIRE_VIRTUOSO") == "1":
            pytest.fail(f"NAMKG_REQUIRE_VIRTUOSO=1 but {reason}")
        pytest.skip(reason)
    server = Virtuoso(tmp_path_factory.mktemp("virtuoso")).start()
    try:
        yield server
    finally:
        server.stop()
