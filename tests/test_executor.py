"""The query executor with real worker processes on a real on-disk store."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyoxigraph as ox
import pytest
from namkg.query.backend import (
    Busy,
    NotAcceptable,
    QueryError,
    QuerySyntaxError,
    QueryTimeout,
    UpdateRefused,
    WorkerCrashed,
)
from namkg.query.executor import Executor
from namkg.query.schedule import NICE_STEPS

EX = "http://ex/"
GRAPHS = [EX + "g0", EX + "g1", EX + "g2"]
N = 300  # quads: s{i} ex:p "v{i}" in graph g{i % 3}
JSON, XML = "application/sparql-results+json", "application/sparql-results+xml"
CSV, TSV = "text/csv", "text/tab-separated-values"
TURTLE, NT, NQ = "text/turtle", "application/n-triples", "application/n-quads"
RUNAWAY = ("SELECT (COUNT(*) AS ?c) WHERE "
           "{ ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l . ?m ?n ?o }")
COUNT = "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"
REPO = Path(__file__).resolve().parent.parent


def make_store(path: Path, n: int = N, tag: str = "v") -> Path:
    store = ox.Store(str(path))
    store.bulk_extend(
        ox.Quad(ox.NamedNode(f"{EX}s{i}"), ox.NamedNode(EX + "p"), ox.Literal(f"{tag}{i}"),
                ox.NamedNode(GRAPHS[i % 3]))
        for i in range(n))
    store.add(ox.Quad(ox.NamedNode(EX + "s0"), ox.NamedNode(EX + "label"),
                      ox.Literal("tab\tnew\nline \"q\" أذربيجان", language="ar"),
                      ox.NamedNode(GRAPHS[0])))
    store.add(ox.Quad(ox.BlankNode("b1"), ox.NamedNode(EX + "p"), ox.Literal("blank"),
                      ox.NamedNode(GRAPHS[1])))
    store.flush()
    del store  # release RocksDB's lock before workers open it read-only
    return path


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("executor-store"))


@pytest.fixture(scope="module")
def reference(store_path):
    """The same store opened in-process: the truth to compare worker answers with."""
    return ox.Store.read_only(str(store_path))


@pytest.fixture()
def executors():
    """Make executors; all are closed after the test."""
    made: list[Executor] = []

    def make(path, **kw) -> Executor:
        ex = Executor(path, **kw)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.close()


@pytest.fixture(scope="module")
def ex(store_path):
    with Executor(store_path, workers=2, timeout=10, result_limit=1000) as e:
        yield e


def ask(e: Executor, q: str, **kw):
    return e.query(q, solutions_format=JSON, graph_format=TURTLE, **kw)


def number(result) -> int:
    return int(json.loads(result.body)["results"]["bindings"][0]["n"]["value"])


# --- processes, read from /proc ------------------------------------------------------------

def ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[1]), fields[0]


def children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = ppid_and_state(int(entry))
            if info and info[0] == pid:
                out.add(int(entry))
    return out


def gone(pid: int) -> bool:
    """Exited and reaped (no zombie)."""
    return ppid_and_state(pid) is None


def dead(pid: int) -> bool:
    info = ppid_and_state(pid)
    return info is None or info[1] == "Z"


def exited(pid: int) -> bool:
    """Dead with all its threads gone, so its files (its end of a pipe) are closed: a
    multithreaded process's leader shows "Z" while its other threads may still be exiting."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    return dead(pid) and tasks == [str(pid)]


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def forkserver_of(e: Executor) -> int:
    return ppid_and_state(e.stats()["pids"][0])[0]


# --- result kinds and formats -------------------------------------------------------------

