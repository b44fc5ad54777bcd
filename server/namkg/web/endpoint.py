"""The SPARQL 1.1 Protocol routes: ``/sparql`` (query, service description) and ``/update``.

Responses to SELECT/CONSTRUCT/DESCRIBE carry ``X-Result-Count`` (rows or triples). When the result
was cut at the configured limit they also carry ``X-Result-Truncated: true`` and
``X-Result-Limit: N``: the body is then a valid document holding the first N results only.
Errors are plain text (``text/plain; charset=utf-8``) with the status the protocol asks for.
"""

from __future__ import annotations

import hmac
import time
from typing import NamedTuple

from flask import Response, current_app, request, url_for

from ..config import Config
from ..iris import GRAPH_NAMES, Iris
from ..query.backend import QueryError, QuerySyntaxError
from .protocol import (
    ProtocolError,
    best_graph_quality,
    method_of,
    negotiate,
    parse_pairs,
    parse_query_request,
    parse_update_request,
    preferred_quality,
    query_text_present,
)
from .service_description import service_description

QUERY_ALLOW = "GET, HEAD, POST, OPTIONS"
UPDATE_ALLOW = "POST, OPTIONS"
_NOT_ALLOWED = ["PUT", "DELETE", "PATCH"]


PLAIN = "text/plain; charset=utf-8"


class Answer(NamedTuple):
    """A response before the cross-cutting layer (CORS, gzip, log) sees it: ``headers`` hold
    no Content-Length; ``text`` is the SPARQL text, once parsed, for the access log;
    ``build``: the store a query answer came from (the response cache keeps it only there)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    text: str | None = None
    build: str | None = None


ARRIVED = "namkg.arrived"  # WSGI environ key: time.monotonic() when the request reached us
BUILDS = "namkg.builds"  # WSGI environ key: a list the builds that answered are added to
TEXT = "namkg.text"  # WSGI environ key: the SPARQL text a Flask view read (for the access log)


def deadline_of(environ, timeout: float) -> float:
    """The client's deadline: ``timeout`` from the request's arrival (reading, checking and
    queueing count against it, not only running)."""
    return environ.get(ARRIVED, time.monotonic()) + timeout


def error_answer(status: int, message: str, headers: dict[str, str] | None = None,
                 text: str | None = None) -> Answer:
    return Answer(status, [*(headers or {}).items(), ("Content-Type", PLAIN)],
                  (message.rstrip("\n") + "\n").encode("utf-8"), text)


def to_response(answer: Answer) -> Response:
    return Response(answer.body, status=answer.status, headers=answer.headers)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return to_response(error_answer(status, message, headers))


def with_charset(media_type: str) -> str:
    """All our formats are UTF-8 text; JSON types define no charset parameter, so none is added.

    >>> with_charset("text/turtle"), with_charset("application/sparql-results+json")
    ('text/turtle; charset=utf-8', 'application/sparql-results+json')
    >>> with_charset("text/csv; charset=utf-8")
    'text/csv; charset=utf-8'
    """
    if "charset=" in media_type.lower() or media_type.split(";")[0].endswith("json"):
        return media_type
    return media_type + "; charset=utf-8"


def _query_error(exc: QueryError, text: str | None = None) -> Answer:
    return error_answer(exc.status, exc.message, exc.http_headers(), text)


def is_query(method: str, query_string: bytes) -> bool:
    """Whether a /sparql request asks a query (else: service description, OPTIONS, 405).

    >>> is_query("GET", b"query=ASK%7B%7D"), is_query("GET", b""), is_query("POST", b"")
    (True, False, True)
    """
    return method == "POST" or (method in ("GET", "HEAD") and query_text_present(query_string))


def make_query_handler(executor, config: Config, iris: Iris):
    """``answer(environ) -> Answer`` for a query request's WSGI environ (see :func:`is_query`):
    the one implementation of the protocol's query operation."""
    max_body, limit, timeout = config.max_body, config.result_limit, config.query_timeout

    def answer(environ) -> Answer:
        text = None
        deadline = deadline_of(environ, timeout)
        try:
            req = parse_query_request(environ, max_body=max_body)
            text = req.text
            chosen = negotiate(environ.get("HTTP_ACCEPT"), req.format)
            if chosen.solutions is None and chosen.graph is None:
                raise ProtocolError(406, NOT_ACCEPTABLE)
            # Protocol: a request naming any graph defines the whole dataset (unnamed: empty).
            result = executor.query(
                text,
                solutions_format=chosen.solutions,
                graph_format=chosen.graph,
                default_graphs=req.default_graphs if req.has_dataset else None,
                named_graphs=req.named_graphs if req.has_dataset else None,
                base_iri=iris.base,  # so <id/x> means an entity of ours
                deadline=deadline,
                # the WDQS dialect made plain and the guard, where the query runs
                client=True,
                uselang=req.uselang,
            )
        except ProtocolError as exc:
            return error_answer(exc.status, exc.message, exc.headers, text)
        except QuerySyntaxError as exc:
            return error_answer(400, exc.message + _brace_hint(environ, text), None, text)
        except QueryError as exc:
            return _query_error(exc, text)
        headers = [("Vary", "Accept")]
        if result.count is not None:  # None for ASK
            headers.append(("X-Result-Count", str(result.count)))
        if result.truncated:
            headers += [("X-Result-Truncated", "true"), ("X-Result-Limit", str(limit))]
            if config.result_bytes:
                headers.append(("X-Result-Byte-Limit", str(config.result_bytes)))
        headers.append(("Content-Type", with_charset(result.media_type)))
        return Answer(200, headers, result.body, text, result.build)

    return answer


