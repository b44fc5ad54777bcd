"""Queries written for query.wikidata.org, run unchanged over HTTP against the real server.

The corpus in queries/wdqs/ has no PREFIX lines (WDQS predeclares them) and uses the label
service, hints, qualifiers, references, ranks, precision, quantities and property paths; each
query's answer is in queries/wdqs/expected/. Real clients: requests, WikibaseIntegrator's
``execute_sparql_query`` (POST, query in the URL, multipart/form-data, no body) and SPARQLWrapper.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from namkg.query import tokens, wdqs
from SPARQLWrapper import JSON, SPARQLWrapper
from wikibaseintegrator.wbi_helpers import execute_sparql_query

from .conftest import REPO, Server

CORPUS = sorted((REPO / "queries" / "wdqs").glob("*.rq"))
EXPECTED = REPO / "queries" / "wdqs" / "expected"
SHORT = {
    "http://www.wikidata.org/entity/": "wd:",
    "http://wikiba.se/ontology#": "wikibase:",
    "https://w3id.org/nam-kg/id/": "id:",
    "http://www.w3.org/2001/XMLSchema#": "xsd:",
}
ACCEPT_JSON = {"Accept": "application/sparql-results+json"}


def compact(term: dict) -> str:
    """One SPARQL JSON term as short text: wd:Q1, "label"@en, "120"^^xsd:decimal."""

    def short(iri: str) -> str:
        for ns, prefix in SHORT.items():
            if iri.startswith(ns):
                return prefix + iri[len(ns) :]
        return f"<{iri}>"

    if term["type"] == "uri":
        return short(term["value"])
    text = json.dumps(term["value"], ensure_ascii=False)
    if "xml:lang" in term:
        return f"{text}@{term['xml:lang']}"
    if term.get("datatype") and term["datatype"] != "http://www.w3.org/2001/XMLSchema#string":
        return f"{text}^^{short(term['datatype'])}"
    return text


def compact_rows(answer: dict) -> list[dict[str, str]]:
    return [{k: compact(v) for k, v in b.items()} for b in answer["results"]["bindings"]]


def expected(query: Path) -> dict:
    return json.loads((EXPECTED / f"{query.stem}.json").read_text("utf-8"))


def same(rows: list[dict], want: dict) -> bool:
    items = [sorted(r.items()) for r in rows]
    wanted = [sorted(r.items()) for r in want["rows"]]
    return items == wanted if want["ordered"] else sorted(items) == sorted(wanted)


def post(url: str, query: str, **params) -> requests.Response:
    return requests.post(
        url + "/sparql", data={"query": query, **params}, headers=ACCEPT_JSON, timeout=30
    )


# ------------------------------------------------------------------ the corpus


def test_the_corpus_is_written_as_for_wdqs():
    assert len(CORPUS) >= 20
    features = {
        "SERVICE wikibase:label": 0,
        "hint:": 0,
        "pq:": 0,
        "prov:wasDerivedFrom": 0,
        "wikibase:rank": 0,
        "wikibase:timePrecision": 0,
        "wikibase:quantityAmount": 0,
        "wdt:P31/wdt:P279*": 0,
        "schema:description": 0,
        "?xAltLabel": 0,
    }
    for query in CORPUS:
        text = query.read_text("utf-8")
        assert text.startswith("# "), f"{query.name}: no question in its header"
        assert "PREFIX" not in text.upper(), f"{query.name}: WDQS users declare no prefixes"
        assert expected(query)["rows"], f"{query.name}: empty expected answer"
        for feature in features:
            features[feature] += feature in text
    assert all(features.values()), features


@pytest.mark.parametrize("query", CORPUS, ids=lambda p: p.stem)
def test_corpus_query_over_http(live_server, query):
    answer = post(live_server, query.read_text("utf-8"))
    assert answer.status_code == 200, answer.text
    assert same(compact_rows(answer.json()), expected(query)), compact_rows(answer.json())


@pytest.mark.parametrize("query", CORPUS, ids=lambda p: p.stem)
def test_corpus_query_with_wikibaseintegrator(live_server, query):
    # WBI POSTs with the query in the URL, Content-Type multipart/form-data and no body.
    answer = execute_sparql_query(
        query.read_text("utf-8"), endpoint=live_server + "/sparql", max_retries=1, retry_after=0
    )
    assert same(compact_rows(answer), expected(query)), compact_rows(answer)


@pytest.mark.parametrize("query", CORPUS, ids=lambda p: p.stem)
def test_corpus_query_with_sparqlwrapper(live_server, query):
    client = SPARQLWrapper(live_server + "/sparql")
    client.setQuery(query.read_text("utf-8"))
    client.setReturnFormat(JSON)
    answer = client.queryAndConvert()
    assert same(compact_rows(answer), expected(query)), compact_rows(answer)


# ------------------------------------------------------------------ the label service


def labels(url: str, query: str, **params) -> list[dict[str, str]]:
    answer = post(url, query, **params)
    assert answer.status_code == 200, answer.text
    return compact_rows(answer.json())


LABEL_OF_Q227 = """SELECT ?xLabel WHERE { VALUES ?x { wd:Q227 }
  SERVICE wikibase:label { bd:serviceParam wikibase:language "%s". } }"""


@pytest.mark.parametrize(
    ("languages", "label"),
    [
        ("ar,en", '"أذربيجان"@ar'),
        ("en,ar", '"Azerbaijan"@en'),
        ("fr, de ,ar", '"أذربيجان"@ar'),
        ("fr", '"Q227"'),
        ("[AUTO_LANGUAGE]", '"Azerbaijan"@en'),
        ("fr,[AUTO_LANGUAGE]", '"Azerbaijan"@en'),
    ],
)
def test_languages_are_tried_in_order_then_the_qid(live_server, languages, label):
    assert labels(live_server, LABEL_OF_Q227 % languages) == [{"xLabel": label}]


def test_auto_language_is_uselang_when_given(live_server):
    assert labels(live_server, LABEL_OF_Q227 % "[AUTO_LANGUAGE]", uselang="ar") == [
        {"xLabel": '"أذربيجان"@ar'}
    ]
    url = f"{live_server}/sparql?uselang=ar&query=" + requests.utils.quote(
        LABEL_OF_Q227 % "[AUTO_LANGUAGE],en"
    )
    answer = requests.get(url, headers=ACCEPT_JSON, timeout=30)
    assert compact_rows(answer.json()) == [{"xLabel": '"أذربيجان"@ar'}]


def test_an_iri_without_label_is_its_own_label_and_has_no_description(live_server):
    rows = labels(
        live_server,
        """SELECT ?x ?xLabel ?xDescription ?xAltLabel WHERE {
        VALUES ?x { <http://example.org/thing> wd:Q42 }
        SERVICE wikibase:label { bd:serviceParam wikibase:language "en". } }""",
    )
    assert sorted(rows, key=str) == sorted(
        [
            {"x": "<http://example.org/thing>", "xLabel": '"http://example.org/thing"'},
            {"x": "wd:Q42", "xLabel": '"Q42"'},
        ],
        key=str,
    )


def test_manual_mode_binds_only_the_named_variables(live_server):
    rows = labels(
        live_server,
        """SELECT * WHERE {
        wd:Q83201 wdt:P488 ?chair .
        SERVICE wikibase:label {
          bd:serviceParam wikibase:language "en" .
          ?chair rdfs:label ?name . ?chair schema:description ?what .
        } }""",
    )
    assert rows == [{"chair": "wd:Q57371", "name": '"Ilham Aliyev"@en', "what": '"person"@en'}]


def test_aliases_are_joined_as_wdqs_joins_them(live_server):
    (row,) = labels(
        live_server,
        """SELECT ?xAltLabel WHERE { VALUES ?x { wd:Q83201 }
        SERVICE wikibase:label { bd:serviceParam wikibase:language "en". } }""",
    )
    assert sorted(json.loads(row["xAltLabel"][:-3]).split(", ")) == ["NAM", "the movement"]
    assert row["xAltLabel"].endswith("@en")


def test_select_star_shows_the_query_variables_and_labels_only(live_server):
    answer = post(
        live_server,
        """SELECT * WHERE {
        wd:Q227 p:P463 ?st . OPTIONAL { ?st pq:P17 ?country }
        FILTER(!BOUND(?neverBound))
        SERVICE wikibase:label { bd:serviceParam wikibase:language "en". }
      } ORDER BY ?countryLabel""",
    ).json()
    assert answer["head"]["vars"] == ["st", "country", "countryLabel"]
    # Q252's label is Wikidata's as recorded; the statement with no country stays unlabelled
    assert [r.get("countryLabel") for r in compact_rows(answer)] == [None, '"Indonesia"@en']


def test_an_unbound_item_stays_unbound_and_multiplies_no_row(live_server):
    plain = (
        """SELECT ?st ?country WHERE { wd:Q227 p:P463 ?st . OPTIONAL { ?st pq:P17 ?country } }"""
    )
    labelled = plain.replace("?country WHERE", "?country ?countryLabel WHERE").replace(
        "} }", '} SERVICE wikibase:label { bd:serviceParam wikibase:language "en". } }'
    )
    assert len(labels(live_server, plain)) == len(labels(live_server, labelled)) == 2


def test_label_variables_of_a_group_by(live_server):
    rows = labels(live_server, (REPO / "queries/wdqs/23-statements-per-property.rq").read_text())
    assert {"propertyLabel": '"instance of"@en', "statements": '"2"^^xsd:integer'} in rows


def test_helper_variable_names_never_clash_with_the_query(live_server):
    rows = labels(
        live_server,
        """SELECT ?wdqs_x_1 ?x ?xLabel WHERE {
        VALUES (?x ?wdqs_x_1) { (wd:Q227 "mine") }
        SERVICE wikibase:label { bd:serviceParam wikibase:language "en". } }""",
    )
    assert rows == [{"wdqs_x_1": '"mine"', "x": "wd:Q227", "xLabel": '"Azerbaijan"@en'}]


def test_a_label_variable_the_query_binds_itself_is_left_to_it(live_server):
    rows = labels(
        live_server,
        """SELECT ?x ?xLabel WHERE { VALUES ?x { wd:Q227 } ?x rdfs:label ?xLabel
        FILTER(LANG(?xLabel) = "ar") SERVICE wikibase:label {
        bd:serviceParam wikibase:language "en". } }""",
    )
    assert rows == [{"x": "wd:Q227", "xLabel": '"أذربيجان"@ar'}]


def test_a_bad_label_block_is_a_clear_400(live_server):
    for block, words in [
        ('bd:serviceParam wikibase:language "en;fr" .', "'en;fr' is not a language code"),
        ("bd:serviceParam wikibase:language 3 .", "takes a string"),
        ("?x wdt:P31 ?y .", "only bd:serviceParam"),
    ]:
        answer = post(
            live_server,
            f"SELECT ?xLabel {{ VALUES ?x {{ wd:Q1 }}\nSERVICE wikibase:label {{ {block} }} }}",
        )
        assert answer.status_code == 400 and words in answer.text, answer.text
        assert "label service (line 2)" in answer.text


# ------------------------------------------------------------------ no remote call


def test_the_label_service_never_reaches_the_service_guard(live_server):
    # The server refuses every SERVICE (empty allowlist): an answer proves the text it ran had
    # none; the control, an IRI that is not the label service, is refused.
    query = LABEL_OF_Q227 % "en"
    assert labels(live_server, query) == [{"xLabel": '"Azerbaijan"@en'}]
    full = query.replace("wikibase:label", "<http://wikiba.se/ontology#label>")
    assert labels(live_server, full.replace("SERVICE", "SERVICE SILENT")) == [
        {"xLabel": '"Azerbaijan"@en'}
    ]
    control = post(live_server, query.replace("wikibase:label", "wikibase:labelx"))
    assert control.status_code == 400 and "is refused" in control.text, control.text
    for path in CORPUS:
        text = wdqs.to_local(path.read_text("utf-8"))
        assert not [t for t in tokens.tokens(text) if t.text.upper() == "SERVICE"], path.name


def test_the_label_service_calls_nothing_on_a_server_that_may_federate(built_store):
    # A loopback listener the server is allowed to query: a SERVICE call to it arrives (the
    # control), the label service's queries do not.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    accepted.append(conn.recv(4096))
                except OSError:
                    accepted.append(b"")
                conn.sendall(b"HTTP/1.1 500 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    remote = f"http://127.0.0.1:{listener.getsockname()[1]}/sparql"
    server = Server(
        built_store,
        env={
            "NAMKG_SERVICE_ALLOWLIST": remote,
            "NAMKG_QUERY_TIMEOUT": "3",
            "NAMKG_QUERY_WORKERS": "2",
        },
    )
    try:
        for path in CORPUS:
            text = path.read_text("utf-8")
            if "wikibase:label" in text:
                answer = post(server.url, text)
                assert answer.status_code == 200, (path.name, answer.text)
        assert accepted == []
        post(server.url, f"SELECT * {{ SERVICE SILENT <{remote}> {{ ?s ?p ?o }} }}")
        deadline = time.monotonic() + 5
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert accepted and accepted[0][:4] in (b"POST", b"GET ")
    finally:
        server.stop()
        stop.set()
        thread.join(5)
        listener.close()


# ------------------------------------------------------------------ prefixes and hints


def test_an_unknown_prefix_is_named_with_its_line(live_server):
    answer = post(live_server, "SELECT ?x WHERE {\n  ?x wdt:P31 ?y .\n  ?x foaf2:name ?n .\n}")
    assert answer.status_code == 400
    assert "Unknown prefix 'foaf2:'" in answer.text and "line 3" in answer.text, answer.text


def test_the_query_own_prefix_wins(live_server):
    query = "SELECT ?o WHERE { wd:Q83201 wdt:P2124 ?o }"
    assert len(labels(live_server, query)) == 1
    assert labels(live_server, "PREFIX wd: <http://example.org/>\n" + query) == []


def test_hints_change_no_answer(live_server):
    plain = "SELECT ?m WHERE { ?m wdt:P463 wd:Q83201 . }"
    hinted = (
        'SELECT ?m WHERE { hint:Query hint:optimizer "None" . ?m wdt:P463 wd:Q83201 .\n'
        "  hint:Prior hint:runFirst true }"
    )
    assert labels(live_server, plain) == labels(live_server, hinted) == [{"m": "wd:Q227"}]


@pytest.mark.parametrize(
    ("service", "what"),
    [
        ("wikibase:mwapi", "MediaWiki API"),
        ("bd:sample", "sampling"),
        ("wikibase:around", "geospatial"),
        ("wikibase:box", "geospatial"),
    ],
)
def test_unsupported_wdqs_services_are_named(live_server, service, what):
    answer = post(live_server, f"SELECT * WHERE {{\n SERVICE {service} {{ ?s ?p ?o }} }}")
    assert answer.status_code == 400
    assert f"SERVICE {service} ({'the ' + what}" in answer.text and "line 2" in answer.text


def test_any_other_service_is_still_refused(live_server):
    answer = post(live_server, "SELECT * { SERVICE <http://127.0.0.1:9/sparql> { ?s ?p ?o } }")
    assert answer.status_code == 400 and "is refused" in answer.text


# ------------------------------------------------------------------ WDQS protocol habits


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/octet-stream", None])
def test_post_with_the_query_in_the_url_and_an_empty_body(live_server, content_type):
    headers = {**ACCEPT_JSON, **({"Content-Type": content_type} if content_type else {})}
    answer = requests.post(
        live_server + "/sparql",
        params={"query": LABEL_OF_Q227 % "en"},
        headers=headers,
        data=b"",
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert compact_rows(answer.json()) == [{"xLabel": '"Azerbaijan"@en'}]


def test_another_body_type_is_still_415(live_server):
    answer = requests.post(
        live_server + "/sparql",
        data=b"query=ASK{}",
        timeout=30,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert answer.status_code == 415 and "an empty body with the query in the URL" in answer.text


@pytest.mark.parametrize(
    ("fmt", "media"),
    [("json", "application/sparql-results+json"), ("xml", "application/sparql-results+xml")],
)
def test_format_parameter_as_wdqs_takes_it(live_server, fmt, media):
    answer = requests.get(
        live_server + "/sparql",
        timeout=30,
        params={"query": "SELECT ?c { wd:Q83201 wdt:P2124 ?c }", "format": fmt},
    )
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(media)
    assert "120" in answer.text


# ------------------------------------------------------------------ the rewrite itself


@pytest.mark.parametrize(
    "text",
    [
        'SELECT * { ?s ?p "foo:bar" }',
        "SELECT * { ?s ?p '''it's \"bar:baz\" ''' }",
        'SELECT * { ?s ?p "esc \\" x:y" }',
        "SELECT * { ?s ?p <http://e/a:b> } # c:d SERVICE wikibase:label { }",
        'SELECT * { ?s ?p """SERVICE wikibase:label { bd:serviceParam wikibase:language "e" }"""}',
    ],
)
def test_words_in_strings_iris_and_comments_are_left_alone(text):
    assert wdqs.to_local(text) == text


def test_only_the_undeclared_prefixes_used_are_added_on_line_one():
    text = "PREFIX wd: <urn:w:>\nSELECT * {\n wd:a rdfs:label ?l }"
    out = wdqs.to_local(text)
    assert out == "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> " + text
    assert out.count("\n") == text.count("\n")


def test_removed_text_keeps_lines_and_columns():
    text = (
        "PREFIX wd: <urn:w:> PREFIX wdt: <urn:t:> PREFIX hint: <http://www.bigdata.com/"
        'queryHints#>\nSELECT ?s {\n  hint:Query hint:optimizer "None" .\n  ?s wdt:P31 wd:Q5 }'
    )
    out = wdqs.to_local(text)
    assert out.splitlines()[3] == text.splitlines()[3] and len(out) == len(text)
    assert "hint" not in out.split("\n", 1)[1]


def test_an_unclosed_string_is_left_to_the_parser(live_server):
    answer = post(live_server, 'SELECT * { ?s ?p "foo:bar }')
    assert answer.status_code == 400 and "Unknown prefix" not in answer.text


PIECES = [
    "SELECT",
    "*",
    "?x",
    "?xLabel",
    "?xAltLabel",
    "{",
    "}",
    "(",
    ")",
    ".",
    ";",
    ",",
    "'",
    '"',
    '"""',
    "#",
    "\n",
    " ",
    "SERVICE",
    "wikibase:label",
    "bd:serviceParam",
    "wikibase:language",
    '"en,ar"',
    "hint:Query",
    "hint:optimizer",
    "rdfs:label",
    "foo:",
    "<http://e/>",
    "FILTER",
    "BIND",
    "AS",
    "MINUS",
    "OPTIONAL",
    "WHERE",
    "PREFIX",
    "\\",
    "SILENT",
    "[AUTO_LANGUAGE]",
    "wd:Q1",
    "@en",
    "^^",
    "a",
]


