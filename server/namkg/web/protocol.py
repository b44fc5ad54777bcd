"""SPARQL 1.1 Protocol: request parsing and content negotiation (the service description is
:mod:`namkg.web.service_description`).

Pure functions over a request's WSGI environ and header values (werkzeug's parsers, no request
object: its properties cost a query ~10 us); the views live in ``endpoint.py``.

>>> negotiate("text/csv;q=0.5, application/sparql-results+xml", None)
Negotiated(solutions='application/sparql-results+xml', graph=None)
>>> negotiate(None, None)
Negotiated(solutions='application/sparql-results+json', graph='text/turtle')
>>> negotiate("*/*", "ttl")
Negotiated(solutions=None, graph='text/turtle')
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote_to_bytes

import pyoxigraph as ox
from werkzeug.datastructures import MIMEAccept
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import parse_accept_header, parse_options_header
from werkzeug.sansio.utils import get_content_length
from werkzeug.wsgi import get_input_stream

QRF, RDF = ox.QueryResultsFormat, ox.RdfFormat

# Server preference order: the first is the default, and ties in Accept (equal q from equally
# specific ranges) go to the earlier one.
SOLUTION_FORMATS: tuple[ox.QueryResultsFormat, ...] = (QRF.JSON, QRF.XML, QRF.CSV, QRF.TSV)
GRAPH_FORMATS: tuple[ox.RdfFormat, ...] = (
    RDF.TURTLE, RDF.N_TRIPLES, RDF.N_QUADS, RDF.TRIG, RDF.RDF_XML, RDF.JSON_LD,
)
# Formats pyoxigraph knows but we do not write, answered with one we do (Turtle is valid N3).
_GRAPH_STANDINS = {RDF.N3: RDF.TURTLE, RDF.STREAMING_JSON_LD: RDF.JSON_LD}
# ``format=`` names pyoxigraph's ``from_extension`` does not know (SPARQLWrapper sends several).
_FORMAT_NAMES = {
    "turtle": RDF.TURTLE, "ntriples": RDF.N_TRIPLES, "n-triples": RDF.N_TRIPLES,
    "nquads": RDF.N_QUADS, "n-quads": RDF.N_QUADS, "rdfxml": RDF.RDF_XML,
    "rdf+xml": RDF.RDF_XML, "json-ld": RDF.JSON_LD,
}
# pyoxigraph 0.5 gives JSON-LD a non-standard IRI; this is the one in http://www.w3.org/ns/formats/.
_FORMAT_IRI = {RDF.JSON_LD: "http://www.w3.org/ns/formats/JSON-LD"}

BODY = "namkg.body"  # WSGI environ key: the whole request body, read ahead (web/gate.py)
SPARQL_QUERY = "application/sparql-query"
SPARQL_UPDATE = "application/sparql-update"
FORM = "application/x-www-form-urlencoded"


class ProtocolError(Exception):
    """A request the protocol rejects; ``status`` and ``message`` become the HTTP answer."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def media_type(fmt) -> str:
    """The bare media type of a pyoxigraph format (pyoxigraph adds a charset to CSV/TSV).

    >>> media_type(QRF.CSV), media_type(RDF.TURTLE)
    ('text/csv', 'text/turtle')
    """
    return fmt.media_type.split(";")[0].strip()


def format_iri(fmt) -> str:
    return _FORMAT_IRI.get(fmt, fmt.iri)


# ---------------------------------------------------------------- Accept header
#
# werkzeug parses the header and does the matching of RFC 9110 §12.5.1: the most specific range
# that matches an offer gives its q (parameters count: ``text/html;level=1`` is not a range for
# ``text/html``), q=0 is "not acceptable", a range with an invalid q is dropped, and at equal q
# a range naming the type beats a wildcard, then the earlier offer (our preference) wins. Ours on
# top: the other names of our formats, and what to do with a header that says nothing usable.

