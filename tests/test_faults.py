"""Faults around a real `namkg serve`: deadlines, killed workers, corrupt or missing stores,
builds killed mid-way, rebuilds picked up while serving, and concurrent or failing updates.

The process helpers read /proc (Linux): the server runs in its own session, so every process
it started (its HTTP worker, fork server, query workers) has the server's pid as session id.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pyoxigraph as ox
import pytest
import requests
from namkg.config import Config

from .conftest import ADMIN_TOKEN, NAMKG, REPO, Server, free_port, namkg

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

DEADLINE = 2.0  # s: NAMKG_QUERY_TIMEOUT of the servers started here
WORKERS = Config().query_workers  # NAMKG_QUERY_WORKERS of the servers that keep the default
# Four-way cross product of ~1.5k triples: ~5e12 rows to count, never finishes.
RUNAWAY = "SELECT (COUNT(*) AS ?c) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }"
SIMPLE = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
BUILD_TIME = ("SELECT ?t WHERE { GRAPH ?g { ?b <http://www.w3.org/ns/prov#endedAtTime> ?t } }")


# --------------------------------------------------------------------------- helpers

@contextmanager
def served(store: Path, env: dict | None = None) -> Iterator[Server]:
    """A `namkg serve` (its log drained into ``.log``) that is always stopped."""
    srv = Server(store, env=env)
    try:
        yield srv
    finally:
        srv.stop()


def proc_stat(pid: int) -> dict | None:
    """state, ppid, session and resident memory (kB) of a process, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    rss = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), 0)  # zombies have no VmRSS
    return {"state": fields[0], "ppid": int(fields[1]), "session": int(fields[3]), "rss": rss}