@pytest.mark.parametrize("media", [JSON, XML, TSV])
def test_select_in_parseable_formats(ex, reference, media):
    q = "SELECT ?s ?o WHERE { ?s ?p ?o } ORDER BY ?s ?o"
    r = ex.query(q, solutions_format=media, graph_format=None)
    fmt = ox.QueryResultsFormat.from_media_type(media)
    assert (r.kind, r.media_type, r.truncated) == ("solutions", fmt.media_type, False)
    got = [(str(row["s"]), str(row["o"])) for row in ox.parse_query_results(r.body, fmt)]
    want = [(str(row["s"]), str(row["o"]))
            for row in reference.query(q, use_default_graph_as_union=True)]
    assert got == want and r.count == len(want) == N + 2


def test_select_csv(ex):
    r = ex.query(f"SELECT ?o WHERE {{ <{EX}s0> <{EX}label> ?o }}", solutions_format=CSV,
                 graph_format=None)
    rows = list(csv.reader(io.StringIO(r.body.decode())))
    assert rows == [["o"], ["tab\tnew\nline \"q\" أذربيجان"]]
    assert r.media_type.startswith("text/csv") and r.count == 1


@pytest.mark.parametrize("media", [JSON, XML, CSV, TSV])
def test_ask(ex, media):
    yes = ex.query('ASK { ?s ?p "v7" }', solutions_format=media, graph_format=None)
    no = ex.query('ASK { ?s ?p "nope" }', solutions_format=media, graph_format=None)
    assert yes.kind == "boolean" and yes.count is None and not yes.truncated
    assert b"true" in yes.body.lower() and b"false" in no.body.lower()


@pytest.mark.parametrize("media", [TURTLE, NT, "application/rdf+xml", "application/ld+json",
                                   NQ, "application/trig"])
def test_construct_in_every_format(ex, reference, media):
    q = f"CONSTRUCT {{ ?s <{EX}q> ?o }} WHERE {{ ?s <{EX}p> ?o }}"
    r = ex.query(q, solutions_format=None, graph_format=media)
    fmt = ox.RdfFormat.from_media_type(media)
    assert (r.kind, r.media_type, r.count, r.truncated) == ("graph", fmt.media_type, N + 1,
                                                            False)
    got = {(str(q.subject), str(q.object)) for q in ox.parse(r.body, fmt)
           if not isinstance(q.subject, ox.BlankNode)}
    want = {(str(t.subject), str(t.object)) for t in
            reference.query(q, use_default_graph_as_union=True)
            if not isinstance(t.subject, ox.BlankNode)}
    assert got == want and len(want) == N


def test_describe(ex):
    r = ex.query(f"DESCRIBE <{EX}s0>", solutions_format=JSON, graph_format=NT)
    assert r.kind == "graph" and r.count == 2
    assert f"<{EX}s0> <{EX}label> ".encode() in r.body


def test_union_default_graph_versus_explicit_graphs(ex):
    assert number(ask(ex, COUNT)) == N + 2  # every named graph, as one default graph
    assert number(ask(ex, COUNT, default_graphs=[GRAPHS[1]])) == N // 3 + 1
    assert number(ask(ex, COUNT, default_graphs=GRAPHS[:2])) == 2 * N // 3 + 2
    assert number(ask(ex, COUNT, default_graphs=[EX + "none"])) == 0
    assert number(ask(ex, COUNT, default_graphs=[])) == 0  # the protocol's empty default graph
    # FROM in the query picks its own default graph when the caller does not.
    assert number(ask(ex, f"SELECT (COUNT(*) AS ?n) FROM <{GRAPHS[2]}> {{ ?s ?p ?o }}")) == N // 3
    graphs = "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?g"
    names = lambda r: [b["g"]["value"] for b in json.loads(r.body)["results"]["bindings"]]  # noqa: E731
    assert names(ask(ex, graphs)) == GRAPHS
    assert names(ask(ex, graphs, named_graphs=[GRAPHS[2]])) == [GRAPHS[2]]
    assert names(ask(ex, graphs, named_graphs=[])) == []


def test_base_iri(ex):
    r = ask(ex, "SELECT (<x> AS ?n) {}", base_iri=EX)
    assert json.loads(r.body)["results"]["bindings"][0]["n"]["value"] == EX + "x"