_RANGE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ANY = MIMEAccept([("*/*", 1)])


def parse_accept(header: str | None) -> MIMEAccept:
    """The valid media ranges of an Accept header, most specific first; malformed ones are
    skipped, so a header with none is falsy (callers then read it as ``*/*``).

    >>> parse_accept('text/html, */*;q=0.1, bad, */x, a/b;q=7')
    MIMEAccept([('text/html', 1), ('*/*', 0.1)])
    >>> parse_accept('*')  # seen from old clients; means */*
    MIMEAccept([('*/*', 1)])
    """
    ranges = []
    for value, q in parse_accept_header(header, MIMEAccept):
        bare, sep, params = value.partition(";")
        bare = "*/*" if bare.strip() == "*" else bare.strip()
        if _RANGE.fullmatch(bare) and (bare == "*/*" or not bare.startswith("*/")):
            ranges.append((bare + sep + params, q))
    return MIMEAccept(ranges)


def _resolve(family, name: str):
    """The format of ``family`` a media type names, or None (uses pyoxigraph's own table)."""
    try:
        fmt = family.from_media_type(name)
    except ValueError:
        return None
    if family is RDF:
        fmt = _GRAPH_STANDINS.get(fmt, fmt)
        return fmt if fmt in GRAPH_FORMATS else None
    return fmt if fmt in SOLUTION_FORMATS else None


@lru_cache(maxsize=512)
def _in_terms_of(family, value: str) -> str:
    """A range renamed to the media type of the format of ``family`` it names, if any.

    pyoxigraph's table knows the other names (``text/plain`` is N-Triples or CSV,
    ``application/json`` JSON-LD or SPARQL JSON, ``text/n3`` Turtle) and reads through parameters
    (we write UTF-8 whatever the charset asked; a JSON-LD profile gets plain JSON-LD).

    >>> _in_terms_of(RDF, "text/plain;charset=utf-8"), _in_terms_of(QRF, "text/plain")
    ('application/n-triples', 'text/csv')
    """
    fmt = _resolve(family, value)
    return media_type(fmt) if fmt is not None else value