NOT_ACCEPTABLE = ("No acceptable result format. SELECT/ASK: SPARQL JSON, XML, CSV, TSV; "
                  "CONSTRUCT/DESCRIBE: Turtle, N-Triples, N-Quads, TriG, RDF/XML, JSON-LD")


class SparqlViews:
    """The views of ``/sparql`` and ``/update`` (see :mod:`namkg.web.routes`) over ``executor``
    (read-only queries) and ``update_executor`` (writable, optional). Updates are enabled only
    when both ``config.update_token`` and ``update_executor`` are set.

    ``query`` is a plain view (a WSGI environ in, an :class:`Answer` out): the chain gives
    it every query request (:func:`is_query`); ``sparql`` answers the rest of ``/sparql``
    (the service description, other methods)."""

    def __init__(self, executor, config: Config, iris: Iris, *, update_executor=None):
        self.config, self.iris = config, iris
        self.update_executor = update_executor
        self.updates_enabled = config.update_token is not None and update_executor is not None
        self.query = make_query_handler(executor, config, iris)

    def sparql(self) -> Response:
        if request.method == "OPTIONS":
            return Response(status=204, headers={"Allow": QUERY_ALLOW})
        if request.method in _NOT_ALLOWED:
            return error(405, f"{request.method} is not allowed here; query with GET or POST",
                         {"Allow": QUERY_ALLOW})
        try:
            return self.describe_service()
        except ProtocolError as exc:
            return error(exc.status, exc.message, exc.headers)

    def describe_service(self) -> Response:
        config, accept = self.config, request.headers.get("Accept")
        formats = [v for k, v in parse_pairs(request.query_string) if k == "format" and v.strip()]
        ui = current_app.view_functions.get("ui")
        if ui is not None and not formats and (
            preferred_quality(accept, "text/html") > best_graph_quality(accept)
        ):
            return current_app.make_response(ui())
        media = negotiate(accept, formats[0] if formats else None).graph
        if media is None:
            raise ProtocolError(406, "The service description is served as RDF: Turtle, "
                                     "N-Triples, N-Quads, TriG, RDF/XML or JSON-LD")
        body = service_description(
            request.base_url, self.iris, GRAPH_NAMES, media=media,
            update_url=url_for("update", _external=True) if self.updates_enabled else None,
            federated=bool(config.service_allowlist),
            timeout=config.query_timeout, result_limit=config.result_limit,
        )
        return Response(body, content_type=with_charset(media), headers={"Vary": "Accept"})

    def update(self) -> Response:
        config = self.config
        if request.method == "OPTIONS":
            return Response(status=204, headers={"Allow": UPDATE_ALLOW})
        if request.method != "POST":
            return error(405, "Updates must be POSTed", {"Allow": UPDATE_ALLOW})
        if not self.updates_enabled:
            return error(403, "Updates are disabled on this endpoint")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return error(401, "Updates need an 'Authorization: Bearer <token>' header",
                         {"WWW-Authenticate": 'Bearer realm="nam-kg"'})
        if not hmac.compare_digest(token.encode(), config.update_token.encode()):
            return error(403, "Wrong update token")
        try:
            req = parse_update_request(request.environ, max_body=config.max_body)
            request.environ[TEXT] = req.text  # for the access log
            self.update_executor.update(req.text, client=True)  # guarded where it runs
        except ProtocolError as exc:
            return error(exc.status, exc.message, exc.headers)
        except QueryError as exc:
            return to_response(_query_error(exc))
        return Response(status=204)


def _brace_hint(environ, text: str | None) -> str:
    """curl expands {…} in URLs (globbing), so `curl '…?query=ASK{?s?p?o}'` sends ASK?s?p?o."""
    text = text or ""
    if (method_of(environ) == "GET" and "{" not in text
            and "curl" in environ.get("HTTP_USER_AGENT", "")):
        return ("\nHint: the query has no braces. curl treats {…} in a URL as a glob and drops "
                "them: use curl -g, or curl -G --data-urlencode 'query=…'.")
    return ""