@given(st.lists(st.sampled_from(PIECES), max_size=40).map(" ".join))
@settings(max_examples=400, deadline=None)
def test_any_text_is_rewritten_or_refused_clearly(text):
    try:
        out = wdqs.to_local(text)
    except wdqs.WdqsError as exc:
        assert exc.status == 400 and exc.message
        return
    try:
        toks = tokens.tokens(text)
    except tokens.Unlexable:  # a string that never closes: left to the parser as it is
        assert out == text
        return
    # the rewrite removes label services only: any other SERVICE is still there for the guard
    others = [t for t in toks if t.text.upper() == "SERVICE"]
    if others and "wikibase:label" not in text:
        assert [t.text for t in tokens.tokens(out) if t.text.upper() == "SERVICE"]



@given(st.lists(st.sampled_from([*PIECES, "service", "SeRvIcE", "<e>", "x", "1", "?o"]),
                max_size=30).map(" ".join))
@settings(max_examples=400, deadline=None)
def test_texts_skipped_unread_come_out_as_the_tokenized_rewrite_gives_them(text):
    """to_local skips the tokens of a text with no ':' and no 'service': it must give what
    reading every token gives (the same text, or the same refusal)."""
    def outcome(rewrite):
        try:
            return rewrite(text, None)
        except wdqs.WdqsError as exc:
            return exc.message
    assert outcome(wdqs.to_local) == outcome(wdqs._rewrite)

PLAIN_TEXTS = [
    "SELECT * WHERE { ?s ?p ?o } LIMIT 10",
    "SELECT ?s { ?s <http://www.w3.org/2000/01/rdf-schema#label> ?l FILTER(LANG(?l) = 'ar') }",
    "ASK { GRAPH ?g { ?s ?p 1.5e3 } }",
    "SELECT (COUNT(*) AS ?n) { ?s ?p \"x\"@en } GROUP BY ?s",
]


@pytest.mark.parametrize("text", PLAIN_TEXTS + [p.read_text("utf-8") for p in CORPUS]
                         + [p.read_text("utf-8") for p in sorted((REPO / "queries").glob("*.rq"))])
def test_the_plain_text_shortcut_agrees_with_the_whole_rewrite(text):
    """to_local returns a text with no prefixed name and no SERVICE as it is, unread further:
    what the whole rewrite gives for it, and for the others the whole rewrite's own answer."""
    toks = tokens.tokens(text)
    whole = wdqs._Query(text, toks, "en").rewritten()
    assert wdqs.to_local(text) == whole
    if text in PLAIN_TEXTS:
        assert whole == text
