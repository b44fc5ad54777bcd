"""Load: 16 clients for 20 s against a real server, 95% ordinary queries and 5% runaways.

Every ordinary query must succeed with the same answer it gets on an idle server, every
runaway must be stopped with the timeout status, and afterwards the server must be alive
with its workers restored, no stray processes, and its memory back near where it started.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import requests
from namkg.config import Config

from .conftest import REPO
from .test_faults import RUNAWAY, health, served, settled_tree, tree_problems, tree_rss_mb

CLIENTS = 16
SECONDS = 20.0
RUNAWAY_SHARE = 0.05
DEADLINE = 2.0  # NAMKG_QUERY_TIMEOUT of the server under load
WORKERS = Config().query_workers  # NAMKG_QUERY_WORKERS: the default
SIMPLE = [
    "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }",
    "ASK { ?s a ?type }",
    "SELECT ?s ?label WHERE { ?s <http://www.w3.org/2000/01/rdf-schema#label> ?label } "
    "ORDER BY ?s ?label LIMIT 20",
    "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?g",
    "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o } ORDER BY ?s ?p ?o LIMIT 30",
]
ORDINARY = [p.read_text("utf-8") for p in sorted((REPO / "queries").glob("*.rq"))] + SIMPLE


@dataclass
class Outcome:
    kind: str  # "ordinary" | "runaway"
    status: int | str  # HTTP status, or the exception's name
    seconds: float
    same: bool | None = None  # an ordinary answer equal to the idle server's
    detail: str = ""


def _post(session: requests.Session, url: str, query: str) -> requests.Response:
    # Ordinary queries may wait up to a deadline for a worker, then run up to another one.
    return session.post(url + "/sparql", data={"query": query}, timeout=2 * DEADLINE + 5,
                        headers={"Accept": "application/sparql-results+json, text/turtle"})


def _client(url: str, seed: int, until: float, baseline: dict[str, bytes],
            out: list[Outcome]) -> None:
    rng = random.Random(seed)
    with requests.Session() as session:
        while time.monotonic() < until:
            runaway = rng.random() < RUNAWAY_SHARE
            query = RUNAWAY if runaway else rng.choice(ORDINARY)
            started = time.monotonic()
            try:
                resp = _post(session, url, query)
            except requests.RequestException as exc:
                out.append(Outcome("runaway" if runaway else "ordinary", type(exc).__name__,
                                   time.monotonic() - started))
                continue
            elapsed = time.monotonic() - started
            if runaway:
                out.append(Outcome("runaway", resp.status_code, elapsed, detail=resp.text[:80]))
            else:
                out.append(Outcome("ordinary", resp.status_code, elapsed,
                                   resp.content == baseline[query], resp.text[:80]))


def _summary(outcomes: list[Outcome]) -> str:
    lines = []
    for kind in ("ordinary", "runaway"):
        mine = [o for o in outcomes if o.kind == kind]
        statuses = Counter(o.status for o in mine)
        times = sorted(o.seconds for o in mine) or [0.0]
        details = Counter(o.detail.split("\n")[0] for o in mine if o.status != 200)
        lines.append(f"{kind}: {len(mine)} requests, statuses {dict(statuses)}, "
                     f"median {times[len(times) // 2]:.3f} s, max {times[-1]:.3f} s, "
                     f"errors {dict(details)}")
    return "\n".join(lines)


@dataclass
class Run:
    outcomes: list[Outcome]
    summary: str
    before_procs: dict
    before_mb: float


@pytest.fixture(scope="module")
def server(built_store):
    # Response cache off: every ordinary query must run beside the runaways (with the cache,
    # repeats skip the query workers and the test would be easier than the worst case).
    env = {"NAMKG_QUERY_TIMEOUT": str(DEADLINE), "NAMKG_QUERY_WORKERS": str(WORKERS),
           "NAMKG_UPDATE_TOKEN": "", "NAMKG_RESPONSE_CACHE_MB": "0"}
    with served(built_store, env) as srv:
        yield srv


@pytest.fixture(scope="module")
def run(server) -> Run:
    """The 20 s load, run once; each test below checks one property of it."""
    url = server.url
    with requests.Session() as s:  # the idle server's answers, and a warm-up
        baseline = {q: _post(s, url, q).content for q in ORDINARY}
    assert all(b and not b.startswith(b"Traceback") for b in baseline.values())
    before_procs = settled_tree(server, WORKERS)
    before_mb = tree_rss_mb(server.proc.pid)

    outcomes: list[Outcome] = []
    until = time.monotonic() + SECONDS
    clients = [threading.Thread(target=_client, args=(url, seed, until, baseline, outcomes))
               for seed in range(CLIENTS)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(SECONDS + 4 * DEADLINE + 20)
    assert not any(c.is_alive() for c in clients), "a client hangs"
    summary = _summary(outcomes)
    print(summary)
    assert len([o for o in outcomes if o.kind == "ordinary"]) > 100, summary
    assert any(o.kind == "runaway" for o in outcomes), summary
    return Run(outcomes, summary, before_procs, before_mb)


def test_every_runaway_is_stopped_with_the_timeout_status(run):
    runaways = [o for o in run.outcomes if o.kind == "runaway"]
    assert all(o.status == 503 and o.seconds <= DEADLINE + 1 for o in runaways), run.summary


def test_ordinary_answers_are_never_wrong(run):
    # Whatever else happens, a 200 carries the idle server's answer (no crossed replies).
    answered = [o for o in run.outcomes if o.kind == "ordinary" and o.status == 200]
    assert answered and all(o.same for o in answered), run.summary


def test_no_ordinary_query_fails(run):
    failed = [o for o in run.outcomes if o.kind == "ordinary" and o.status != 200]
    assert not failed, f"{len(failed)} ordinary queries failed\n{run.summary}"


def test_server_recovers_its_workers_processes_and_memory(server, run):
    leader = server.proc.pid
    after_procs = settled_tree(server, WORKERS)  # alive, workers restored, every kill reaped
    assert len(after_procs) == len(run.before_procs) and not tree_problems(leader)
    runaways = [o for o in run.outcomes if o.kind == "runaway"]
    # Every query that was given a worker and ran out of time was counted and killed.
    stopped = sum("deadline" in o.detail for o in run.outcomes)
    assert stopped >= sum("deadline" in o.detail for o in runaways) > 0
    assert health(server.url)["executor"]["timeouts"] == stopped, run.summary
    after_mb = tree_rss_mb(leader)
    assert after_mb <= max(run.before_mb + 50, run.before_mb * 1.5), (run.before_mb, after_mb)