def tree(leader: int) -> dict[int, dict]:
    """Every live process of the session ``leader`` started (the server and its children)."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = proc_stat(int(entry))
            if info is not None and info["session"] == leader:
                procs[int(entry)] = info
    return procs


def tree_rss_mb(leader: int) -> float:
    return sum(p["rss"] for p in tree(leader).values()) / 1024


def tree_problems(leader: int) -> list[str]:
    """Zombies and orphans (a process whose parent is outside the server's tree, e.g. init)."""
    procs = tree(leader)
    problems = [f"{pid} is a zombie" for pid, p in procs.items() if p["state"] == "Z"]
    problems += [f"{pid} is orphaned (parent {p['ppid']})" for pid, p in procs.items()
                 if pid != leader and p["ppid"] not in procs]
    return problems


def health(url: str) -> dict:
    """/healthz with its details (store path, worker PIDs), as the operator sees it."""
    return requests.get(url + "/healthz", timeout=10,
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()


def wait_for(check: Callable[[], object], timeout: float = 20.0, every: float = 0.1):
    """Poll ``check`` until it returns something truthy; that value, or None at the timeout."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > end:
            return value
        time.sleep(every)


def settled(url: str, workers: int) -> dict | None:
    """Executor stats once ``workers`` are up and none is starting or busy, else None."""
    stats = health(url)["executor"]
    ok = stats["workers"] == workers and stats["starting"] == 0 and stats["busy"] == 0
    return stats if ok else None


def settled_tree(server: Server, workers: int) -> dict[int, dict]:
    """The process tree once the executor is settled and every killed worker is reaped."""
    stats = wait_for(lambda: settled(server.url, workers))
    assert stats, f"workers not restored: {health(server.url)['executor']}"
    assert wait_for(lambda: not tree_problems(server.proc.pid)), tree_problems(server.proc.pid)
    return tree(server.proc.pid)


def sparql(url: str, query: str, timeout: float = DEADLINE + 5, **kw) -> requests.Response:
    return requests.post(url + "/sparql", data={"query": query}, timeout=timeout, **kw)


def count(url: str, query: str = SIMPLE) -> int:
    resp = sparql(url, query)
    assert resp.status_code == 200, resp.text
    [row] = resp.json()["results"]["bindings"]
    return int(next(iter(row.values()))["value"])


class Stream:
    """A thread sending simple queries until stopped; records every status."""

    def __init__(self, url: str):
        self.url, self.statuses = url, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as s:
            while not self._stop.is_set():
                try:
                    r = s.post(self.url + "/sparql", data={"query": SIMPLE},
                               timeout=DEADLINE + 5)
                    self.statuses.append(r.status_code)
                except requests.RequestException as exc:
                    self.statuses.append(type(exc).__name__)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(DEADLINE + 10)


@pytest.fixture(scope="module")
def server(built_store):
    """A read-only server with a short deadline and two query workers; no response cache,
    so that the simple queries streamed beside a runaway need the workers too."""
    env = {"NAMKG_QUERY_TIMEOUT": str(DEADLINE), "NAMKG_QUERY_WORKERS": "2",
           "NAMKG_UPDATE_TOKEN": "", "NAMKG_RESPONSE_CACHE_MB": "0"}
    with served(built_store, env) as srv:
        yield srv


# --------------------------------------------------------------------------- deadline

def test_runaway_query_is_stopped_at_the_deadline_while_others_are_served(server):
    before = settled_tree(server, 2)
    old_pids = set(health(server.url)["executor"]["pids"])
    with Stream(server.url) as stream:
        wait_for(lambda: len(stream.statuses) >= 3)
        started = time.monotonic()
        resp = sparql(server.url, RUNAWAY)
        elapsed = time.monotonic() - started
        served_meanwhile = len(stream.statuses)
    assert resp.status_code == 503, resp.text
    assert "deadline" in resp.text and resp.headers["Retry-After"].isdigit()
    assert DEADLINE - 0.1 <= elapsed <= DEADLINE + 1
    assert served_meanwhile >= 5 and set(stream.statuses) == {200}, stream.statuses[-20:]

    after = settled_tree(server, 2)
    stats = health(server.url)["executor"]
    assert stats["timeouts"] >= 1
    # The killed worker is gone (reaped, not a zombie) and one new worker replaced it.
    assert len(old_pids - set(stats["pids"])) == 1
    assert len(after) == len(before)
    assert set(before) - set(after) == old_pids - set(stats["pids"])


def test_killed_worker_fails_only_its_query(server):
    before = settled_tree(server, 2)
    crashes = health(server.url)["executor"]["crashes"]
    pids = health(server.url)["executor"]["pids"]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(sparql, server.url, RUNAWAY)
        # The worker evaluating the runaway is the one running on a CPU.
        busy = wait_for(lambda: [p for p in pids if (proc_stat(p) or {}).get("state") == "R"],
                        timeout=DEADLINE / 2, every=0.01)
        assert busy, "no query worker was seen running the query"
        os.kill(busy[0], signal.SIGKILL)
        resp = pending.result()
    assert resp.status_code == 503 and "died" in resp.text, resp.text
    assert count(server.url) > 1000  # the next request is served
    after = settled_tree(server, 2)
    stats = health(server.url)["executor"]
    assert stats["crashes"] == crashes + 1 and busy[0] not in stats["pids"]
    assert len(after) == len(before) and busy[0] not in after


def _answers(url: str) -> bool:
    try:
        return sparql(url, SIMPLE, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_killed_http_worker_is_replaced_and_its_processes_end(built_store):
    # The HTTP worker (granian's; it owns the query executor) killed with SIGKILL: the main
    # process starts a new one, which answers again; the old one's fork server and query
    # workers end with it (their parent gone): nothing of it keeps running.
    with served(built_store, {"NAMKG_QUERY_TIMEOUT": str(DEADLINE)}) as srv:
        leader = srv.proc.pid
        before = settled_tree(srv, WORKERS)
        [worker] = [pid for pid, p in before.items() if p["ppid"] == leader]
        os.kill(worker, signal.SIGKILL)
        assert wait_for(lambda: _answers(srv.url), timeout=30), "no new HTTP worker answered"
        assert count(srv.url) > 1000 and wait_for(lambda: settled(srv.url, WORKERS))

        def running(pid: int) -> bool:  # a zombie waits for init to reap it: ended
            return (proc_stat(pid) or {"state": "Z"})["state"] != "Z"

        left = wait_for(lambda: not [p for p in before if p != leader and running(p)],
                        timeout=20)
        assert left, [p for p in before if p != leader and running(p)]
        assert srv.proc.poll() is None


# --------------------------------------------------------------------------- start-up

def _garble(build: Path) -> None:
    for f in build.glob("*.sst"):
        f.write_bytes(bytes(reversed(f.read_bytes())))


def _truncate(build: Path) -> None:
    for f in build.glob("*.sst"):
        with f.open("r+b") as fh:
            fh.truncate(100)


def _empty(build: Path) -> None:
    shutil.rmtree(build)
    build.mkdir()


def _manifest(build: Path) -> None:
    (build / "CURRENT").write_text("garbage\n")


def _empty_store(build: Path) -> None:
    shutil.rmtree(build)
    ox.Store(str(build)).flush()  # a valid Oxigraph store without a single triple


CORRUPTIONS = [
    pytest.param(_empty, id="current-points-to-an-empty-dir"),
    pytest.param(_garble, id="garbled-tables"),
    pytest.param(_truncate, id="truncated-tables"),
    pytest.param(_manifest, id="garbled-CURRENT"),
    pytest.param(_empty_store, id="current-points-to-an-empty-store"),
]


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_corrupt_store_is_refused_at_start_up(built_store, tmp_path, corrupt):
    store = tmp_path / "store"
    shutil.copytree(built_store, store, symlinks=True)
    corrupt((store / "current").resolve())
    port = free_port()
    proc = subprocess.Popen([*NAMKG, "serve", "--store", str(store), "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    answered = None
    try:
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            try:  # it must never serve, not even for a moment
                answered = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
    assert answered is None, f"served a corrupt store: {answered.status_code}"
    assert proc.returncode not in (0, None)
    assert "Traceback" not in err, err[-1500:]
    assert "error:" in err and "store" in err, err[-1500:]


def test_missing_store_is_built_then_served(tmp_path):
    store = tmp_path / "fresh" / "store"
    with served(store, {"NAMKG_QUERY_TIMEOUT": str(DEADLINE)}) as srv:
        info = health(srv.url)
        assert info["status"] == "ok" and info["triples"] > 1000
        assert Path(info["store"]).parent == store / "builds"
        assert count(srv.url) == info["triples"]


@pytest.fixture(scope="module")
def stopped(built_store) -> dict:
    """A server stopped as a service manager would: SIGTERM to its main process only."""
    with served(built_store, {"NAMKG_QUERY_TIMEOUT": str(DEADLINE)}) as srv:
        assert count(srv.url) > 1000
        leader, started = srv.proc.pid, time.monotonic()
        assert len(tree(leader)) >= 4  # granian, its worker, the fork server, query workers
        os.kill(leader, signal.SIGTERM)
        code = srv.proc.wait(30)
        seconds = time.monotonic() - started
        left = wait_for(lambda: not tree(leader), timeout=10) or tree(leader)
        srv.log_reader.join(10)
        return {"code": code, "seconds": seconds, "left": left, "log": b"".join(srv.log)}


def test_sigterm_stops_every_process(stopped):
    assert stopped["code"] == 0 and stopped["seconds"] < 10
    assert stopped["left"] is True, f"left running: {stopped['left']}"


def test_shutdown_is_clean(stopped):
    assert b"SIGSEGV" not in stopped["log"] and b"Traceback" not in stopped["log"]


# --------------------------------------------------------------------------- rebuilds

def _build_time(store_dir: Path) -> str:
    st = ox.Store.read_only(str((store_dir / "current").resolve()))
    return str(next(st.query(BUILD_TIME))["t"].value)


def _served_build_time(url: str) -> str:
    resp = sparql(url, BUILD_TIME)
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]["bindings"][0]["t"]["value"]


def _kill_build_mid_write(store: Path, delay: float) -> bool:
    """Start `namkg build`, SIGKILL it ``delay`` s after it starts writing its new store (the
    write takes ~50 ms); True if it died before swapping ``current``."""
    builds = store / "builds"
    before = set(builds.iterdir())
    current = (store / "current").resolve()
    proc = subprocess.Popen([*NAMKG, "build", "--store", str(store)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: set(builds.iterdir()) - before or proc.poll() is not None,
                 timeout=60, every=0.002)
        time.sleep(delay)
        proc.kill()
    finally:
        proc.wait()
    return proc.returncode == -signal.SIGKILL and (store / "current").resolve() == current


def test_killed_build_keeps_the_old_store_and_a_rebuild_is_picked_up(tmp_path):
    store = tmp_path / "store"
    assert namkg("build", "--store", str(store)).returncode == 0
    with served(store, {"NAMKG_QUERY_TIMEOUT": str(DEADLINE)}) as srv:
        old = health(srv.url)
        old_time = _served_build_time(srv.url)
        assert old_time == _build_time(store)

        # kill -9 at a few points of writing the new store
        killed = [_kill_build_mid_write(store, delay) for delay in (0, 0.01, 0.02, 0.03)]
        assert any(killed), "every build finished before it could be killed"
        time.sleep(2.5)  # past the server's reload check
        now = health(srv.url)
        assert now["triples"] == old["triples"] and count(srv.url) == old["triples"]
        assert _served_build_time(srv.url) == _build_time(store)  # a complete build
        if all(killed):  # no build got to swap: still the very same store
            assert now["store"] == old["store"] and _served_build_time(srv.url) == old_time
        old_time = _served_build_time(srv.url)

        time.sleep(max(0.0, 1.1 - (time.time() % 1)))  # a build time that differs in seconds
        done = namkg("build", "--store", str(store))
        assert done.returncode == 0, done.stderr
        new_time = _build_time(store)
        assert new_time != old_time
        # The server reloads within its 2 s check; requests drive the check.
        picked = wait_for(lambda: _served_build_time(srv.url) == new_time, timeout=15)
        assert picked, "the server still serves the old build"
        assert health(srv.url)["store"] == str((store / "current").resolve())
        assert count(srv.url) == old["triples"]
        settled_tree(srv, WORKERS)  # the old build's workers are gone, not orphaned
        assert old["executor"]["pids"] != health(srv.url)["executor"]["pids"]


# --------------------------------------------------------------------------- updates

TOKEN = "faults-test-token"
EX = "http://example.org/faults/"
COUNT_EX = f"SELECT (COUNT(*) AS ?n) WHERE {{ ?s ?p ?o FILTER(STRSTARTS(STR(?s), '{EX}')) }}"


@pytest.fixture(scope="module")
def writable(tmp_path_factory):
    store = tmp_path_factory.mktemp("writable") / "store"
    assert namkg("build", "--store", str(store)).returncode == 0
    with served(store, {"NAMKG_QUERY_TIMEOUT": "10", "NAMKG_UPDATE_TOKEN": TOKEN}) as srv:
        yield srv


def update(url: str, text: str) -> requests.Response:
    return requests.post(url + "/update", data=text.encode(), timeout=30, headers={
        "Content-Type": "application/sparql-update", "Authorization": f"Bearer {TOKEN}"})


def test_concurrent_updates_and_queries_leave_the_store_consistent(writable):
    initial, initial_ex = count(writable.url), count(writable.url, COUNT_EX)
    writers, each = 4, 8
    insert = ('INSERT DATA {{ GRAPH <{ex}g> {{ <{ex}w{w}-{i}> <{ex}p> "{w}/{i}" . '
              '<{ex}w{w}-{i}> <{ex}q> {i} }} }}')

    def write(w: int) -> list[int]:
        return [update(writable.url, insert.format(ex=EX, w=w, i=i)).status_code
                for i in range(each)]

    def read(_: int) -> list[int]:
        seen = []
        for _ in range(each):
            resp = sparql(writable.url, COUNT_EX, timeout=30)
            seen.append(resp.status_code)
            if resp.status_code == 200:  # counts only grow, two triples at a time
                n = int(resp.json()["results"]["bindings"][0]["n"]["value"])
                seen.append(n % 2 == 0 and initial_ex <= n <= initial_ex + 2 * writers * each)
        return seen

    with ThreadPoolExecutor(writers + 2) as pool:
        writing = [pool.submit(write, w) for w in range(writers)]
        reading = [pool.submit(read, r) for r in range(2)]
        wrote = [f.result() for f in writing]
        reads = [x for f in reading for x in f.result()]
    assert all(s == 204 for w in wrote for s in w), wrote
    assert all(x in (200, True) for x in reads), reads
    assert count(writable.url, COUNT_EX) == initial_ex + 2 * writers * each
    assert count(writable.url) == initial + 2 * writers * each
    values = sparql(writable.url, f'SELECT ?v WHERE {{ ?s <{EX}p> ?v }}').json()
    got = sorted(b["v"]["value"] for b in values["results"]["bindings"])
    assert got == sorted(f"{w}/{i}" for w in range(writers) for i in range(each))


@pytest.mark.parametrize("second", [
    pytest.param("INSERT DATA { <http://example.org/faults/x> <http://example.org/faults/p> ",
                 id="syntax-error"),
    pytest.param("CREATE GRAPH <https://w3id.org/nam-kg/graph/facts>", id="evaluation-error"),
])
def test_failing_update_changes_nothing(writable, second):
    before = count(writable.url)
    first = f'INSERT DATA {{ GRAPH <{EX}g> {{ <{EX}atomic> <{EX}p> "first" }} }}'
    resp = update(writable.url, f"{first} ;\n{second}")
    assert resp.status_code == 400, resp.text
    assert count(writable.url) == before
    assert count(writable.url, f"SELECT (COUNT(*) AS ?n) {{ <{EX}atomic> ?p ?o }}") == 0
    assert update(writable.url, first).status_code == 204  # the first part alone is fine
    assert count(writable.url) == before + 1
    assert update(writable.url, f"DELETE DATA {{ GRAPH <{EX}g> {{ <{EX}atomic> <{EX}p> "
                                f'"first" }} }}').status_code == 204
