"""Wikidata: the Wikibase-shaped view of our facts, exports (RDF, QuickStatements), link check.

The view is made by the SPARQL CONSTRUCT rules in ``views/`` (written under the default base
``https://w3id.org/nam-kg/``, replaced by ``iris.base`` before running). First pass: every rule
but those in :data:`LATER_PASSES`, over the union of the graphs; then every entity with an
``owl:sameAs`` Wikidata item is replaced by the item. Second pass, over the data and the first
pass: references and truthy ``wdt:`` triples; third, over all that: the property entities of
every property used (including the references' ``pr:`` ones); last, for WDQS's label service,
the labels, descriptions and aliases of the items and properties the view mentions
(``labels.rq``), from data only: our linked entities', Wikidata's own as recorded with their
source (``data/wikidata-terms.ttl``), or those of the one term of ours aligned (said so in the
description); an item with none of these has none.
Statement, reference and value nodes are IRIs minted from what they stand for, so two builds
give the same graph.

>>> qs_time("2011-01-01T00:00:00Z", 9), qs_time("2021-07-01T00:00:00Z", 10)
('+2011-00-00T00:00:00Z/9', '+2021-07-00T00:00:00Z/10')
>>> same_label("Non-Aligned Movement", "non aligned movement."), same_label("Bali", "Java")
(True, False)
"""

from __future__ import annotations

import json
import re
import threading
import time
import unicodedata
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyoxigraph as ox

from .. import __version__
from ..config import DEFAULT_BASE
from ..iris import Iris
from ..query.wdqs_prefixes import PREFIXES
from .layout import graph_size

# The prefixes the export writes with (those of WDQS, by the same names).
WDQS_PREFIXES = {k: PREFIXES[k] for k in ("wd", "wdt", "p", "ps", "psv", "pq", "pqv", "pr", "prv",
                                          "wikibase", "prov", "xsd")}
VIEWS = Path(__file__).parent / "views"
LATER_PASSES = (("references.rq", "best-rank.rq"), ("properties.rq",), ("labels.rq",))
FORMATS = ("ttl", "nt", "nq", "jsonld", "trig", "wikibase", "quickstatements")
WIKIDATA_API = "https://www.wikidata.org/w/api.php"
USER_AGENT = f"nam-kg/{__version__} (https://w3id.org/nam-kg/; label check of our links)"

_QID = re.compile(r"^http://www\.wikidata\.org/entity/(Q[0-9]+)$")
_PID = re.compile(r"^P[0-9]+$")
_SCRATCH = ox.NamedNode("urn:x-nam-kg:first-pass")
_RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_OWL_SAME_AS = "http://www.w3.org/2002/07/owl#sameAs"
_RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
_WB = WDQS_PREFIXES["wikibase"]
_PROV_DERIVED = WDQS_PREFIXES["prov"] + "wasDerivedFrom"


# ------------------------------------------------------------------ the view


def rules() -> dict[str, str]:
    """The CONSTRUCT rules by file name, as written (under the default base)."""
    return {p.name: p.read_text("utf-8") for p in sorted(VIEWS.glob("*.rq"))}


def derive(store: ox.Store, iris: Iris) -> set[ox.Triple]:
    """The Wikidata-shaped triples of the facts in ``store``, as a set (``store`` ends as it
    was): :func:`derive_into` a scratch graph, read back."""
    if store.contains_named_graph(_SCRATCH):
        raise ValueError(f"the store already has the scratch graph {_SCRATCH}")
    try:
        derive_into(store, iris, _SCRATCH)
        return {ox.Triple(q.subject, q.predicate, q.object)
                for q in store.quads_for_pattern(None, None, None, _SCRATCH)}
    finally:
        store.remove_graph(_SCRATCH)


