"""SERVICE / LOAD refusal and nesting limits, checked against what pyoxigraph really does.

The refusal cases are run through pyoxigraph with a real HTTP server on loopback as the
"remote endpoint": where pyoxigraph actually calls it, the check must refuse. That keeps the
table honest (a case that pyoxigraph would not execute proves nothing about the lexer).
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pyoxigraph as ox
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from namkg.query.messages import SyntaxFault, query_job
from namkg.query.results import answer
from namkg.query.safety import (
    UnsafeQuery,
    cannot_offend,
    check_query,
    check_update,
    declares_dataset,
    read_all,
    resolve,
)
from namkg.query.wdqs import to_local

REPO = Path(__file__).resolve().parent.parent
WIKIDATA = "https://query.wikidata.org/sparql"


class Endpoint(http.server.BaseHTTPRequestHandler):
    """A SPARQL endpoint that answers one empty solution and counts its callers."""

    calls = 0
    body = b'{"head":{"vars":[]},"results":{"bindings":[{}]}}'

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).calls += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/sparql-results+json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def remote():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def store():
    s = ox.Store()
    s.add(ox.Quad(ox.NamedNode("http://ex/s"), ox.NamedNode("http://ex/p"),
                  ox.NamedNode("http://ex/o")))
    return s


def calls_remote(store, query: str) -> bool:
    """Whether pyoxigraph, running ``query``, makes an HTTP request to the remote."""
    before = Endpoint.calls
    try:
        result = store.query(query)
        if not isinstance(result, ox.QueryBoolean):
            list(result)
    except (SyntaxError, OSError, RuntimeError):
        pass
    return Endpoint.calls > before


def refused(check, text: str, **kw) -> bool:
    try:
        check(text, **kw)
    except UnsafeQuery:
        return True
    return False


# Every disguise of a SERVICE call; {R} is the remote's IRI. True: pyoxigraph does call it.
DISGUISES = [
    ("SELECT * {{ SERVICE <{R}> {{ ?s ?p ?o }} }}", True),
    ("select * {{ service <{R}> {{ ?s ?p ?o }} }}", True),
    ("SELECT * {{ SeRvIcE <{R}> {{ ?s ?p ?o }} }}", True),
    ("SELECT * {{ SERVICE SILENT <{R}> {{ ?s ?p ?o }} }}", True),
    ("SELECT * {{ SERVICE # a comment\n <{R}> {{ ?s ?p ?o }} }}", True),
    ("SELECT * {{ SERVICE#c\nSILENT#c\n<{R}>#c\n{{ ?s ?p ?o }} }}", True),
    ("PREFIX r: <{R}> SELECT * {{ SERVICE r:sparql {{ ?s ?p ?o }} }}", True),
    ("PREFIX : <{R}> SELECT * {{ SERVICE :sparql {{ ?s ?p ?o }} }}", True),
    ("BASE <{R}> SELECT * {{ SERVICE <sparql> {{ ?s ?p ?o }} }}", True),
    ("BASE <{R}a/b/> SELECT * {{ SERVICE <../../> {{ ?s ?p ?o }} }}", True),
    ("BASE <{R}> PREFIX r: <x/> SELECT * {{ SERVICE r:y {{ ?s ?p ?o }} }}", True),
    ("SELECT * {{ VALUES ?e {{ <{R}> }} SERVICE ?e {{ ?s ?p ?o }} }}", False),  # not yet
    ("SELECT * {{ SERVICE $e {{ ?s ?p ?o }} }}", False),
    ("SELECT * {{ {{ SELECT ?s {{ SERVICE <{R}> {{ ?s ?p ?o }} }} }} }}", True),
    ("SELECT * {{ ?s ?p ?o OPTIONAL {{ SERVICE <{R}> {{ ?s ?p ?o }} }} }}", True),
    ("SELECT * {{ {{ ?s ?p ?o }} UNION {{ SERVICE <{R}> {{ ?s ?p ?o }} }} }}", True),
    ("SELECT * {{ ?s ?p ?o FILTER EXISTS {{ SERVICE <{R}> {{ ?s ?p ?o }} }} }}", True),
    ("ASK {{ SERVICE <{R}> {{ }} }}", True),
    ("CONSTRUCT WHERE {{ SERVICE <{R}> {{ }} }}", False),
    ("SELECT * {{ \\u0053ERVICE <{R}> {{ ?s ?p ?o }} }}", False),  # §19.2 escape
    ("SELECT * {{ SERVICE \\u003c{R}> {{ ?s ?p ?o }} }}", False),
    # pyoxigraph's keywords need no word boundary:
    ("SELECT * {{ ?s ?p true SERVICE<{R}>{{}} }}", True),
    ("SELECT * {{ ?s ?p trueSERVICE <{R}> {{}} }}", True),
    ("SELECT * {{ ?s ?p 1SERVICE <{R}> {{}} }}", True),
    ("SELECT * {{ ?s ?p ?o.SERVICE <{R}> {{}} }}", True),
    ("SELECT * {{ SERVICESILENT<{R}> {{}} }}", True),
    ("PREFIX : <{R}> SELECT * {{ SERVICESILENT:x {{}} }}", True),
    ("PREFIX : <{R}> SELECT * {{ ?s ?p ?o . service:x {{ }} }}", True),
    ("PREFIX s: <{R}> SELECT * {{ ?s ?p ?o . SERVICEs:x {{ }} }}", True),
    ("PREFIX e: <http://ex/> SELECT * {{ ?s ?p e:.SERVICE <{R}> {{ }} }}", True),
    # a later declaration overrides an allowlisted one (here glued: PREFIXw: is PREFIX w:)
    ("PREFIX w: <https://query.wikidata.org/> PREFIXw: <{R}> SELECT * {{ SERVICE w:x {{}} }}",
     True),
    ("BASE <https://query.wikidata.org/> BASE<{R}> SELECT * {{ SERVICE <sparql> {{}} }}", True),
    # a long string that never closes is an empty string and a short one to pyoxigraph
    ('SELECT * {{ VALUES ?x {{ """a" }} SERVICE <{R}> {{ ?s ?p ?o }} }}', True),
    ("SELECT * {{ VALUES ?x {{ '''a' }} SERVICE <{R}> {{ ?s ?p ?o }} }}", True),
    # in an expression "<?x#>" is less-than and a comment, so the SERVICE is code
    ('SELECT * {{ ?s ?p ?o FILTER(?o <?x#> """\n) SERVICE <{R}> {{}} #"""\n}}', True),
    ("SELECT * {{ ?s ?p ?o FILTER(?o <?x&&'> \"') SERVICE <{R}> {{}} #\"\n}}", True),
    # escaped characters in prefixed names do not start strings or comments
    ("PREFIX e: <http://ex/> SELECT * {{ ?s ?p e:a\\'b . SERVICE <{R}> {{ }} }} #'", True),
    ("PREFIX e: <http://ex/> SELECT * {{ ?s ?p e:a\\#b . SERVICE <{R}> {{ }} }}", True),
    ('SELECT * {{ ?s ?p "x\\" " . SERVICE <{R}> {{ }} }}', True),
    ("SELECT * {{ ?s ?p ?o }} #x\rSERVICE <{R}> {{}}", False),
    ("SELECT * {{ GRAPH ?g {{ SERVICE <{R}> {{ ?s ?p ?o }} }} }}", True),
]