def test_syntax_error_carries_the_parser_message(ex):
    bad = "SELECT ?s WHERE { ?s ?p }"
    with pytest.raises(SyntaxError) as expected:
        ox.Store().query(bad)
    with pytest.raises(QuerySyntaxError) as err:
        ask(ex, bad)
    assert err.value.status == 400 and err.value.message == str(expected.value)
    assert ex.stats()["workers"] == 2  # a bad query costs no worker


def test_no_acceptable_format(ex):
    with pytest.raises(NotAcceptable) as err:
        ex.query("SELECT * { ?s ?p ?o }", solutions_format=None, graph_format=TURTLE)
    assert err.value.status == 406
    with pytest.raises(NotAcceptable):
        ex.query("ASK {}", solutions_format=None, graph_format=TURTLE)
    with pytest.raises(NotAcceptable):
        ex.query("CONSTRUCT WHERE { ?s ?p ?o }", solutions_format=JSON, graph_format=None)
    with pytest.raises(ValueError):
        ex.query("ASK {}", solutions_format="text/x-unknown", graph_format=None)


def test_evaluation_error_is_a_query_error(ex):
    with pytest.raises(QueryError) as err:
        ask(ex, "SELECT * { SERVICE ?unbound { ?s ?p ?o } }")
    assert err.value.status == 400 and "unbound" in err.value.message


def test_many_threads_at_once(ex):
    errors, answers = [], []

    def client(k):
        try:
            for i in range(15):
                r = ask(ex, f'SELECT ?s WHERE {{ ?s <{EX}p> "v{k * 15 + i}" }}')
                answers.append(json.loads(r.body)["results"]["bindings"][0]["s"]["value"]
                               == f"{EX}s{k * 15 + i}")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and answers == [True] * 120


# --- result cap -------------------------------------------------------------------------

def test_results_are_cut_at_the_limit_never_silently(store_path, executors):
    e = executors(store_path, workers=1, result_limit=10)
    for media in (JSON, XML, CSV, TSV):
        r = e.query("SELECT * { ?s ?p ?o }", solutions_format=media, graph_format=None)
        assert (r.count, r.truncated) == (10, True)
        if media != CSV:
            fmt = ox.QueryResultsFormat.from_media_type(media)
            assert len(list(ox.parse_query_results(r.body, fmt))) == 10
    exact = e.query("SELECT * { ?s ?p ?o } LIMIT 10", solutions_format=JSON, graph_format=None)
    assert (exact.count, exact.truncated) == (10, False)
    assert len(json.loads(exact.body)["results"]["bindings"]) == 10
    fewer = e.query("SELECT * { ?s ?p ?o } LIMIT 3", solutions_format=TSV, graph_format=None)
    assert (fewer.count, fewer.truncated) == (3, False)
    graph = e.query("CONSTRUCT WHERE { ?s ?p ?o }", solutions_format=None, graph_format=NQ)
    assert (graph.count, graph.truncated) == (10, True)
    assert len(list(ox.parse(graph.body, ox.RdfFormat.N_QUADS))) == 10
    # The cap also stops evaluation: a huge result is cut, not computed in full.
    big = e.query("SELECT * { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }", solutions_format=JSON,
                  graph_format=None, timeout=5)
    assert (big.count, big.truncated) == (10, True)


# --- deadline, crashes, busy ------------------------------------------------------------