def derive_into(store: ox.Store, iris: Iris, graph: ox.NamedNode) -> int:
    """Derive the view into ``graph`` of ``store`` (a graph it must not have yet); its size.

    Each pass's rules run over the union of the graphs, ``graph`` included, so a later pass
    sees what the passes before it derived; between the first and the second pass every entity
    with an ``owl:sameAs`` item is replaced by the item. The triples never become Python objects:
    a rule's answer goes back into the store as N-Triples bytes and the replacement is a SPARQL
    update (at 1M triples, 20 s -> 12 s, and no 0.7M objects to free afterwards).
    """
    if store.contains_named_graph(graph):
        raise ValueError(f"the store already has the graph {graph}")
    texts = {name: text.replace(DEFAULT_BASE, iris.base) for name, text in rules().items()}
    items = same_as(store)
    passes = [[name for name in texts if not any(name in names for names in LATER_PASSES)],
              *LATER_PASSES]
    try:
        for i, names in enumerate(passes):
            answers = [_construct(store, texts[name], name) for name in names]  # one state
            for answer in answers:
                _add(store, answer, graph)
            if i == 0:
                _replace_items(store, graph, items)
    except BaseException:
        store.remove_graph(graph)
        raise
    return graph_size(store, graph)


def _replace_items(store: ox.Store, graph: ox.NamedNode,
                   items: dict[ox.NamedNode, ox.NamedNode]) -> None:
    """In ``graph``, each entity replaced by its item, wherever it stands in a triple."""
    if not items:
        return
    values = " ".join(f"({e} {q})" for e, q in items.items())
    for old, new in (("?e ?p ?o", "?q ?p ?o"), ("?s ?e ?o", "?s ?q ?o"),
                     ("?s ?p ?e", "?s ?p ?q")):
        store.update(f"DELETE {{ GRAPH {graph} {{ {old} }} }} "
                     f"INSERT {{ GRAPH {graph} {{ {new} }} }} "
                     f"WHERE {{ VALUES (?e ?q) {{ {values} }} GRAPH {graph} {{ {old} }} }}")


def _add(store: ox.Store, answer: bytes | list[ox.Triple], graph: ox.NamedNode) -> None:
    if isinstance(answer, bytes):
        store.bulk_load(answer, format=ox.RdfFormat.N_TRIPLES, to_graph=graph, lenient=True)
    else:
        store.extend(ox.Quad(s, p, o, graph) for s, p, o in answer)


def same_as(store: ox.Store) -> dict[ox.NamedNode, ox.NamedNode]:
    """Our entity -> its Wikidata item (``owl:sameAs``); two items for one entity: an error."""
    found: dict[ox.NamedNode, set[ox.NamedNode]] = defaultdict(set)
    for s, _, o, _ in store.quads_for_pattern(None, ox.NamedNode(_OWL_SAME_AS), None, None):
        if isinstance(s, ox.NamedNode) and isinstance(o, ox.NamedNode) and _QID.match(o.value):
            found[s].add(o)
    ambiguous = sorted(s.value for s, items in found.items() if len(items) > 1)
    if ambiguous:
        raise ValueError(f"several Wikidata items for one entity: {', '.join(ambiguous)}")
    return {s: next(iter(items)) for s, items in found.items()}


def _construct(store: ox.Store, text: str, name: str) -> bytes | list[ox.Triple]:
    """A rule's answer as N-Triples; as triples if it has blank nodes, which parsing the bytes
    back would rename (b"_:" may also be text in a literal: then the triples, needlessly)."""
    try:
        data = store.query(text, use_default_graph_as_union=True).serialize(
            format=ox.RdfFormat.N_TRIPLES)
        if b"_:" in data:
            return list(store.query(text, use_default_graph_as_union=True))
        return data
    except SyntaxError as exc:
        raise SyntaxError(f"views/{name}: {exc}") from exc


def _key(triple) -> tuple[str, ...]:
    return tuple(str(t) for t in triple)


# ------------------------------------------------------------------ exports