@pytest.mark.parametrize(("template", "executes"), DISGUISES)
def test_service_in_every_disguise_is_refused(template, executes, remote, store):
    query = template.format(R=remote)
    assert calls_remote(store, query) == executes  # the case is what it claims to be
    assert refused(check_query, query)
    assert refused(check_update, "INSERT { ?s ?p ?o } WHERE { " + query.split("{", 1)[1])


def test_one_bad_service_among_allowed_ones_is_refused(remote):
    query = f"SELECT * {{ SERVICE <{WIKIDATA}> {{}} SERVICE <{remote}> {{}} }}"
    assert refused(check_query, query, allowlist=[WIKIDATA])
    with pytest.raises(UnsafeQuery, match=remote):
        check_query(query, allowlist=[WIKIDATA])


ALLOWED = [
    f"SELECT * {{ SERVICE <{WIKIDATA}> {{ ?s ?p ?o }} }}",
    f"SELECT * {{ service silent <{WIKIDATA}> {{ ?s ?p ?o }} }}",
    "PREFIX w: <https://query.wikidata.org/> SELECT * { SERVICE w:sparql { ?s ?p ?o } }",
    "PREFIX : <https://query.wikidata.org/spar> SELECT * { SERVICE :ql { ?s ?p ?o } }",
    "BASE <https://query.wikidata.org/x/> SELECT * { SERVICE <../sparql> { ?s ?p ?o } }",
    f"SELECT * {{ {{ SELECT * {{ OPTIONAL {{ SERVICE <{WIKIDATA}> {{ }} }} }} }} }}",
]