def test_runaway_query_is_killed_at_the_deadline(store_path, executors):
    e = executors(store_path, workers=2, timeout=10)
    before = set(e.stats()["pids"])
    fork_server = forkserver_of(e)
    others_before = children(fork_server) - before  # workers of other executors
    simple, stop = [], threading.Event()

    def keep_querying():
        while not stop.is_set():
            simple.append(number(ask(e, COUNT, default_graphs=[GRAPHS[0]])))

    side = threading.Thread(target=keep_querying)
    side.start()
    started = time.monotonic()
    try:
        with pytest.raises(QueryTimeout) as err:
            ask(e, RUNAWAY, timeout=1)
        elapsed = time.monotonic() - started
        time.sleep(0.3)  # the side thread keeps being served meanwhile
    finally:
        stop.set()
        side.join()
    assert err.value.status == 503 and "1 s" in err.value.message
    assert 1 <= elapsed < 2.5
    assert simple and set(simple) == {N // 3 + 1}
    assert wait_for(lambda: e.stats()["workers"] == 2)
    stats = e.stats()
    assert stats["timeouts"] == 1 and stats["crashes"] == 0 and stats["busy"] == 0
    killed = before - set(stats["pids"])
    assert len(killed) == 1 and wait_for(lambda: all(gone(p) for p in killed))
    # Nothing left beyond the pools: the fork server's children are exactly the workers.
    assert wait_for(lambda: children(fork_server) - others_before == set(stats["pids"]))
    assert number(ask(e, COUNT)) == N + 2


def test_killed_worker_fails_only_its_query(store_path, executors):
    e = executors(store_path, workers=1, timeout=30)
    [pid] = e.stats()["pids"]
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(pytest.raises(WorkerCrashed, ask, e,
                                                                     RUNAWAY)))
    t.start()
    assert wait_for(lambda: e.stats()["busy"] == 1)
    time.sleep(0.2)  # let it get into the query
    os.kill(pid, signal.SIGKILL)
    t.join(10)
    assert not t.is_alive() and outcome and outcome[0].value.status == 503
    assert number(ask(e, COUNT)) == N + 2  # served by the replacement
    stats = e.stats()
    assert stats["crashes"] == 1 and stats["pids"] != [pid] and stats["workers"] == 1


def test_worker_dead_while_idle_is_replaced_and_the_query_answered(store_path, executors):
    # No poll before each use: a dead idle worker is found by its closed pipe when asked,
    # and the query goes to another worker, not back to the client as a crash.
    e = executors(store_path, workers=2, timeout=30)
    before = e.stats()
    for pid in before["pids"]:
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: all(map(exited, before["pids"])))
    assert number(ask(e, COUNT)) == N + 2
    stats = e.stats()
    assert stats["crashes"] >= 1 and stats["queries"] == before["queries"] + 1
    assert not set(stats["pids"]) & set(before["pids"])


def test_memory_hungry_query_kills_only_its_worker(store_path, executors):
    e = executors(store_path, workers=1, timeout=20, memory_mb=1024)
    binds = " ".join(f"BIND(CONCAT(?x{i}, ?x{i}) AS ?x{i + 1})" for i in range(34))
    with pytest.raises(WorkerCrashed):  # 10 bytes doubled 34 times: far over the cap
        ask(e, f'SELECT (STRLEN(?x34) AS ?n) {{ BIND("0123456789" AS ?x0) {binds} }}')
    assert number(ask(e, COUNT)) == N + 2


def test_memory_cap_applies_to_workers(store_path):
    with pytest.raises(RuntimeError, match="query worker"):
        Executor(store_path, workers=1, memory_mb=16)  # too little to even open the store


def test_busy_when_no_worker_frees_up(store_path, executors):
    e = executors(store_path, workers=1, timeout=10, burst=0)
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(
        pytest.raises(QueryTimeout, ask, e, RUNAWAY, timeout=2)))
    t.start()
    assert wait_for(lambda: e.stats()["busy"] == 1)
    with pytest.raises(Busy) as err:
        ask(e, COUNT, timeout=0.3)
    assert err.value.status == 503 and err.value.retry_after >= 1
    t.join()
    assert outcome and number(ask(e, COUNT)) == N + 2


