"""A throwaway Virtuoso for the benchmarks, tuned as its documentation recommends, loaded with
every named graph of a built store. Its own database in a scratch directory, loopback only.

The settings, and where they come from:

- ``[HTTPServer] ServerThreads``: "the number of concurrently serviced HTTP requests"; more
  concurrent requests wait for a thread (docs.openlinksw.com/virtuoso/vspconf). OpenLink's
  tuning answers for the BSBM runs (Orri Erling's blog, id=1665): at least the number of
  concurrent clients. Here: the most clients any cell uses, plus room for the loader.
- ``MaxKeepAlives``: the cap on idle keep-alive connections, dropped ahead of their timeout
  beyond it (vspconf): at least the clients, so that none is dropped between requests.
  ``KeepAliveTimeout``: 10 s, the documented example, longer than any gap in a cell.
- ``NumberOfBuffers``/``MaxDirtyBuffers`` (8 KB pages): the row of Virtuoso's shipped
  virtuoso.ini for 2 GB of free memory (170,000 / 130,000), far above this data's working set
  (VirtRDFPerformanceTuning: buffers above the working set, dirty buffers about 3/4 of them).
- ``ThreadsPerQuery`` = cores and ``AsyncQueueMaxThreads`` = 1.5 x cores (the BSBM answers).
- ``ResultSetMaxRows`` above any answer here, so that no answer is cut; no gzip (no other
  system in the table compresses).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

USER = "dba"
KEEPALIVE_TIMEOUT_S = 10
BUFFERS, DIRTY_BUFFERS = 170_000, 130_000

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
ServerThreads = {threads}
MaxClientConnections = {threads}
CheckpointInterval = 60
CaseMode = 2
AllowOSCalls = 0
DirsAllowed = ., {dir}
NumberOfBuffers = {buffers}
MaxDirtyBuffers = {dirty}
ThreadsPerQuery = {cores}
AsyncQueueMaxThreads = {async_threads}

[HTTPServer]
ServerPort = 127.0.0.1:{http_port}
ServerRoot = {dir}/vsp
ServerThreads = {threads}
MaxClientConnections = {threads}
MaxKeepAlives = {keepalives}
KeepAliveTimeout = {keepalive_timeout}
Charset = UTF-8
EnabledGzipContent = 0

[SPARQL]
ResultSetMaxRows = 1000000
MaxQueryExecutionTime = 60
MaxQueryCostEstimationTime = 400
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Virtuoso:
    """One ``virtuoso-t`` in its own process group, at ``url`` (public, read-only /sparql)."""

    def __init__(self, directory: Path, clients: int):
        self.dir = Path(directory)
        self.threads = clients + 4
        self.keepalives = 2 * clients
        self.sql_port, self.http_port = _free_port(), _free_port()
        base = f"http://127.0.0.1:{self.http_port}"
        self.url = base + "/sparql"
        self.gsp = base + "/sparql-graph-crud-auth"  # Graph Store Protocol, Digest, as dba
        self.password = "dba"  # the default until start() changes it
        self.proc: subprocess.Popen | None = None
        self.log = None

    def settings(self) -> str:
        return (
            f"HTTP ServerThreads {self.threads}, MaxKeepAlives {self.keepalives}, "
            f"KeepAliveTimeout {KEEPALIVE_TIMEOUT_S} s, NumberOfBuffers {BUFFERS:,}, "
            f"MaxDirtyBuffers {DIRTY_BUFFERS:,}, ThreadsPerQuery {os.cpu_count()}"
        )

    def start(self, timeout: float = 60) -> Virtuoso:
        import requests

        (self.dir / "vsp").mkdir(parents=True, exist_ok=True)
        cores = os.cpu_count() or 1
        ini = self.dir / "virtuoso.ini"
        ini.write_text(
            INI.format(
                dir=self.dir,
                sql_port=self.sql_port,
                http_port=self.http_port,
                threads=self.threads,
                keepalives=self.keepalives,
                keepalive_timeout=KEEPALIVE_TIMEOUT_S,
                buffers=BUFFERS,
                dirty=DIRTY_BUFFERS,
                cores=cores,
                async_threads=max(1, cores * 3 // 2),
            )
        )
        self.log = open(self.dir / "stdout.log", "wb")  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            ["virtuoso-t", "+foreground", "+configfile", str(ini)],
            cwd=self.dir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"virtuoso-t exited {self.proc.returncode}")
            try:
                if requests.get(self.url, params={"query": "ASK {}"}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"virtuoso did not answer within {timeout} s")
            time.sleep(0.2)
        new = "v" + secrets.token_hex(16)  # never leave the well-known default password on
        self.isql(f"SET PASSWORD dba {new};")
        self.password = new
        return self

    def isql(self, sql: str) -> str:
        done = subprocess.run(
            ["isql-vt", f"127.0.0.1:{self.sql_port}", USER, self.password, f"exec={sql}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0 or "*** Error" in done.stdout + done.stderr:
            raise RuntimeError(f"isql failed: {done.stdout[-500:]} {done.stderr[-500:]}")
        return done.stdout

    def load(self, store_path: Path) -> None:
        """Every named graph of the pyoxigraph store at ``store_path``, then a checkpoint."""
        import pyoxigraph as ox
        import requests
        from requests.auth import HTTPDigestAuth

        store = ox.Store.read_only(str(store_path))
        for g in store.named_graphs():
            body = ox.serialize(
                (
                    ox.Triple(q.subject, q.predicate, q.object)
                    for q in store.quads_for_pattern(None, None, None, g)
                ),
                format=ox.RdfFormat.N_TRIPLES,
            )
            r = requests.put(
                self.gsp,
                params={"graph": g.value},
                data=body,
                headers={"Content-Type": "text/turtle; charset=utf-8"},
                auth=HTTPDigestAuth(USER, self.password),
                timeout=300,
            )
            r.raise_for_status()
        self.isql("checkpoint;")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log is not None:
            self.log.close()