@pytest.mark.parametrize("query", ALLOWED)
def test_allowlisted_endpoint_passes(query):
    check_query(query, allowlist=[WIKIDATA])
    assert refused(check_query, query)  # and only because of the allowlist


BENIGN = [
    'SELECT * { ?s ?p "SERVICE <http://evil/> { }" }',
    "SELECT * { ?s ?p 'service' }",
    'SELECT * { ?s ?p """multi\nline SERVICE <http://evil/> { } """ }',
    "SELECT * { ?s ?p '''it''s SERVICE <http://evil/> {}''' }",
    "SELECT * { ?s ?p ?o } # SERVICE <http://evil/> { }",
    "# SERVICE <http://evil/>\nSELECT * { ?s ?p ?o }",
    "SELECT * { ?s <http://schema.org/serviceType> <http://ex/service#SERVICE> }",
    "SELECT ?service $SERVICE { ?service ?p $SERVICE }",
    "PREFIX ex: <http://ex/> SELECT * { ?s ex:service ex:SERVICE }",
    "PREFIX service: <http://ex/s/> SELECT * { ?s service:provider ?o . ?o a service:Thing }",
    "PREFIX service: <http://ex/s/> SELECT * { GRAPH service:g { ?s ?p ?o } }",
    'SELECT * { ?s ?p ?o FILTER(?o = "SERVICE" && CONTAINS(STR(?s), "service")) }',
    'SELECT * { ?s ?p "x"@en-service }',
    "SELECT * { ?s ?p ?o FILTER(?o < <http://ex/a#b>) }",
    "SELECT * { ?s ?p ?o FILTER(?o IN (<http://ex/a#b>, <http://ex/c'd>)) }",
    "SELECT * { ?s ?p <http://ex/a#b> ; ?q \"\"\"two\nlines with service\"\"\" }",
    "SELECT * { <<( ?s ?p ?o )>> ?q ?r }",
    "SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o } GROUP BY ?s HAVING (COUNT(*) > 1)",
]


@pytest.mark.parametrize("query", BENIGN)
def test_service_as_a_word_passes(query, store):
    ox.Store().query(query)  # valid SPARQL
    check_query(query)
    check_update("INSERT { ?s ?p ?o } WHERE { " + query.split("{", 1)[1])


def test_the_projects_own_queries_pass():
    queries = sorted((REPO / "queries").glob("*.rq"))
    assert queries
    for path in queries:
        check_query(path.read_text(encoding="utf-8"))


# --- updates: LOAD ----------------------------------------------------------------------