def _bare(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def best_offer(ranges: MIMEAccept, family, offers) -> tuple[object | None, float]:
    """The format among ``offers`` (in preference order) the client takes, and its q.

    >>> best_offer(parse_accept("application/rdf+xml, */*"), RDF, GRAPH_FORMATS)  # named wins
    (<RdfFormat RDF/XML>, 1.0)
    >>> best_offer(parse_accept("image/png"), RDF, GRAPH_FORMATS)
    (None, 0.0)
    """
    offered = {media_type(fmt): fmt for fmt in offers}
    # Only the ranges that can match an offer go to werkzeug, which tries each range on each
    # offer: a long header of others (``a/b,`` * 2000) would cost tens of ms per request.
    kinds = {"*/*", *offered, *(m.split("/")[0] + "/*" for m in offered)}
    renamed = ((_in_terms_of(family, value), q) for value, q in ranges)
    ranges = MIMEAccept(dict.fromkeys(r for r in renamed if _bare(r[0]) in kinds))
    best = ranges.best_match(offered)
    return (offered[best], float(ranges.quality(best))) if best else (None, 0.0)


def preferred_quality(accept: str | None, media: str) -> float:
    """q the client gives to one media type (``*/*`` when there is no header).

    >>> preferred_quality("text/html,application/xml;q=0.9,*/*;q=0.8", "text/html")
    1.0
    """
    return float((parse_accept(accept) or _ANY).quality(media))


def best_graph_quality(accept: str | None) -> float:
    """q of the RDF format negotiation would pick (compare with ``preferred_quality``)."""
    return best_offer(parse_accept(accept) or _ANY, RDF, GRAPH_FORMATS)[1]


@dataclass(frozen=True)
class Negotiated:
    """Chosen media types: ``solutions`` for SELECT/ASK, ``graph`` for CONSTRUCT/DESCRIBE."""

    solutions: str | None
    graph: str | None


def parse_format(name: str) -> Negotiated:
    """What a ``format=`` value names: a short name or a media type (400 if neither).

    >>> parse_format("json")
    Negotiated(solutions='application/sparql-results+json', graph='application/ld+json')
    >>> parse_format("text/csv")
    Negotiated(solutions='text/csv', graph=None)
    """
    key = name.strip().lower()
    if "/" in key:
        sol, graph = _resolve(QRF, key), _resolve(RDF, key)
    else:
        sol = _from_extension(QRF, key)
        graph = _FORMAT_NAMES.get(key) or _from_extension(RDF, key)
        graph = _GRAPH_STANDINS.get(graph, graph)
        sol = sol if sol in SOLUTION_FORMATS else None
        graph = graph if graph in GRAPH_FORMATS else None
    if sol is None and graph is None:
        raise ProtocolError(400, f"Unknown result format {name!r}; use one of: " + _known_names())
    return Negotiated(sol and media_type(sol), graph and media_type(graph))


def _from_extension(family, key: str):
    try:
        return family.from_extension(key)
    except ValueError:
        return None


def _known_names() -> str:
    names = ["json", "xml", "csv", "tsv", "ttl", "nt", "nq", "trig", "rdf", "jsonld"]
    return ", ".join(names) + " or a media type"


def negotiate(accept: str | None, format_param: str | None = None) -> Negotiated:
    """Pick result formats from ``format=`` (wins) or the Accept header.

    >>> negotiate("application/json", None)
    Negotiated(solutions='application/sparql-results+json', graph='application/ld+json')
    >>> negotiate("text/*;q=0.9, application/rdf+xml", None)
    Negotiated(solutions='text/csv', graph='application/rdf+xml')
    >>> negotiate("image/png", None)
    Negotiated(solutions=None, graph=None)
    """
    if format_param and format_param.strip():
        return parse_format(format_param)
    if accept is None or len(accept) <= _CACHED_ACCEPT:
        return _negotiate_accept(accept)  # clients send a handful of distinct headers
    return _negotiate_accept.__wrapped__(accept)


_CACHED_ACCEPT = 512  # longer (odd, hostile) headers are not kept in the cache


@lru_cache(maxsize=256)
def _negotiate_accept(accept: str | None) -> Negotiated:
    ranges = parse_accept(accept) or _ANY
    sol = best_offer(ranges, QRF, SOLUTION_FORMATS)[0]
    graph = best_offer(ranges, RDF, GRAPH_FORMATS)[0]
    return Negotiated(sol and media_type(sol), graph and media_type(graph))


# ---------------------------------------------------------------- requests


@dataclass
class SparqlRequest:
    """One parsed query or update request."""

    text: str
    default_graphs: list[str] = field(default_factory=list)
    named_graphs: list[str] = field(default_factory=list)
    format: str | None = None  # the first non-empty ``format`` parameter
    uselang: str | None = None  # WDQS's language for the label service's [AUTO_LANGUAGE]

    @property
    def has_dataset(self) -> bool:
        return bool(self.default_graphs or self.named_graphs)


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            400, f"{what} is not valid UTF-8 (invalid byte at offset {exc.start})"
        ) from None


def parse_pairs(raw: bytes, what: str = "The query string") -> list[tuple[str, str]]:
    """Decode ``application/x-www-form-urlencoded`` bytes strictly as UTF-8.

    >>> parse_pairs(b"query=ASK%7B%7D&x&default-graph-uri=a+b")
    [('query', 'ASK{}'), ('x', ''), ('default-graph-uri', 'a b')]
    """
    pairs = []
    for part in raw.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            pairs.append((_decode(unquote_form(name), what), _decode(unquote_form(value), what)))
    return pairs