def runaways(e: Executor, n: int, timeout: float) -> list[threading.Thread]:
    threads = [threading.Thread(target=pytest.raises, args=(QueryTimeout, ask, e, RUNAWAY),
                                kwargs={"timeout": timeout}) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def niced(e: Executor) -> list[int]:
    """Workers running at a lowered CPU priority."""
    found = []
    for pid in e.stats()["pids"]:
        try:
            if os.getpriority(os.PRIO_PROCESS, pid) > 0:
                found.append(pid)
        except ProcessLookupError:
            pass
    return found


def test_long_queries_leave_workers_for_quick_ones(store_path, executors):
    e = executors(store_path, workers=2, timeout=10)  # burst: 2 extra workers
    long = runaways(e, 2, timeout=3)
    assert wait_for(lambda: e.stats()["long"] == 2)
    assert wait_for(lambda: e.stats()["workers"] == 4)  # 2 extra beside the 2 long ones
    for _ in range(20):  # quick queries never wait for the runaways
        assert number(ask(e, COUNT, timeout=1)) == N + 2
    # A query that burns CPU loses priority; quick ones keep the normal one.
    assert wait_for(lambda: len(niced(e)) == 2, timeout=5)
    busy = niced(e)
    for t in long:
        t.join()
    assert wait_for(lambda: e.stats()["workers"] == 2)  # back to size: the extras retire
    stats = e.stats()
    assert stats["timeouts"] == 2 and stats["long"] == 0 and stats["busy"] == 0
    assert wait_for(lambda: all(gone(p) for p in busy))


def test_without_burst_long_queries_take_every_worker(store_path, executors):
    # The regression the burst fixes: two runaways left no worker for a quick query.
    e = executors(store_path, workers=2, timeout=10, burst=0)
    long = runaways(e, 2, timeout=2)
    assert wait_for(lambda: e.stats()["long"] == 2)
    with pytest.raises(Busy):
        ask(e, COUNT, timeout=0.5)
    for t in long:
        t.join()
    assert number(ask(e, COUNT)) == N + 2



# Finishes, but burns ~0.4 s of CPU: well past the first demotion step (0.05 s).
# About 0.5 s of CPU: several of the executor's 50 ms checks see it running, so its demotion
# is seen whatever the machine's speed (at 0.15 s it could finish between two checks).
HEAVY = ("SELECT (COUNT(*) AS ?c) WHERE { ?a ?b ?c . ?d ?e ?f . "
         "FILTER(SHA512(CONCAT(STR(?c), STR(?f))) != SHA256(CONCAT(STR(?f), STR(?c)))) "
         "FILTER(SHA384(CONCAT(STR(?f), STR(?c), STR(?f))) != SHA1(STR(?c))) "
         "FILTER(SHA512(CONCAT(STR(?c), STR(?c), STR(?f))) != MD5(STR(?f))) }")


def highest_nice_while(e: Executor, query: str) -> int:
    """Run ``query``; the highest nice value any worker had meanwhile (sampled)."""
    t = threading.Thread(target=ask, args=(e, query))
    t.start()
    seen = 0
    while t.is_alive():
        for pid in e.stats()["pids"]:
            try:
                seen = max(seen, os.getpriority(os.PRIO_PROCESS, pid))
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    t.join()
    return seen


def test_a_query_that_finished_before_keeps_its_priority(store_path, executors):
    # The load-test regression: a known ORDER BY over the whole store was demoted like a
    # runaway and starved. A text that finished before gets twice its cost as grace.
    e = executors(store_path, workers=1, timeout=20)
    assert e.known_cost(HEAVY) is None
    assert highest_nice_while(e, HEAVY) > 0  # unknown: demoted by the CPU it burns
    assert e.known_cost(HEAVY) > NICE_STEPS[0][0]
    assert highest_nice_while(e, HEAVY) == 0  # known: within its grace


def test_costs_are_forgotten_on_timeout_and_reload(store_path, tmp_path, executors):
    e = executors(store_path, workers=2, timeout=10)  # (one alone is always "crowded")
    ask(e, HEAVY)
    assert e.known_cost(HEAVY) > 0
    # A worker idle first: with none, a query known to need more than its time left is
    # refused at once (Busy) rather than queued, which is not what this test is about.
    settled(e)
    with pytest.raises(QueryTimeout):
        ask(e, HEAVY, timeout=0.02)
    assert e.known_cost(HEAVY) is None  # slower than remembered: no grace any more
    settled(e)  # (a runaway's text is run again only while a worker is idle)
    ask(e, HEAVY)
    assert e.known_cost(HEAVY) > 0
    ask(e, COUNT)
    assert e.known_cost(COUNT) is None  # cheap: not worth remembering
    e.reload(make_store(tmp_path / "other", n=30))
    assert e.known_cost(HEAVY) is None  # measured on other data


def settled(e: Executor) -> None:
    """Wait until no worker is starting or busy, and one is idle."""
    end = time.monotonic() + 30
    while time.monotonic() < end and not (e.stats()["starting"] == 0 and e.stats()["busy"] == 0
                                          and e.stats()["workers"] >= 1):
        time.sleep(0.01)

# --- updates ----------------------------------------------------------------------------

def test_update_on_read_only_is_refused(ex):
    with pytest.raises(UpdateRefused) as err:
        ex.update(f"INSERT DATA {{ <{EX}a> <{EX}b> <{EX}c> }}")
    assert err.value.status == 403
    assert number(ask(ex, COUNT)) == N + 2


def test_update_on_writable_store(tmp_path, executors):
    e = executors(make_store(tmp_path / "rw"), workers=4, writable=True)
    assert e.stats()["workers"] == 1  # one writer only
    e.update(f"INSERT DATA {{ GRAPH <{EX}new> {{ <{EX}a> <{EX}b> <{EX}c> }} }}")
    assert number(ask(e, COUNT)) == N + 3
    with pytest.raises(QueryError) as err:  # the second operation fails: nothing is written
        e.update(f"INSERT DATA {{ GRAPH <{EX}new> {{ <{EX}x> <{EX}y> <{EX}z> }} }} ;"
                 f"CREATE GRAPH <{EX}new>")
    assert err.value.status == 400 and "already exists" in err.value.message
    with pytest.raises(QuerySyntaxError):
        e.update("INSERT DATA { oops")
    assert number(ask(e, COUNT)) == N + 3
    assert number(ask(e, COUNT, default_graphs=[EX + "new"])) == 1


# --- reload and shutdown ----------------------------------------------------------------

def test_reload_serves_the_new_store(store_path, tmp_path, executors):
    e = executors(store_path, workers=2)
    old = set(e.stats()["pids"])
    e.reload(make_store(tmp_path / "other", n=30, tag="w"))
    assert number(ask(e, COUNT)) == 32
    assert set(e.stats()["pids"]).isdisjoint(old) and e.stats()["workers"] == 2
    assert wait_for(lambda: all(gone(p) for p in old))
    with pytest.raises(RuntimeError):
        e.reload(tmp_path / "missing" / "store")  # a bad path keeps the current store
    assert number(ask(e, COUNT)) == 32


def test_close_leaves_no_child_processes(store_path):
    e = Executor(store_path, workers=3)
    pids = e.stats()["pids"]
    fork_server = forkserver_of(e)
    assert set(pids) <= children(fork_server)
    print(f"\nworker start-up: {e.spawn_seconds * 1000:.0f} ms")
    e.close()
    assert all(gone(p) for p in pids)  # killed and reaped by close() itself
    assert not set(pids) & children(fork_server)
    with pytest.raises(QueryError):
        ask(e, COUNT)
    e.close()  # idempotent


def test_workers_die_with_their_parent(store_path):
    script = textwrap.dedent(f"""
        import sys, time
        from namkg.query.executor import Executor
        e = Executor({str(store_path)!r}, workers=2)
        print(*e.stats()["pids"], flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and not any(gone(p) for p in pids)
    finally:
        proc.kill()  # no atexit, no close(): only the kernel and EOFs can clean up
        proc.wait()
    # Reparented workers are reaped by init, which in a container may leave zombies.
    assert wait_for(lambda: all(dead(p) for p in pids), timeout=10)