@pytest.mark.parametrize("update", [
    "LOAD <{R}data.ttl>",
    "load <{R}data.ttl>",
    "LOAD SILENT <{R}data.ttl> INTO GRAPH <http://ex/g>",
    "LOADSILENT<{R}data.ttl>",
    "INSERT DATA {{ <http://ex/a> <http://ex/b> <http://ex/c> }} ; LOAD <{R}x>",
    "PREFIX e: <{R}> LOAD e:data",
    "PREFIX e: <{R}> LOADe:data",
    "BASE <{R}> LOAD <data.ttl>",
    "LOAD # comment\n <{R}x>",
    "CLEAR ALL ; LOAD <{R}x>",
    "INSERT {{ ?s ?p ?o }} WHERE {{ SERVICE <{R}> {{ ?s ?p ?o }} }}",
    "DELETE {{ ?s ?p ?o }} WHERE {{ ?s ?p ?o OPTIONAL {{ SERVICE <{R}> {{}} }} }}",
])
def test_load_and_service_in_updates_are_refused(update, remote):
    update = update.format(R=remote)
    target = ox.Store()
    target.add(ox.Quad(ox.NamedNode("http://ex/s"), ox.NamedNode("http://ex/p"),
                       ox.NamedNode("http://ex/o")))
    before = Endpoint.calls
    try:
        target.update(update)
    except (SyntaxError, OSError, RuntimeError):
        pass
    assert Endpoint.calls > before  # pyoxigraph does fetch it
    assert refused(check_update, update)


def test_update_allowlist_and_benign_updates():
    check_update("LOAD <https://example.org/data.ttl> INTO GRAPH <http://ex/g>",
                 allowlist=["https://example.org/data.ttl"])
    check_update('INSERT DATA { <http://ex/a> <http://ex/load> "LOAD <http://evil/>" }')
    check_update("PREFIX load: <http://ex/l/> DELETE WHERE { ?s load:x ?o }")
    check_update("DELETE WHERE { ?load ?p ?o } ; DROP SILENT GRAPH <http://ex/download>")
    check_query("SELECT * { ?s <http://ex/p> ?o }")  # LOAD is an update-only concern


# --- nesting ----------------------------------------------------------------------------

def test_deep_nesting_is_refused_fast():
    for opener, closer in (("{", "}"), ("(", ")"), ("[", "]")):
        deep = "SELECT * WHERE { ?s ?p " + opener * 5000 + closer * 5000 + " }"
        started = time.monotonic()
        with pytest.raises(UnsafeQuery, match="deeper than 64"):
            check_query(deep)
        assert time.monotonic() - started < 1.0  # generous: it stops at level 65
    fine = "SELECT * WHERE " + "{" * 60 + " ?s ?p ?o " + "}" * 60
    check_query(fine)
    ox.Store().query(fine)
    with pytest.raises(UnsafeQuery):
        check_query(fine, max_depth=10)
    # brackets inside strings, IRIs and comments do not count
    check_query('SELECT * { ?s ?p "' + "{" * 100 + '" } #' + "(" * 100)


def test_pathological_input_stays_linear():
    size = 50_000
    for text in ('"\\' * (size // 2), "<" * size, '"""' + '\\"' * size, "'" * size,
                 "'''\n\\'" * (size // 5), '"\n' * (size // 2), "a" * size, "?" * size,
                 "ex:" * size, "<?x#> " * (size // 6), "FILTER(?o <?x#> " * (size // 16)):
        started = time.monotonic()
        try:
            check_query(text)
            check_update(text)
        except UnsafeQuery:
            pass
        assert time.monotonic() - started < 10  # generous: quadratic would take many minutes


# --- properties ---------------------------------------------------------------------------

SPARQLISH = st.text(alphabet=list("SERVICELOADsilent<>{}()[]\"'#\\?$:._-@^ \n\tu0123abc;,=&|!/*"),
                    max_size=200)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), SPARQLISH))
def test_only_ever_none_or_unsafe(text):
    for check in (check_query, check_update):
        try:
            assert check(text, allowlist=["http://ex/"]) is None
        except UnsafeQuery as exc:
            assert str(exc)


FRAGMENTS = ['"', "'", '"""', "'''", "#", "\n", " ", "<?x#>", "<?x'>", "<urn:a#b>", "\\",
             '\\"', "\\'", "\\u0022", "?o", "(", ")", "{", "}", ".", ";", "FILTER(", "&&",
             "true", "1", "e:a", "e:a\\#", ":x", "SERVICE", "service:x", '"a"', "'a'",
             '"""a"', "@en", "^^e:d", "<<", ">>", "GRAPH", "_:b", "IN", "BIND(1 AS ?z)"]
CALLS = ["SERVICE <{R}> {{}}", "SERVICE :x {{}}", "service:x {{}}", "SERVICE SILENT <{R}> {{}}",
         "trueSERVICE :x {{}}", ""]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=5), st.sampled_from(CALLS),
       st.lists(st.sampled_from(FRAGMENTS), max_size=5))