def unquote_form(raw: bytes) -> bytes:
    """``unquote_to_bytes`` of a form's ``raw`` bytes, ``+`` read as a space. Where every
    ``%`` begins an escape, each ``%XX`` is made the ``\\xXX`` of ``codecs.escape_decode``
    (backslashes doubled first), which decodes in C: 0.7 us where the reference's loop takes
    2.0 for a typical query (tests/test_protocol.py proves the two equal)."""
    raw = raw.replace(b"+", b" ")
    if b"%" not in raw:  # most names
        return raw
    try:
        return codecs.escape_decode(raw.replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]
    except ValueError:  # a "%" without two hex digits, which the reference keeps as it is
        return unquote_to_bytes(raw)


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Each parameter's values, in order: one pass, then a lookup per name."""
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        if name in params:
            params[name].append(value)
        else:
            params[name] = [value]
    return params


def read_body(environ, max_body: int) -> bytes:
    """The request body, refusing (413) more than ``max_body`` bytes before and while reading:
    the body the gate read ahead (``BODY``), or else the WSGI input as werkzeug streams it."""
    length = declared_length(environ)
    if length is not None and length > max_body:
        raise _too_large(max_body)
    body = environ.get(BODY)
    if body is not None:  # read whole before the app ran, within the client's time
        if len(body) > max_body:
            raise _too_large(max_body)
        if length is not None and len(body) < length:  # what werkzeug's stream says then
            raise ProtocolError(400, f"Unreadable request body: {ClientDisconnected()}")
        return body
    chunks, total = [], 0
    stream = get_input_stream(environ, max_content_length=max_body)
    while True:
        try:
            chunk = stream.read(min(65536, max_body + 1 - total))
        except RequestEntityTooLarge:  # over max_body, met while streaming
            raise _too_large(max_body) from None
        except Exception as exc:  # a malformed body (e.g. bad chunked encoding) from the server
            raise ProtocolError(400, f"Unreadable request body: {exc}") from exc
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_body:
            raise _too_large(max_body)
        if total == length:  # all there is: spare the read that would return b""
            return b"".join(chunks)


def declared_length(environ) -> int | None:
    """The body's declared length as werkzeug's ``get_content_length`` reads it (None: none
    declared, or chunked); plain digits, the usual case, read in a tenth of its time."""
    declared, coding = environ.get("CONTENT_LENGTH"), environ.get("HTTP_TRANSFER_ENCODING")
    if coding is None and declared and declared.isascii() and declared.isdigit():
        return int(declared)
    return get_content_length(declared, coding)


def _too_large(max_body: int) -> ProtocolError:
    return ProtocolError(413, f"Request body larger than {max_body} bytes")


@lru_cache(maxsize=64)
def content_type(value: str) -> tuple[str, str | None]:
    """The media type of a Content-Type header, lowercased, and its charset parameter (as
    werkzeug's ``request.mimetype`` and ``mimetype_params`` read them); clients send few.

    >>> content_type("Application/X-WWW-Form-URLencoded; charset=UTF-8")
    ('application/x-www-form-urlencoded', 'UTF-8')
    """
    mimetype, params = parse_options_header(value)
    return mimetype.lower(), params.get("charset")


def _url_pairs(environ, max_body: int) -> list[tuple[str, str]]:
    query_string = environ.get("QUERY_STRING", "").encode("latin-1")  # as werkzeug reads it
    if len(query_string) > max_body:
        raise ProtocolError(414, f"Query string longer than {max_body} bytes")
    return parse_pairs(query_string) if query_string else []


def _check_charset(charset: str | None) -> None:
    if charset and charset.strip().lower() not in ("utf-8", "utf8", "us-ascii"):
        raise ProtocolError(415, f"Unsupported charset {charset!r}; send UTF-8")