def export(store: ox.Store, fmt: str, *, iris: Iris, reference_url: str | None = None) -> bytes:
    """The store in ``fmt``: ``nq``/``trig``/``jsonld`` keep the named graphs, ``ttl``/``nt``
    give the union of the graphs, ``wikibase`` the Wikidata-shaped graph alone (Turtle, WDQS
    prefixes), ``quickstatements`` its statements about Wikidata items (see
    :func:`quickstatements`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt in ("wikibase", "quickstatements"):
        graph = ox.NamedNode(iris.graph("wikidata"))
        triples = sorted((ox.Triple(q.subject, q.predicate, q.object)
                          for q in store.quads_for_pattern(None, None, None, graph)), key=_key)
        if fmt == "quickstatements":
            return quickstatements(triples, reference_url).encode("utf-8")
        prefixes = {**WDQS_PREFIXES, "id": iris.base + "id/"}
        return ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes=prefixes)
    prefixes = data_prefixes(iris)
    quads = sorted(store.quads_for_pattern(None, None, None, None), key=_key)
    if fmt in ("ttl", "nt"):
        triples = sorted({ox.Triple(q.subject, q.predicate, q.object) for q in quads}, key=_key)
        if fmt == "nt":
            return ox.serialize(triples, format=ox.RdfFormat.N_TRIPLES)
        return ox.serialize(triples, format=ox.RdfFormat.TURTLE, prefixes=prefixes)
    form = {"nq": ox.RdfFormat.N_QUADS, "trig": ox.RdfFormat.TRIG, "jsonld": ox.RdfFormat.JSON_LD}
    return ox.serialize(quads, format=form[fmt], prefixes=None if fmt == "nq" else prefixes)


def data_prefixes(iris: Iris) -> dict[str, str]:
    return {
        "id": iris.base + "id/", "nam": iris.vocab, "graph": iris.base + "graph/",
        "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
        "owl": "http://www.w3.org/2002/07/owl#", "xsd": "http://www.w3.org/2001/XMLSchema#",
        "skos": "http://www.w3.org/2004/02/skos/core#", "prov": "http://www.w3.org/ns/prov#",
        "org": "http://www.w3.org/ns/org#", "time": "http://www.w3.org/2006/time#",
        "schema": "https://schema.org/", "dcterms": "http://purl.org/dc/terms/",
        "oa": "http://www.w3.org/ns/oa#", "foaf": "http://xmlns.com/foaf/0.1/",
        "void": "http://rdfs.org/ns/void#",
        **{k: v for k, v in WDQS_PREFIXES.items() if k not in ("prov", "xsd")},
    }


_RANK_ORDER = {_WB + "PreferredRank": 0, _WB + "NormalRank": 1}


def quickstatements(triples: Iterable[ox.Triple], reference_url: str | None = None) -> str:
    """QuickStatements v1 commands for the statements of a Wikidata-shaped graph.

    Only statements about a Wikidata item whose value is an item (or a time, quantity or text)
    and that cite a quote of the article: unlinked entities are skipped, never given a QID.
    Qualifiers whose value is not an item (our role IRIs) are left out. Times carry their
    precision (``/9`` year, ``/10`` month). QuickStatements adds to an existing statement with
    the same value, so of several statements with one subject, property and value only the
    best ranked is written (the observer status would else merge into the full membership).

    With ``reference_url``, the source of each command is that URL (S854) with the Arabic
    quotes (S1683). Without it, no source is written: QuickStatements v1 has no comment lines,
    only a ``/* ... */`` comment ending a command (its edit summary), which says one is needed.
    """
    props: dict = defaultdict(list)
    for s, p, o in triples:
        props[s].append((p.value, o))

    chosen: dict[tuple, tuple] = {}
    for subject, pairs in props.items():
        subject_qid = _qid(subject)
        for pred, st in pairs:
            pid = pred[len(WDQS_PREFIXES["p"]):] if pred.startswith(WDQS_PREFIXES["p"]) else ""
            if not (subject_qid and _PID.match(pid)):
                continue
            facets = props.get(st, [])
            rank = next((o.value for p, o in facets if p == _WB + "rank"), None)
            values = [o for p, o in facets if p == WDQS_PREFIXES["ps"] + pid]
            refs = sorted((o for p, o in facets if p == _PROV_DERIVED), key=str)
            value = _qs_value(values[0], facets, "psv", pid, props) if len(values) == 1 else None
            if value is None or rank not in _RANK_ORDER or not refs:
                continue
            qualifiers = sorted(
                (int(p[len(WDQS_PREFIXES["pq"]) + 1:]), p[len(WDQS_PREFIXES["pq"]):], text)
                for p, o in facets if p.startswith(WDQS_PREFIXES["pq"])
                and _PID.match(p[len(WDQS_PREFIXES["pq"]):])
                and (text := _qs_value(o, facets, "pqv", p[len(WDQS_PREFIXES["pq"]):], props)))
            key = (int(subject_qid[1:]), int(pid[1:]), value)
            candidate = (_RANK_ORDER[rank], st.value, subject_qid, pid, value,
                         [q[1:] for q in qualifiers], refs)
            if key not in chosen or candidate[:2] < chosen[key][:2]:
                chosen[key] = candidate

    lines = []
    for key in sorted(chosen):
        _, _, qid, pid, value, qualifiers, refs = chosen[key]
        cols = [qid, pid, value] + [c for q in qualifiers for c in q]
        if reference_url is None:
            lines.append("\t".join(cols) + " /* nam-kg: source needed: no reference URL was"
                         " given for the article */")
            continue
        cols += ["S854", _qs_string(reference_url)]
        for ref in refs:
            for p, o in props.get(ref, []):
                if p == WDQS_PREFIXES["pr"] + "P248" and _qid(o):
                    cols += ["S248", _qid(o)]
        for ref in refs:
            for p, o in sorted(props.get(ref, []), key=lambda po: str(po[1])):
                if p == WDQS_PREFIXES["pr"] + "P1683" and isinstance(o, ox.Literal):
                    cols += ["S1683", _qs_literal(o)]
        lines.append("\t".join(cols))
    return "".join(line + "\n" for line in lines)


def qs_time(lexical: str, precision: int) -> str:
    """A WDQS dateTime as a QuickStatements time, zeroing what the precision does not give."""
    date = lexical[:10]
    year, month, day = date[:4], date[5:7], date[8:10]
    if precision < 11:
        day = "00"
    if precision < 10:
        month = "00"
    return f"+{year}-{month}-{day}T00:00:00Z/{precision}"


def _qid(term) -> str | None:
    match = _QID.match(term.value) if isinstance(term, ox.NamedNode) else None
    return match.group(1) if match else None


def _qs_value(term, facets, value_ns: str, pid: str, props) -> str | None:
    """One value in QuickStatements syntax, or None when it has none (an unlinked IRI)."""
    if isinstance(term, ox.NamedNode):
        return _qid(term)
    if not isinstance(term, ox.Literal):
        return None
    kind = term.datatype.value
    if kind == WDQS_PREFIXES["xsd"] + "dateTime":
        node_pred = WDQS_PREFIXES[value_ns] + pid
        for p, node in facets:
            node_facets = dict((q, o) for q, o in props.get(node, [])) if p == node_pred else {}
            if node_facets.get(_WB + "timeValue") == term:
                return qs_time(term.value, int(node_facets[_WB + "timePrecision"].value))
        return None
    if kind in (WDQS_PREFIXES["xsd"] + "decimal", WDQS_PREFIXES["xsd"] + "integer"):
        return term.value
    return _qs_literal(term)


def _qs_literal(term: ox.Literal) -> str:
    text = _qs_string(term.value)
    return f"{term.language}:{text}" if term.language else text


def _qs_string(text: str) -> str:
    return '"' + re.sub(r"[\t\r\n]+", " ", text) + '"'  # a tab would end the column


# ------------------------------------------------------------------ the link check


@dataclass(frozen=True)
class CheckResult:
    """The check of one link: status ``ok``, ``mismatch``, ``missing``, ``redirected`` or
    ``skipped`` (Wikidata not reachable), with a human-readable detail."""

    entity: str
    qid: str
    label: str
    status: str
    wikidata_label: str | None = None
    detail: str = ""


def links_from_store(store: ox.Store, iris: Iris) -> list[tuple[str, str, str]]:
    """(entity, QID, our English label) for each ``owl:sameAs`` link in the links graph.

    Identity links only: a concept's ``skos:exactMatch`` (military bloc / military alliance)
    does not promise the same label.
    """
    query = f"""
        SELECT ?entity ?item (MIN(?l) AS ?label) WHERE {{
          GRAPH <{iris.graph("links")}> {{ ?entity <{_OWL_SAME_AS}> ?item }}
          OPTIONAL {{ ?entity <{_RDFS_LABEL}> ?l FILTER(LANGMATCHES(LANG(?l), "en")) }}
        }} GROUP BY ?entity ?item ORDER BY ?entity ?item"""
    out = []
    for row in store.query(query, use_default_graph_as_union=True):
        qid = _qid(row["item"])
        if qid:
            out.append((row["entity"].value, qid, row["label"].value if row["label"] else ""))
    return out


def check_links(links: list[tuple[str, str, str]], *, fetch: Callable[[str], bytes] | None = None,
                timeout: float = 5, api: str = WIKIDATA_API) -> list[CheckResult]:
    """Compare each link's English label with Wikidata's (``wbgetentities``).

    ``fetch(url) -> bytes`` defaults to an HTTP GET. Never raises for network trouble and never
    takes much longer than ``timeout`` seconds in all: every link is then ``skipped``.
    """
    qids = sorted({qid for _, qid, _ in links}, key=lambda q: int(q[1:]))
    fetch = fetch or (lambda url: _http_get(url, timeout))
    deadline = time.monotonic() + timeout
    entities: dict = {}
    try:
        for start in range(0, len(qids), 50):  # the API's limit of ids per request
            query = urllib.parse.urlencode(
                {"action": "wbgetentities", "ids": "|".join(qids[start:start + 50]),
                 "props": "labels", "languages": "en|ar", "format": "json"}, safe="|")
            body = _within(deadline - time.monotonic(), fetch, f"{api}?{query}")
            answer = json.loads(body)
            if "error" in answer:
                raise ValueError(f"API error: {answer['error'].get('info', answer['error'])}")
            for key, entity in answer["entities"].items():
                entities[key] = entity
                if isinstance(entity.get("redirects"), dict):
                    entities[entity["redirects"]["from"]] = entity
    except Exception as exc:  # offline, slow, or an odd answer: the check must never fail
        reason = f"Wikidata not checked: {type(exc).__name__}: {exc}"
        return [CheckResult(e, q, label, "skipped", None, reason) for e, q, label in links]
    return [_compare(e, q, label, entities.get(q)) for e, q, label in links]


def same_label(ours: str, theirs: str) -> bool:
    """Equal up to case, punctuation and spacing."""
    return _normal(ours) == _normal(theirs)


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


def _compare(entity: str, qid: str, label: str, item: dict | None) -> CheckResult:
    if item is None or "missing" in item:
        return CheckResult(entity, qid, label, "missing", None, f"{qid} does not exist")
    labels = item.get("labels", {})
    theirs = labels.get("en", {}).get("value")
    arabic = labels.get("ar", {}).get("value")
    also = f" (ar {arabic!r})" if arabic else ""
    if item.get("id", qid) != qid:
        return CheckResult(entity, qid, label, "redirected", theirs,
                           f"{qid} redirects to {item['id']}: update the link")
    if theirs is None:
        return CheckResult(entity, qid, label, "mismatch", None, "no English label on Wikidata")
    if same_label(label, theirs):
        return CheckResult(entity, qid, label, "ok", theirs, f"Wikidata: {theirs!r}{also}")
    return CheckResult(entity, qid, label, "mismatch", theirs,
                       f"ours {label!r}, Wikidata {theirs!r}{also}")


def _http_get(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT,
                                                   "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _within(seconds: float, fn: Callable[[str], bytes], url: str) -> bytes:
    """``fn(url)`` in a daemon thread, abandoned after ``seconds`` (a slow server can keep a
    socket read alive past its own timeout by sending a byte at a time)."""
    if seconds <= 0:
        raise TimeoutError("no time left")
    box: dict = {}

    def run() -> None:
        try:
            box["body"] = fn(url)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="wikidata-fetch", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no answer from Wikidata within {seconds:.1f}s")
    if "error" in box:
        raise box["error"]
    return box["body"]
