"""The Wikidata-shaped view, the WDQS queries over it, the exports and the link check."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
from pathlib import Path

import pyoxigraph as ox
import pytest
import rdflib
from namkg.config import DEFAULT_BASE
from namkg.iris import Iris
from namkg.kg import wikidata
from namkg.kg.build import load_dataset
from namkg.kg.layout import Sources

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "wikidata"
WDQS_QUERIES = sorted((REPO / "queries").glob("wdqs-*.rq"))

WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
P, PS, PQ, PQV = (wikidata.WDQS_PREFIXES[k] for k in ("p", "ps", "pq", "pqv"))
PR, WB = wikidata.WDQS_PREFIXES["pr"], wikidata.WDQS_PREFIXES["wikibase"]
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
ID = DEFAULT_BASE + "id/"
OWL_SAME_AS = "http://www.w3.org/2002/07/owl#sameAs"
SAME_AS_QIDS = {"Q83201", "Q1065", "Q7159", "Q47543", "Q227", "Q4648", "Q57371", "Q81068910"}
MATCH_QIDS = {"Q1127126", "Q3125978", "Q84263196", "Q3624078", "Q484652", "Q245065", "Q252"}
N, L = ox.NamedNode, ox.Literal
DEFAULT = Iris()


def build(sources: Sources, iris: Iris) -> ox.Store:
    """The in-memory part of `namkg build`: the graphs, then the view in the wikidata graph."""
    store = load_dataset(sources, iris)
    wikidata.derive_into(store, iris, N(iris.graph("wikidata")))
    return store


def view_of(store: ox.Store, iris: Iris = DEFAULT) -> set[ox.Triple]:
    graph = N(iris.graph("wikidata"))
    return {ox.Triple(q.subject, q.predicate, q.object)
            for q in store.quads_for_pattern(None, None, None, graph)}


def objects(view: set[ox.Triple], s: str, p: str) -> set:
    return {t.object for t in view if t.subject == N(s) and t.predicate == N(p)}


def dt(year: str) -> ox.Literal:
    return L(f"{year}-01-01T00:00:00Z", datatype=N(XSD + "dateTime"))


@pytest.fixture(scope="module")
def store() -> ox.Store:
    return build(Sources.of(REPO), Iris())


@pytest.fixture(scope="module")
def view(store) -> set[ox.Triple]:
    return view_of(store)


# ------------------------------------------------------------------ the view


def test_truthy_triples_are_exactly_the_best_rank_values(view):
    truthy = {(str(t.subject), t.predicate.value[len(WDT):], t.object)
              for t in view if t.predicate.value.startswith(WDT)}
    article, conference = f"<{ID}article>", f"<{ID}ministerial-conference-16>"
    assert truthy == {
        (f"<{WD}Q83201>", "P2124", L("120", datatype=N(XSD + "decimal"))),
        (f"<{WD}Q227>", "P463", N(WD + "Q83201")),
        (f"<{WD}Q83201>", "P488", N(WD + "Q57371")),
        (article, "P50", N(ID + "hashim-mammadov")),
        (article, "P407", N(WD + "Q13955")),
        (article, "P1476", L("دول حركة عدم الانحياز وأذربيجان", language="ar")),
        (f"<{WD}Q227>", "P31", N(WD + "Q3624078")),
        *((f"<{WD}{q}>", "P31", N(WD + "Q245065")) for q in ("Q83201", "Q1065", "Q7159", "Q47543")),
        (conference, "P276", N(WD + "Q4648")),
        (conference, "P585", dt("2011")),
        (f"<{ID}mid-term-ministerial-conference>", "P585",
         L("2021-07-01T00:00:00Z", datatype=N(XSD + "dateTime"))),
    }


def statement(view, subject: str, pid: str, value) -> str:
    found = [t.object.value for t in view if t.subject == N(subject) and t.predicate == N(P + pid)
             and ox.Triple(t.object, N(PS + pid), value) in view]
    assert len(found) == 1, (subject, pid, value, found)
    return found[0]


def test_membership_statements_with_qualifiers_and_ranks(view):
    observer = ID + "statement/membership-observer-P463"
    full = ID + "statement/membership-full-P463"
    assert {t.object.value for t in view if t.subject == N(WD + "Q227")
            and t.predicate == N(P + "P463")} == {observer, full}
    assert objects(view, observer, PQ + "P2868") == {N(ID + "role-observer")}
    assert objects(view, observer, PQ + "P582") == {dt("2011")}
    assert objects(view, observer, PQ + "P580") == set()  # the article gives no start
    assert objects(view, observer, WB + "rank") == {N(WB + "NormalRank")}
    assert objects(view, full, PQ + "P2868") == {N(ID + "role-full-member")}
    assert objects(view, full, PQ + "P580") == {dt("2011")}
    assert objects(view, full, PQ + "P582") == set()
    assert objects(view, full, PQ + "P276") == {N(WD + "Q4648")}
    assert objects(view, full, PQ + "P17") == {N(WD + "Q252")}
    assert objects(view, full, WB + "rank") == {N(WB + "PreferredRank")}
    (node,) = objects(view, full, PQV + "P580")
    assert objects(view, node.value, WB + "timeValue") == {dt("2011")}
    assert objects(view, node.value, WB + "timePrecision") == {L("9", datatype=N(XSD + "integer"))}
    assert objects(view, node.value, WB + "timeTimezone") == {L("0", datatype=N(XSD + "integer"))}
    assert objects(view, node.value, WB + "timeCalendarModel") == {N(WD + "Q1985727")}
    assert N(WB + "TimeValue") in objects(view, node.value, wikidata._RDF_TYPE)


def test_chairmanship_is_a_chairperson_statement_not_a_membership(view):
    chair = statement(view, WD + "Q83201", "P488", N(WD + "Q57371"))
    assert chair == ID + "statement/chairmanship-P488"
    assert objects(view, chair, PQ + "P580") == {dt("2019")}
    assert objects(view, chair, PQ + "P582") == {dt("2023")}
    assert not any(t.object == N(ID + "role-chair") for t in view)


def test_a_time_keeps_its_precision(view):
    # "in that year" (2011): year precision; "in July of this year" (July 2021): month precision
    for slug, value, precision in (("ministerial-conference-16", dt("2011"), "9"),
                                   ("mid-term-ministerial-conference",
                                    L("2021-07-01T00:00:00Z", datatype=N(XSD + "dateTime")), "10")):
        st = statement(view, ID + slug, "P585", value)
        (node,) = objects(view, st, wikidata.WDQS_PREFIXES["psv"] + "P585")
        assert objects(view, node.value, WB + "timePrecision") == {
            L(precision, datatype=N(XSD + "integer"))}


def test_every_statement_has_one_value_a_rank_and_its_property(view):
    statements = {t.subject for t in view if t.object == N(WB + "Statement")}
    assert len(statements) == 15  # 5 P31, 2 P463, P488, P2124, 3 article, 3 meeting
    for st in statements:
        claims = [t for t in view if t.object == st and t.predicate.value.startswith(P)]
        assert len(claims) == 1, st
        pid = claims[0].predicate.value[len(P):]
        assert len(objects(view, st.value, PS + pid)) == 1, st
        assert len(objects(view, st.value, WB + "rank")) == 1, st
        assert N(WB + "claim") in {t.predicate for t in view if t.subject == N(WD + pid)}


def test_every_property_used_has_its_property_entity(view):
    # Regression: the property entities were derived in the same pass as the references,
    # so the reference properties (pr:P248 stated in, pr:P1683 quotation) had none.
    used = {re.sub(r"^.*/", "", t.predicate.value) for t in view
            if re.match(r"^http://www\.wikidata\.org/prop/(qualifier/|reference/)?P\d+$",
                        t.predicate.value)}
    assert {"P248", "P1683", "P463", "P580"} <= used
    for pid in used:
        assert N(WB + "Property") in objects(view, WD + pid, RDF + "type"), pid
        assert objects(view, WD + pid, WB + "reference") == {
            N(f"http://www.wikidata.org/prop/reference/{pid}")}, pid


RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
RDFS_COMMENT = "http://www.w3.org/2000/01/rdf-schema#comment"
SKOS_ALT = "http://www.w3.org/2004/02/skos/core#altLabel"
DESCRIPTION = "http://schema.org/description"  # WDQS's schema: namespace


SKOS = "http://www.w3.org/2004/02/skos/core#"
PROV_DERIVED = "http://www.w3.org/ns/prov#wasDerivedFrom"
TERMS = (RDFS_LABEL, SKOS_ALT, DESCRIPTION, WB + "propertyType")


def recorded_terms(store: ox.Store) -> set[tuple]:
    """(item, predicate, value) of each Wikidata term recorded in the data with a source."""
    rows = store.query(f"""SELECT ?s ?p ?o WHERE {{
        ?r <{RDF}subject> ?s ; <{RDF}predicate> ?p ; <{RDF}object> ?o ;
           <{PROV_DERIVED}> ?source }}""", use_default_graph_as_union=True)
    return {(r["s"], r["p"], r["o"]) for r in rows}


def aligned_terms(store: ox.Store, item: ox.NamedNode) -> set[ox.NamedNode]:
    return {q.subject for m in ("exactMatch", "closeMatch")
            for q in store.quads_for_pattern(None, N(SKOS + m), item, None)}


def test_every_term_of_an_unlinked_item_is_recorded_or_derived(store, view):
    # Issue 13: the terms of the items and properties no entity of ours stands for were a
    # table written from memory. Each must now be Wikidata's as recorded with its source, or
    # derived (and said to be) from the one term of our ontology aligned to the item.
    linked = set(wikidata.same_as(store).values())
    recorded = recorded_terms(store)
    given = {(t.subject, t.predicate, t.object) for t in view
             if t.predicate.value in TERMS and t.subject.value.startswith(WD)
             and t.subject not in linked}
    derived = given - recorded
    assert {s.value[len(WD):] for s, _, _ in given} >= {"P31", "P463", "P2124", "Q3624078"}
    assert {s.value[len(WD):] for s, _, _ in derived} >= {"P2124", "Q3624078"}  # not vacuous
    for item, prop, value in derived:
        (term,) = aligned_terms(store, item)
        ours = {q.object for q in store.quads_for_pattern(term, prop, None, None)}
        if prop == N(RDFS_LABEL):
            assert value in ours, (item, value)
            assert not any(s == item and p == prop and o.language == value.language
                           for s, p, o in recorded), (item, value)  # Wikidata's label first
        elif prop == N(DESCRIPTION):
            comments = {q.object.value for q in store.quads_for_pattern(
                term, N(RDFS_COMMENT), None, None) if q.object.language == value.language}
            assert value.value.startswith(("nam-kg term ", "مصطلح nam-kg ")), value
            assert any(value.value.endswith(": " + c) for c in comments), (item, value)
        else:
            raise AssertionError(f"{item} {prop} {value}: neither recorded nor derivable")
    for item in {s for s, _, _ in given}:
        langs = [o.language for s, p, o in given if s == item and p == N(RDFS_LABEL)]
        assert len(langs) == len(set(langs)), (item, langs)  # one label per language


def test_unlinked_items_take_exactly_their_recorded_labels(view):
    # Indonesia (the conference's country), Arabic (the article's language) and the unit 1:
    # Wikidata's labels as recorded, in the languages a source showed (none of Q199 in Arabic).
    for qid, labels in {"Q252": {("Indonesia", "en"), ("إندونيسيا", "ar")},
                        "Q13955": {("Arabic", "en"), ("العربية", "ar")},
                        "Q199": {("1", "en")}}.items():
        assert any(WD + qid == t.object.value for t in view), qid  # mentioned
        assert objects(view, WD + qid, RDFS_LABEL) == {L(v, language=lang) for v, lang in labels}
        assert not [t for t in view if t.subject == N(WD + qid)
                    and t.predicate.value in (SKOS_ALT, DESCRIPTION)], qid


def test_an_item_with_no_recorded_or_aligned_term_stays_unlabelled():
    # Every item the view mentions now has a recorded or derived label, so take Q199's
    # records away: with no term of ours aligned to it, the view invents none for it (WDQS's
    # label service then answers its QID).
    store = load_dataset(Sources.of(REPO), DEFAULT)
    unit = N(WD + "Q199")
    assert not aligned_terms(store, unit)
    records = {q.subject for q in store.quads_for_pattern(None, N(RDF + "subject"), unit, None)}
    assert records == {N(ID + "wikidata-label-Q199-en")}
    for record in records:
        for quad in list(store.quads_for_pattern(record, None, None, None)):
            store.remove(quad)
    view = wikidata.derive(store, DEFAULT)
    assert any(t.object == unit for t in view)  # still the member count's unit
    assert not [t for t in view if t.subject == unit and t.predicate.value in TERMS]


def test_a_term_recorded_without_its_source_is_not_given():
    store = load_dataset(Sources.of(REPO), DEFAULT)
    assert objects(wikidata.derive(store, DEFAULT), WD + "P463", RDFS_LABEL) == {
        L("member of", language="en")}
    record = N(ID + "wikidata-label-P463-en")
    for quad in list(store.quads_for_pattern(record, N(PROV_DERIVED), None, None)):
        store.remove(quad)
    assert objects(wikidata.derive(store, DEFAULT), WD + "P463", RDFS_LABEL) == set()


def test_every_recorded_term_names_its_sources_with_their_labels(store):
    records = {q.subject for q in store.quads_for_pattern(None, N(RDF + "subject"), None, None)}
    assert len(records) >= 30
    for record in records:
        sources = {q.object for q in store.quads_for_pattern(record, N(PROV_DERIVED), None, None)}
        assert sources, record
        for source in sources:
            langs = {q.object.language for q in store.quads_for_pattern(
                source, N(RDFS_LABEL), None, None)}
            assert langs == {"ar", "en"}, (record, source)
    linked = set(wikidata.same_as(store).values())
    assert not {s for s, _, _ in recorded_terms(store)} & linked  # ours label those


def test_linked_items_carry_our_entities_labels_and_aliases(store, view):
    items = wikidata.same_as(store)
    terms = {term for t in view for term in t}
    # linked but in no statement of the view (the pandemic): not labelled there either
    assert {i.value[len(WD):] for i in items.values() if i not in terms} == {"Q81068910"}
    for entity, item in items.items():
        for prop in (RDFS_LABEL, SKOS_ALT) if item in terms else ():
            ours = {q.object for q in store.quads_for_pattern(entity, N(prop), None, None)}
            assert objects(view, item.value, prop) == ours, (item, prop)
    assert objects(view, WD + "Q83201", SKOS_ALT) >= {L("NAM", language="en")}
    assert objects(view, WD + "Q227", DESCRIPTION) == {L("state", language="en"),
                                                       L("دولة", language="ar")}
    assert objects(view, WD + "Q1065", SKOS_ALT) == set()  # no alias is invented


def test_properties_have_their_type_and_label(store, view):
    properties = {t.subject.value for t in view
                  if t.predicate == N(RDF + "type") and t.object == N(WB + "Property")}
    assert len(properties) == 15
    types = {p[len(WD):]: {o.value[len(WB):] for o in objects(view, p, WB + "propertyType")}
             for p in properties}
    assert all(len(kinds) == 1 for kinds in types.values()), types
    assert types["P463"] == {"WikibaseItem"} and types["P580"] == {"Time"}
    assert types["P2124"] == {"Quantity"} and types["P1683"] == {"Monolingualtext"}
    assert types == {s.value[len(WD):]: {o.value[len(WB):]}
                     for s, p, o in recorded_terms(store) if p == N(WB + "propertyType")}
    # Wikidata's English label as recorded; no Arabic one was, and no term of ours aligned to
    # P463 (org:memberOf) has labels
    assert objects(view, WD + "P463", RDFS_LABEL) == {L("member of", language="en")}
    assert objects(view, WD + "P31", RDFS_LABEL) == {L("instance of", language="en"),
                                                     L("حالة خاصة من", language="ar")}


def test_the_member_count_has_a_quantity_value_node(view):
    st = statement(view, WD + "Q83201", "P2124", L("120", datatype=N(XSD + "decimal")))
    (node,) = objects(view, st, wikidata.WDQS_PREFIXES["psv"] + "P2124")
    assert objects(view, node.value, RDF + "type") == {N(WB + "QuantityValue")}
    assert objects(view, node.value, WB + "quantityAmount") == {
        L("120", datatype=N(XSD + "decimal"))}
    assert objects(view, node.value, WB + "quantityUnit") == {N(WD + "Q199")}


def test_no_sitelink_or_statement_counts(view):
    assert not [t for t in view if t.predicate in (N(WB + "sitelinks"), N(WB + "statements"))]


def test_references_cite_the_quotes_of_facts(store, view):
    quotes = {q.object for q in store.quads_for_pattern(
        None, N("http://www.w3.org/ns/oa#exact"), None, None)}
    derived = wikidata._PROV_DERIVED
    refs = {t.object for t in view if t.predicate == N(derived)}
    assert {r.value for r in refs} == {ID + f"reference/quote-{n:02d}"
                                       for n in (2, 5, 6, 8, 9, 13, 15, 17)}
    for ref in refs:
        assert objects(view, ref.value, PR + "P248") == {N(ID + "article")}
        (quote,) = objects(view, ref.value, PR + "P1683")
        assert quote in quotes and quote.language == "ar"
    cited = {t.subject.value.rsplit("/", 1)[1] for t in view if t.predicate == N(derived)}
    assert cited == {"membership-observer-P463", "membership-full-P463", "chairmanship-P488",
                     "nam-member-count-P2124", "ministerial-conference-16-P276",
                     "ministerial-conference-16-P585",
                     "mid-term-ministerial-conference-P585"}  # facts only: no P31, no article
    # metadata


def test_linked_entities_become_items_and_unlinked_keep_our_iris(store, view):
    linked = {q.subject for q in store.quads_for_pattern(None, N(OWL_SAME_AS), None, None)}
    assert len(linked) == 8
    terms = {term for t in view for term in t}
    assert not linked & terms
    assert {N(ID + "hashim-mammadov"), N(ID + "ministerial-conference-16"),
            N(ID + "role-observer")} <= terms
    assert not any(isinstance(term, ox.BlankNode) for term in terms)


def test_two_derivations_give_the_same_graph(store):
    assert wikidata.derive(store, Iris()) == wikidata.derive(store, Iris())


def test_another_base_mints_the_same_graph_under_it():
    other = Iris("http://localhost:8000/")
    default_view = {_rebase_nt(t, Iris(), other) for t in view_of(build(Sources.of(REPO), Iris()))}
    other_view = {str(t) for t in view_of(build(Sources.of(REPO), other), other)}
    assert other_view == default_view
    assert any("http://localhost:8000/id/statement/" in t for t in other_view)


def _rebase_nt(triple: ox.Triple, old: Iris, new: Iris) -> str:
    return str(ox.Triple(*(N(old.rebase(t.value, new)) if isinstance(t, ox.NamedNode) else t
                           for t in triple)))


def test_derive_into_adds_its_graph_and_nothing_else():
    store = load_dataset(Sources.of(REPO), DEFAULT)
    before = {str(q) for q in store}
    graph = N("urn:x-test:view")
    n = wikidata.derive_into(store, DEFAULT, graph)
    view = {ox.Triple(q.subject, q.predicate, q.object)
            for q in store.quads_for_pattern(None, None, None, graph)}
    assert n == len(view) and view
    assert {str(q) for q in store if q.graph_name != graph} == before
    store.remove_graph(graph)
    assert wikidata.derive(store, DEFAULT) == view  # the set API: the same triples


def test_derive_into_refuses_a_graph_the_store_has():
    store = load_dataset(Sources.of(REPO), DEFAULT)
    graph = N(DEFAULT.graph("facts"))
    size = len(store)
    with pytest.raises(ValueError, match="already has the graph"):
        wikidata.derive_into(store, DEFAULT, graph)
    assert len(store) == size


def test_a_rule_answer_that_looks_like_blank_nodes_is_kept_whole():
    # A rule's answer goes back into the store as N-Triples unless it has "_:" in it (blank
    # nodes, which reparsing would rename): then as triples. A quote with "_:" in its text
    # takes that path, and the view is the same but for that text.
    store = load_dataset(Sources.of(REPO), DEFAULT)
    plain = wikidata.derive(store, DEFAULT)
    exact = N("http://www.w3.org/ns/oa#exact")
    cited = next(t.object for t in plain if t.predicate == N(PR + "P1683"))
    quad = next(iter(store.quads_for_pattern(None, exact, cited, None)))
    odd = L(quad.object.value + " _:b0", language="ar")
    store.remove(quad)
    store.add(ox.Quad(quad.subject, exact, odd, quad.graph_name))
    view = wikidata.derive(store, DEFAULT)
    assert len(view) == len(plain) and any(t.object == odd for t in view)
    assert {t for t in view if t.object != odd} == {t for t in plain if t.object != quad.object}


def test_ambiguous_same_as_is_refused():
    store = ox.Store()
    for q in ("Q1", "Q2"):
        store.add(ox.Quad(N(ID + "x"), N(OWL_SAME_AS), N(WD + q)))
    with pytest.raises(ValueError, match="several Wikidata items"):
        wikidata.derive(store, Iris())


# ------------------------------------------------------------------ queries written for WDQS


def test_there_are_wdqs_queries_with_a_header():
    assert len(WDQS_QUERIES) >= 4
    for query in WDQS_QUERIES:
        text = query.read_text("utf-8")
        assert text.startswith("# "), query.name
        assert "PREFIX wd: <http://www.wikidata.org/entity/>" in text, query.name


@pytest.mark.parametrize("query", WDQS_QUERIES, ids=lambda p: p.stem)
def test_wdqs_query_runs_unchanged_and_answers_as_expected(store, query):
    want = json.loads((REPO / "tests" / "expected" / f"{query.stem}.json").read_text("utf-8"))
    result = store.query(query.read_text("utf-8"), use_default_graph_as_union=True)
    names = [v.value for v in result.variables]
    rows = [{n: s[n].value for n in names if s[n] is not None} for s in result]
    assert want["rows"]
    def canonical(rs):
        return sorted(sorted(r.items()) for r in rs)

    assert canonical(rows) == canonical(want["rows"])


# ------------------------------------------------------------------ links in the data


def test_every_same_as_is_a_verified_item_and_unlinked_entities_have_none(store):
    same_as = {(q.subject.value, q.object.value)
               for q in store.quads_for_pattern(None, N(OWL_SAME_AS), None, None)}
    assert {o[len(WD):] for _, o in same_as} == SAME_AS_QIDS
    assert all(o.startswith(WD) for _, o in same_as)
    for slug in ("hashim-mammadov", "ministerial-conference-16", "mid-term-ministerial-conference",
                 "role-observer"):
        assert not [o for s, o in same_as if s == ID + slug], slug
    skos = "http://www.w3.org/2004/02/skos/core#"
    matches = {q.object.value[len(WD):] for p in ("exactMatch", "closeMatch", "relatedMatch",
                                                  "related")
               for q in store.quads_for_pattern(None, N(skos + p), None, None)
               if q.object.value.startswith(WD + "Q")}
    contained = {q.object.value[len(WD):] for q in store.quads_for_pattern(
        None, N("https://schema.org/containedInPlace"), None, None)}
    assert matches | contained == MATCH_QIDS


def test_links_from_store(store):
    links = wikidata.links_from_store(store, Iris())
    assert {q for _, q, _ in links} == SAME_AS_QIDS
    assert (ID + "non-aligned-movement", "Q83201", "Non-Aligned Movement") in links
    assert all(label for _, _, label in links)


# ------------------------------------------------------------------ exports


def small_store() -> ox.Store:
    return build(Sources([], [FIXTURES / "small.ttl"], [], FIXTURES, FIXTURES), Iris())


def test_quickstatements_of_the_fixture():
    store = small_store()
    got = wikidata.export(store, "quickstatements", iris=Iris(),
                          reference_url="https://example.org/article")
    assert got.decode("utf-8") == (FIXTURES / "small.qs").read_text("utf-8")
    unsourced = wikidata.export(store, "quickstatements", iris=Iris())
    assert unsourced.decode("utf-8") == (FIXTURES / "small-unsourced.qs").read_text("utf-8")


def test_quickstatements_of_the_repository_name_only_linked_items(store):
    lines = wikidata.export(store, "quickstatements", iris=Iris(),
                            reference_url="https://example.org/a").decode().splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["Q227", "P463", "Q83201"], ["Q83201", "P488", "Q57371"], ["Q83201", "P2124", "120"]]
    assert "P580\t+2011-00-00T00:00:00Z/9" in lines[0]
    assert "P582\t+2023-00-00T00:00:00Z/9" in lines[1]
    for line in lines:
        cols = line.split("\t")
        assert all(c.startswith(("Q", "P", "S", "+", '"', 'ar:"')) or c.isdigit() for c in cols)
        assert "w3id.org" not in line


RDF_FORMATS = {"ttl": ("turtle", ox.RdfFormat.TURTLE), "nt": ("nt", ox.RdfFormat.N_TRIPLES),
               "wikibase": ("turtle", ox.RdfFormat.TURTLE),
               "nq": ("nquads", ox.RdfFormat.N_QUADS), "trig": ("trig", ox.RdfFormat.TRIG),
               "jsonld": ("json-ld", ox.RdfFormat.JSON_LD)}


@pytest.mark.parametrize("fmt", RDF_FORMATS)
def test_exports_parse_back(store, fmt):
    body = wikidata.export(store, fmt, iris=Iris())
    rdflib_format, ox_format = RDF_FORMATS[fmt]
    quads = list(store.quads_for_pattern(None, None, None, None))
    if fmt == "wikibase":
        want = len(view_of(store))
    elif ox_format.supports_datasets:
        want = len(quads)
    else:
        want = len({(q.subject, q.predicate, q.object) for q in quads})
    parsed = list(ox.parse(body, format=ox_format))
    assert len(parsed) == want
    if ox_format.supports_datasets:
        assert {q.graph_name for q in parsed} == {q.graph_name for q in quads}
        dataset = rdflib.Dataset()
        dataset.parse(data=body, format=rdflib_format)
        assert len(list(dataset.quads((None, None, None, None)))) == want
    else:
        assert len(rdflib.Graph().parse(data=body, format=rdflib_format)) == want


def test_wikibase_export_uses_the_wdqs_prefixes(store):
    head = wikidata.export(store, "wikibase", iris=Iris()).decode()
    for prefix in ("wd", "wdt", "p", "ps", "pq", "pqv", "pr", "wikibase", "prov"):
        assert f"@prefix {prefix}: <{wikidata.WDQS_PREFIXES[prefix]}> ." in head


def test_unknown_export_format_is_refused(store):
    with pytest.raises(ValueError, match="unknown export format"):
        wikidata.export(store, "csv", iris=Iris())


# ------------------------------------------------------------------ the link check


def recorded(url: str) -> bytes:
    return (FIXTURES / "wbgetentities.json").read_bytes()


def test_check_links_against_the_recorded_answer(store):
    asked = []
    links = wikidata.links_from_store(store, Iris())
    results = wikidata.check_links(links, fetch=lambda url: asked.append(url) or recorded(url))
    assert asked == [wikidata.WIKIDATA_API + "?action=wbgetentities&ids=Q227|Q1065|Q4648|Q7159"
                     "|Q47543|Q57371|Q83201|Q81068910&props=labels&languages=en|ar&format=json"]
    assert {r.status for r in results} == {"ok"}, [r for r in results if r.status != "ok"]
    assert len(results) == len(links) == 8
    nam = next(r for r in results if r.qid == "Q83201")
    assert nam.wikidata_label == "Non-Aligned Movement" and "حركة عدم الانحياز" in nam.detail


def test_check_links_reports_mismatches_and_missing_items():
    links = [(ID + "a", "Q47543", "organisation of islamic cooperation!"),
             (ID + "b", "Q83201", "Organisation of Islamic Cooperation"),
             (ID + "c", "Q999999999", "Nothing")]
    ok, mismatch, missing = wikidata.check_links(links, fetch=recorded)
    assert ok.status == "ok"
    assert mismatch.status == "mismatch" and "Non-Aligned Movement" in mismatch.detail
    assert missing.status == "missing"


def test_check_links_redirected_item():
    item = {"type": "item", "id": "Q2", "redirects": {"from": "Q1", "to": "Q2"},
            "labels": {"en": {"language": "en", "value": "Earth"}}}
    answer = {"entities": {"Q2": item}}
    (result,) = wikidata.check_links([(ID + "e", "Q1", "Earth")],
                                     fetch=lambda url: json.dumps(answer).encode())
    assert result.status == "redirected" and "Q2" in result.detail


def test_check_links_over_http_from_a_local_server():
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen["path"], seen["agent"] = self.path, self.headers.get("User-Agent")
            body = recorded(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = f"http://127.0.0.1:{server.server_address[1]}/w/api.php"
        (result,) = wikidata.check_links([(ID + "bali", "Q4648", "Bali")], api=api)
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == "ok"
    assert seen["path"].startswith("/w/api.php?action=wbgetentities&ids=Q4648&")
    assert seen["agent"].startswith("nam-kg/")


def test_check_links_is_skipped_when_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    (result,) = wikidata.check_links([(ID + "bali", "Q4648", "Bali")],
                                     api=f"http://127.0.0.1:{port}/w/api.php", timeout=2)
    assert result.status == "skipped" and "not checked" in result.detail


def test_check_links_gives_up_at_the_timeout_when_the_server_never_answers():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # connections complete in the backlog, but nobody answers
        api = f"http://127.0.0.1:{s.getsockname()[1]}/w/api.php"
        started = time.monotonic()
        results = wikidata.check_links([(ID + "bali", "Q4648", "Bali"),
                                        (ID + "nam", "Q83201", "Non-Aligned Movement")],
                                       api=api, timeout=0.5)
        elapsed = time.monotonic() - started
    assert [r.status for r in results] == ["skipped", "skipped"]
    assert elapsed < 3  # generous bound on a 0.5 s deadline


def test_check_links_survives_a_broken_answer():
    (result,) = wikidata.check_links([(ID + "bali", "Q4648", "Bali")], fetch=lambda url: b"<html>")
    assert result.status == "skipped"