def _graph_iris(params: dict[str, list[str]], name: str) -> list[str]:
    iris = params.get(name, [])
    for iri in iris:
        try:
            ox.NamedNode(iri)
        except ValueError:
            raise ProtocolError(400, f"{name} is not an absolute IRI: {iri!r}") from None
    return iris


def _single(values: list[str], name: str) -> str:
    if not values:
        raise ProtocolError(400, f"Missing '{name}' parameter")
    if len(values) > 1:
        raise ProtocolError(400, f"More than one '{name}' parameter")
    if not values[0].strip():
        raise ProtocolError(400, f"Empty '{name}' parameter")
    return values[0]


def _params_and_body(environ, max_body: int, direct_type: str, name: str):
    """(every parameter's values, text from a direct body or None) of a GET or POST."""
    url = _url_pairs(environ, max_body)
    if method_of(environ) in ("GET", "HEAD"):
        return _grouped(url), None
    mimetype, charset = content_type(environ.get("CONTENT_TYPE", ""))
    body = read_body(environ, max_body)
    if mimetype == direct_type:
        _check_charset(charset)
        text = _decode(body, "The request body").removeprefix("\ufeff")
        params = _grouped(url)
        if name in params:
            raise ProtocolError(400, f"'{name}' given both in the URL and as the body")
        if not text.strip():
            raise ProtocolError(400, f"Empty {name} body")
        return params, text
    if mimetype == FORM:
        _check_charset(charset)
        return _grouped(url + parse_pairs(body, "The form body")), None
    if not body and (not mimetype or name == "query"):
        # a bodiless POST with everything in the URL; WDQS takes a query so whatever the
        # Content-Type says (WikibaseIntegrator sends multipart/form-data and no body)
        return _grouped(url), None
    also = ", or an empty body with the query in the URL" if name == "query" else ""
    raise ProtocolError(
        415, f"Unsupported Content-Type {mimetype or '(none)'!r}; use {direct_type} or {FORM}{also}"
    )


def method_of(environ) -> str:
    """The request's method, as werkzeug reads it."""
    return environ.get("REQUEST_METHOD", "GET").upper()


def parse_query_request(environ, *, max_body: int) -> SparqlRequest:
    """A query from GET ``?query=``, a form POST, a direct ``application/sparql-query`` POST,
    or a POST with an empty body (any Content-Type, as WDQS) and the query in the URL."""
    params, text = _params_and_body(environ, max_body, SPARQL_QUERY, "query")
    if text is None:
        text = _single(params.get("query", []), "query")
        if len(params) == 1:  # the query alone, as most clients send it: nothing more to read
            return SparqlRequest(text)
    elif not params:
        return SparqlRequest(text)
    return SparqlRequest(
        text=text,
        default_graphs=_graph_iris(params, "default-graph-uri"),
        named_graphs=_graph_iris(params, "named-graph-uri"),
        format=_first_given(params, "format"),
        uselang=_first_given(params, "uselang"),
    )


def _first_given(params: dict[str, list[str]], name: str) -> str | None:
    return next((v for v in params.get(name, ()) if v.strip()), None)


def parse_update_request(environ, *, max_body: int) -> SparqlRequest:
    """An update from a form POST (``update=``) or a direct ``application/sparql-update`` POST."""
    if method_of(environ) != "POST":
        raise ProtocolError(405, "Updates must be POSTed", {"Allow": "POST, OPTIONS"})
    params, text = _params_and_body(environ, max_body, SPARQL_UPDATE, "update")
    for name in ("using-graph-uri", "using-named-graph-uri"):
        if name in params:
            raise ProtocolError(400, f"'{name}' is not supported; use USING in the update")
    if text is None:
        text = _single(params.get("update", []), "update")
    return SparqlRequest(text=text)


def query_text_present(query_string: bytes) -> bool:
    """Whether a GET/HEAD carries a ``query`` parameter (no parameter = service description)."""
    return any(part.split(b"=")[0] == b"query" for part in query_string.split(b"&"))
