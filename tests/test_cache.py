"""The response cache (server/namkg/web/cache.py) on a real `namkg serve`: a query asked again is
answered from it, identically and without running, from its third time on (the second is kept:
the doorkeeper); one-off queries push out nothing; what may differ between runs, errors and large
bodies never are kept; a server that takes updates has none."""

from __future__ import annotations

import uuid

import pytest
import requests
from namkg.web.cache import KEY_BODY_MAX
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Server

JSON = "application/sparql-results+json"


def metric(url: str, name: str) -> int:
    """A counter's value, read by prometheus_client's own parser."""
    text = requests.get(url + "/metrics", timeout=10).text
    return int(sum(s.value for family in text_string_to_metric_families(text)
                   for s in family.samples if s.name == name))


def hits(url: str) -> int:
    return metric(url, "namkg_response_cache_hits_total")


def ran(url: str) -> int:
    """Queries the executor's workers have run."""
    return metric(url, "namkg_executor_queries_total")


def unique(query: str) -> str:
    """``query`` with a comment no other test sends, so that it starts uncached."""
    return f"# {uuid.uuid4()}\n{query}"


def post(url: str, query: str, accept: str = JSON, **kw) -> requests.Response:
    return requests.post(url + "/sparql", data={"query": query}, timeout=30,
                         headers={"Accept": accept}, **kw)


def same(a: requests.Response, b: requests.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    drop = {"date", "server"}
    assert ({k: v for k, v in a.headers.items() if k.lower() not in drop}
            == {k: v for k, v in b.headers.items() if k.lower() not in drop})


def test_a_repeated_query_is_answered_from_the_cache(live_server):
    q = unique("SELECT ?s ?p WHERE { ?s ?p ?o } ORDER BY ?s ?p LIMIT 7")
    first = post(live_server, q)
    assert first.status_code == 200 and len(first.json()["results"]["bindings"]) == 7
    h, r = hits(live_server), ran(live_server)
    second = post(live_server, q)  # asked again: run, and now kept
    same(first, second)
    assert (hits(live_server), ran(live_server)) == (h, r + 1)
    third = post(live_server, q)
    same(first, third)
    assert hits(live_server) == h + 1
    assert ran(live_server) == r + 1  # no worker ran it again


def test_one_off_queries_push_out_nothing(built_store):
    """A flood of texts asked once each (here ~2.5 MB of answers through a 1 MB cache) is
    answered but not kept: an answer asked again stays in the cache."""
    srv = Server(built_store, env={"NAMKG_RESPONSE_CACHE_MB": "1"})
    try:
        kept = unique("SELECT ?s WHERE { ?s ?p ?o } ORDER BY ?s LIMIT 3")
        for _ in range(2):
            post(srv.url, kept)
        with requests.Session() as session:
            for i in range(1000):
                r = session.post(srv.url + "/sparql", headers={"Accept": JSON}, timeout=30,
                                 data={"query": f"# one-off {i}\n"
                                                "SELECT * WHERE { ?s ?p ?o } LIMIT 10"})
                assert r.status_code == 200 and len(r.content) > 2000
        h = hits(srv.url)
        post(srv.url, kept)
        assert hits(srv.url) == h + 1
    finally:
        srv.stop()


@pytest.mark.parametrize("how", ["get", "head", "direct"])
def test_every_form_of_request_is_cached_apart(live_server, how):
    q = unique("ASK { ?s ?p ?o }")
    send = {
        "get": lambda: requests.get(live_server + "/sparql", params={"query": q},
                                    headers={"Accept": JSON}, timeout=30),
        "head": lambda: requests.head(live_server + "/sparql", params={"query": q},
                                      headers={"Accept": JSON}, timeout=30),
        "direct": lambda: requests.post(live_server + "/sparql", data=q.encode(), timeout=30,
                                        headers={"Accept": JSON,
                                                 "Content-Type": "application/sparql-query"}),
    }[how]
    first = send()
    assert first.status_code == 200
    h = hits(live_server)
    same(first, send())  # asked again: kept
    assert hits(live_server) == h
    second = send()
    same(first, second)
    assert hits(live_server) == h + 1
    if how == "head":
        assert second.content == b"" and int(second.headers["Content-Length"]) > 0


def test_each_format_is_its_own_entry(live_server):
    q = unique("SELECT ?n WHERE { BIND(42 AS ?n) }")
    as_json, as_csv = post(live_server, q), post(live_server, q, accept="text/csv")
    again_json, again_csv = post(live_server, q), post(live_server, q, accept="text/csv")
    same(as_json, again_json)
    same(as_csv, again_csv)
    assert as_csv.text.replace("\r\n", "\n") == "n\n42\n"
    assert as_json.json()["results"]["bindings"][0]["n"]["value"] == "42"


@pytest.mark.parametrize("query", [
    "SELECT (STRUUID() AS ?v) WHERE {}",
    "SELECT (UUID() AS ?v) WHERE {}",
    "SELECT (RAND() AS ?v) WHERE {}",
    "SELECT ?v WHERE { BIND(BNODE() AS ?v) }",
    "SELECT (STR(NOW()) AS ?v) WHERE {}",
])
def test_what_differs_per_run_is_run_each_time(live_server, query):
    h = hits(live_server)
    values = {post(live_server, query).json()["results"]["bindings"][0]["v"]["value"]
              for _ in range(3)}
    assert hits(live_server) == h
    if "NOW" not in query:  # NOW() may repeat within a clock tick; the hit count says enough
        assert len(values) == 3


def test_errors_are_not_cached(live_server):
    bad = unique("SELECT * WHERE { ?s ?p }")
    h = hits(live_server)
    for _ in range(2):
        assert post(live_server, bad).status_code == 400
    assert hits(live_server) == h


def test_a_large_body_is_answered_but_not_kept(live_server):
    q = unique("ASK { ?s ?p ?o }") + "\n#" + "x" * KEY_BODY_MAX
    h = hits(live_server)
    for _ in range(2):
        assert post(live_server, q).json()["boolean"] is True
    assert hits(live_server) == h


def test_the_cache_can_be_turned_off(built_store):
    srv = Server(built_store, env={"NAMKG_RESPONSE_CACHE_MB": "0"})
    try:
        q = unique("ASK { ?s ?p ?o }")
        r = ran(srv.url)
        for _ in range(3):
            assert post(srv.url, q).status_code == 200
        assert hits(srv.url) == 0 and ran(srv.url) == r + 3
    finally:
        srv.stop()


def test_a_server_that_takes_updates_has_no_cache(tmp_path):
    from .conftest import namkg

    store = tmp_path / "store"
    assert namkg("build", "--store", str(store)).returncode == 0
    token = "cache-test-token"
    srv = Server(store, env={"NAMKG_UPDATE_TOKEN": token})
    try:
        q = "SELECT (COUNT(*) AS ?n) WHERE { ?s <http://example.org/cache/p> ?o }"

        def n() -> str:
            return post(srv.url, q).json()["results"]["bindings"][0]["n"]["value"]

        assert n() == "0" and n() == "0"
        done = requests.post(srv.url + "/update", timeout=30, data=(
            "INSERT DATA { <http://example.org/cache/s> <http://example.org/cache/p> 1 }"),
            headers={"Content-Type": "application/sparql-update",
                     "Authorization": f"Bearer {token}"})
        assert done.status_code in (200, 204), done.text
        assert n() == "1" and hits(srv.url) == 0
    finally:
        srv.stop()
