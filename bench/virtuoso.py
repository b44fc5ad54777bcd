"""A throwaway Virtuoso (Debian's ``virtuoso-opensource-7-bin``: ``virtuoso-t``, ``isql-vt``):
its own database in a scratch directory, loopback ports only, a random dba password. The
benchmarks run it tuned as its documentation recommends (``Tuning.documented``); the tests
start it through tests/virtuoso.py with their own small ``Tuning``.

The documented settings, and where they come from:

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

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

USER = "dba"


@dataclass(frozen=True)
class Tuning:
    """The ini values that differ between uses; a None leaves the line out (Virtuoso's default).

    >>> Tuning.documented(clients=32).describe().split(", ")[:3]
    ['HTTP ServerThreads 36', 'MaxKeepAlives 64', 'KeepAliveTimeout 10 s']
    >>> Tuning(threads=10, buffers=10_000, dirty_buffers=6_000, max_rows=1000).describe()
    'HTTP ServerThreads 10, NumberOfBuffers 10,000, MaxDirtyBuffers 6,000'
    """

    threads: int  # MaxClientConnections (SQL, HTTP) and HTTP ServerThreads
    buffers: int  # NumberOfBuffers (8 KB pages)
    dirty_buffers: int  # MaxDirtyBuffers
    max_rows: int  # [SPARQL] ResultSetMaxRows: longer answers are cut there
    keepalives: int | None = None  # [HTTPServer] MaxKeepAlives
    keepalive_timeout_s: int | None = None  # [HTTPServer] KeepAliveTimeout
    threads_per_query: int | None = None  # ThreadsPerQuery
    async_threads: int | None = None  # AsyncQueueMaxThreads

    @classmethod
    def documented(cls, clients: int) -> Tuning:
        """As Virtuoso's documentation recommends for ``clients`` concurrent clients (above)."""
        cores = os.cpu_count() or 1
        return cls(threads=clients + 4, keepalives=2 * clients, keepalive_timeout_s=10,
                   buffers=170_000, dirty_buffers=130_000, threads_per_query=cores,
                   async_threads=max(1, cores * 3 // 2), max_rows=1_000_000)

    def describe(self) -> str:
        """The settings that matter for speed, for a report."""
        parts = [f"HTTP ServerThreads {self.threads}",
                 self.keepalives and f"MaxKeepAlives {self.keepalives}",
                 self.keepalive_timeout_s and f"KeepAliveTimeout {self.keepalive_timeout_s} s",
                 f"NumberOfBuffers {self.buffers:,}", f"MaxDirtyBuffers {self.dirty_buffers:,}",
                 self.threads_per_query and f"ThreadsPerQuery {self.threads_per_query}"]
        return ", ".join(p for p in parts if p)


def _die_with_parent() -> None:
    """In the child: be SIGTERMed if our process dies without stopping it (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Virtuoso:
    """One ``virtuoso-t`` in its own process group; ``stop()`` leaves no orphans.

    ``url`` is the public, read-only SPARQL endpoint; ``sparql_auth`` (updates) and
    ``gsp_auth`` (Graph Store Protocol) take ``auth`` by HTTP Digest. ``tuning`` defaults to
    the documented one for ``clients``.
    """

    def __init__(self, directory: Path, clients: int = 1, *, tuning: Tuning | None = None):
        self.dir = Path(directory)
        self.tuning = tuning or Tuning.documented(clients)
        self.sql_port, self.http_port = _free_port(), _free_port()
        base = f"http://127.0.0.1:{self.http_port}"
        self.url = base + "/sparql"
        self.sparql_auth = base + "/sparql-auth"
        self.gsp_auth = base + "/sparql-graph-crud-auth"
        self.password = "dba"  # the default until start() changes it
        self.proc: subprocess.Popen | None = None
        self.log = None

    @property
    def auth(self) -> tuple[str, str]:
        return USER, self.password

    def settings(self) -> str:
        return self.tuning.describe()

    def ini(self) -> str:
        """virtuoso.ini for this server."""
        t, d = self.tuning, self.dir
        sections = {
            "Database": {
                "DatabaseFile": f"{d}/virtuoso.db", "ErrorLogFile": f"{d}/virtuoso.log",
                "LockFile": f"{d}/virtuoso.lck", "TransactionFile": f"{d}/virtuoso.trx",
                "xa_persistent_file": f"{d}/virtuoso.pxa", "ErrorLogLevel": 7,
                "FileExtend": 200, "Striping": 0, "TempStorage": "TempDatabase"},
            "TempDatabase": {
                "DatabaseFile": f"{d}/virtuoso-temp.db",
                "TransactionFile": f"{d}/virtuoso-temp.trx", "Striping": 0},
            "Parameters": {
                "ServerPort": f"127.0.0.1:{self.sql_port}", "DisableUnixSocket": 1,
                # no ServerThreads: viconfig.c reads it as MaxClientConnections (one variable)
                "DisableTcpSocket": 0, "MaxClientConnections": t.threads,
                "CheckpointInterval": 60, "CaseMode": 2,
                "AllowOSCalls": 0, "DirsAllowed": f"., {d}", "NumberOfBuffers": t.buffers,
                "MaxDirtyBuffers": t.dirty_buffers, "ThreadsPerQuery": t.threads_per_query,
                "AsyncQueueMaxThreads": t.async_threads},
            "HTTPServer": {
                "ServerPort": f"127.0.0.1:{self.http_port}", "ServerRoot": f"{d}/vsp",
                "ServerThreads": t.threads, "MaxClientConnections": t.threads,
                "MaxKeepAlives": t.keepalives, "KeepAliveTimeout": t.keepalive_timeout_s,
                "Charset": "UTF-8", "EnabledGzipContent": 0},
            "SPARQL": {
                "ResultSetMaxRows": t.max_rows, "MaxQueryExecutionTime": 60,
                "MaxQueryCostEstimationTime": 400},
        }
        return "\n".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()
                                                  if v is not None)
                         for name, keys in sections.items())

    def start(self, timeout: float = 60) -> Virtuoso:
        import requests

        (self.dir / "vsp").mkdir(parents=True, exist_ok=True)
        ini = self.dir / "virtuoso.ini"
        ini.write_text(self.ini())
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
                if requests.get(self.url, params={"query": "ASK {}"}, timeout=2).ok:
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
            capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or "*** Error" in done.stdout + done.stderr:
            raise RuntimeError(f"isql failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
        return done.stdout

    def tail(self, n: int = 2000) -> str:
        """The end of Virtuoso's own log: why it did not start, usually."""
        log = self.dir / "virtuoso.log"
        return log.read_text(errors="replace")[-n:] if log.exists() else ""

    def load(self, store_path: Path) -> None:
        """Every named graph of the pyoxigraph store at ``store_path``, then a checkpoint."""
        import pyoxigraph as ox
        import requests
        from requests.auth import HTTPDigestAuth

        store = ox.Store.read_only(str(store_path))
        for g in store.named_graphs():
            body = ox.serialize(
                (ox.Triple(q.subject, q.predicate, q.object)
                 for q in store.quads_for_pattern(None, None, None, g)),
                format=ox.RdfFormat.N_TRIPLES)
            r = requests.put(self.gsp_auth, params={"graph": g.value}, data=body,
                             headers={"Content-Type": "text/turtle; charset=utf-8"},
                             auth=HTTPDigestAuth(*self.auth), timeout=300)
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
            self.log = None
