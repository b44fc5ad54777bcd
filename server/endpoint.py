"""The SPARQL 1.1 Protocol routes: ``/sparql`` (query, service description) and ``/update``.

Responses to SELECT/CONSTRUCT/DESCRIBE carry ``X-Result-Count`` (rows or triples). When the result
was cut at the configured limit they also carry ``X-Result-Truncated: true`` and
``X-Result-Limit: N``: the body is then a valid document holding the first N results only.
Errors are plain text (``text/plain; charset=utf-8``) with the status the protocol asks for.
"""

from __future__ import annotations

import hmac
import math

from flask import Blueprint, Response, current_app, g, request, url_for

from .config import Config
from .executor import QueryError, QuerySyntaxError
from .iris import GRAPH_NAMES, Iris
from .protocol import (
    ProtocolError,
    best_graph_quality,
    negotiate,
    parse_pairs,
    parse_query_request,
    parse_update_request,
    preferred_quality,
    query_text_present,
    service_description,
)
from .safety import UnsafeQuery, check_query, check_update

QUERY_ALLOW = "GET, HEAD, POST, OPTIONS"
UPDATE_ALLOW = "POST, OPTIONS"
_NOT_ALLOWED = ["PUT", "DELETE", "PATCH"]


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message.rstrip("\n") + "\n", status=status, headers=headers or {},
                    content_type="text/plain; charset=utf-8")


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


def _query_error(exc: QueryError) -> Response:
    headers = {}
    if exc.status == 503:  # Busy says when; a timeout or crash may pass, so: soon
        retry = getattr(exc, "retry_after", None) or 1
        headers["Retry-After"] = str(max(1, math.ceil(retry)))
    return error(exc.status, exc.message, headers)


def make_blueprint(executor, config: Config, iris: Iris, *, update_executor=None) -> Blueprint:
    """Routes over ``executor`` (read-only queries) and ``update_executor`` (writable, optional).

    Updates are enabled only when both ``config.update_token`` and ``update_executor`` are set.
    """
    bp = Blueprint("sparql", __name__)
    updates_enabled = config.update_token is not None and update_executor is not None

    def describe_service() -> Response:
        accept = request.headers.get("Accept")
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
            request.base_url, iris, GRAPH_NAMES, media=media,
            update_url=url_for(".update", _external=True) if updates_enabled else None,
            federated=bool(config.service_allowlist),
            timeout=config.query_timeout, result_limit=config.result_limit,
        )
        return Response(body, content_type=with_charset(media), headers={"Vary": "Accept"})

    def run_query() -> Response:
        if request.method in ("GET", "HEAD") and not query_text_present(request):
            return describe_service()
        req = parse_query_request(request, max_body=config.max_body)
        g.sparql_text = req.text  # the body stream is consumed: this is for access logs
        check_query(req.text, allowlist=config.service_allowlist)
        chosen = negotiate(request.headers.get("Accept"), req.format)
        if chosen.solutions is None and chosen.graph is None:
            raise ProtocolError(406, "No acceptable result format. SELECT/ASK: SPARQL JSON, XML, "
                                     "CSV, TSV; CONSTRUCT/DESCRIBE: Turtle, N-Triples, N-Quads, "
                                     "TriG, RDF/XML, JSON-LD")
        # Protocol: a request naming any graph defines the whole dataset (unnamed parts empty).
        result = executor.query(
            req.text,
            solutions_format=chosen.solutions,
            graph_format=chosen.graph,
            default_graphs=req.default_graphs if req.has_dataset else None,
            named_graphs=req.named_graphs if req.has_dataset else None,
            base_iri=iris.base,  # so <id/x> means an entity of ours
        )
        headers = {"Vary": "Accept"}
        if result.count is not None:  # None for ASK
            headers["X-Result-Count"] = str(result.count)
        if result.truncated:
            headers["X-Result-Truncated"] = "true"
            headers["X-Result-Limit"] = str(config.result_limit)
        return Response(result.body, headers=headers, content_type=with_charset(result.media_type))

    @bp.route("/sparql", methods=["GET", "POST", "OPTIONS", *_NOT_ALLOWED])
    def sparql():
        if request.method == "OPTIONS":
            return Response(status=204, headers={"Allow": QUERY_ALLOW})
        if request.method in _NOT_ALLOWED:
            return error(405, f"{request.method} is not allowed here; query with GET or POST",
                         {"Allow": QUERY_ALLOW})
        try:
            return run_query()
        except ProtocolError as exc:
            return error(exc.status, exc.message, exc.headers)
        except UnsafeQuery as exc:
            return error(400, str(exc))
        except QuerySyntaxError as exc:
            return error(400, exc.message + _brace_hint(request))
        except QueryError as exc:
            return _query_error(exc)

    @bp.route("/update", methods=["GET", "POST", "OPTIONS", *_NOT_ALLOWED])
    def update():
        if request.method == "OPTIONS":
            return Response(status=204, headers={"Allow": UPDATE_ALLOW})
        if request.method != "POST":
            return error(405, "Updates must be POSTed", {"Allow": UPDATE_ALLOW})
        if not updates_enabled:
            return error(403, "Updates are disabled on this endpoint")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            return error(401, "Updates need an 'Authorization: Bearer <token>' header",
                         {"WWW-Authenticate": 'Bearer realm="nam-kg"'})
        if not hmac.compare_digest(token.encode(), config.update_token.encode()):
            return error(403, "Wrong update token")
        try:
            req = parse_update_request(request, max_body=config.max_body)
            g.sparql_text = req.text
            check_update(req.text, allowlist=config.service_allowlist)
            update_executor.update(req.text)
        except ProtocolError as exc:
            return error(exc.status, exc.message, exc.headers)
        except UnsafeQuery as exc:
            return error(400, str(exc))
        except QueryError as exc:
            return _query_error(exc)
        return Response(status=204)

    return bp


def _brace_hint(req) -> str:
    """curl expands {…} in URLs (globbing), so `curl '…?query=ASK{?s?p?o}'` sends ASK?s?p?o."""
    text = g.get("sparql_text") or ""
    if req.method == "GET" and "{" not in text and "curl" in req.headers.get("User-Agent", ""):
        return ("\nHint: the query has no braces. curl treats {…} in a URL as a glob and drops "
                "them: use curl -g, or curl -G --data-urlencode 'query=…'.")
    return ""