def test_whatever_pyoxigraph_calls_is_refused(remote, store, before, call, after):
    query = (f"PREFIX : <{remote}> PREFIX e: <http://ex/> SELECT * {{ ?s ?p ?o "
             + "".join(before) + " " + call.format(R=remote) + " " + "".join(after) + " }")
    if calls_remote(store, query):
        assert refused(check_query, query), query


# --- the shortcut -------------------------------------------------------------------------
# Texts that skip the lexer (cannot_offend) must be ones the whole check lets through, but for
# the one refusal the shortcut gives up (a string that never ends), which Oxigraph answers.

QUIET = [f for f in FRAGMENTS if "\\" not in f and "service" not in f.lower()] + [
    "LOAD", "load", "-", "!", "+", "[", "]", "<<", "?x", "<http://ex/a-b>", "'''a'''", "#c\n"]
UNENDED = "never ends"


def whole_check_allows(text: str, update: bool) -> bool:
    try:
        read_all(text, frozenset(), 64, update)
    except UnsafeQuery as exc:
        return UNENDED in str(exc)  # the only refusal the shortcut skips
    return True


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=300), SPARQLISH,
                 st.lists(st.sampled_from(QUIET), max_size=80).map(" ".join),
                 st.lists(st.sampled_from(QUIET), max_size=80).map("".join)),
       st.booleans())
def test_the_shortcut_only_passes_what_the_whole_check_passes(text, update):
    if cannot_offend(text, update=update):
        assert whole_check_allows(text, update), text


@pytest.mark.parametrize(("template", "executes"), DISGUISES)
def test_no_disguise_takes_the_shortcut(template, executes, remote):
    assert not cannot_offend(template.format(R=remote))


def test_the_shortcut_keeps_the_depth_limit():
    for opener in "{([!-+":
        text = "SELECT * WHERE { ?s ?p ?o " + opener * 65 + " }"
        assert not cannot_offend(text)
        assert refused(check_query, text), opener
    assert not cannot_offend("SELECT * { ?s ?p " + "<" * 65 + " }")


def test_the_projects_own_queries_take_the_shortcut_or_pass():
    texts = [to_local(p.read_text("utf-8")) for p in sorted((REPO / "queries").rglob("*.rq"))]
    quick = [t for t in texts if cannot_offend(t)]  # the rest say "service" in a comment
    assert len(texts) > 20 and len(quick) >= 0.8 * len(texts)
    for text in texts:
        assert not refused(check_query, text)


def test_a_string_that_never_ends_without_service_is_a_syntax_error(store):
    text = 'SELECT * { ?s ?p "never ends }'
    assert cannot_offend(text)
    outcome = answer(store, query_job(text, "text/csv", None, None, None, None, 5, client=True))
    assert isinstance(outcome, SyntaxFault) and outcome.error().status == 400


# --- helpers ------------------------------------------------------------------------------

def test_declares_dataset():
    assert declares_dataset("SELECT * FROM NAMED <http://ex/g> { GRAPH ?g { ?s ?p ?o } }")
    assert declares_dataset("select * from <http://ex/g> { ?s ?p ?o }")
    assert not declares_dataset('SELECT ?from { ?s <http://ex/from> "FROM" } # FROM <x>')


@pytest.mark.parametrize(("ref", "expected"), [  # RFC 3986 §5.4 examples
    ("g;x?y#s", "http://a/b/c/g;x?y#s"), ("../..", "http://a/"), ("../../../g", "http://a/g"),
    ("?y", "http://a/b/c/d;p?y"), ("#s", "http://a/b/c/d;p?q#s"), ("", "http://a/b/c/d;p?q"),
    ("//g", "http://g"), ("/./g", "http://a/g"), ("g/../h", "http://a/b/c/h"),
])
def test_resolve(ref, expected):
    assert resolve(ref, "http://a/b/c/d;p?q") == expected
