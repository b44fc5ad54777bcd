"""How clients find and fetch the dataset: VoID (``/dataset`` and ``/.well-known/void``, the
name the VoID specification registers), the dumps (plain and ``.gz``), ``robots.txt`` and a
sitemap of the entity pages, and the proxy mode that decides which host these URLs name.

Absolute URLs come from ``request.url_root``. By default that is the request's ``Host``
header, whose characters werkzeug validates (and which ``NAMKG_TRUSTED_HOSTS`` can restrict
to known names, Flask's ``TRUSTED_HOSTS``); ``X-Forwarded-*`` are ignored. With
``NAMKG_TRUST_PROXY=1`` werkzeug's ``ProxyFix`` takes the scheme, host and client address
from the one proxy in front (``X-Forwarded-Proto``, ``-Host``, ``-For``); only then, since
anyone can send those headers to a server that is reached directly.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

import pyoxigraph as ox
from flask import Response, abort, current_app, request, send_file
from werkzeug.middleware.proxy_fix import ProxyFix

from ..iris import GRAPH_NAMES, Iris
from .protocol import ProtocolError, negotiate

DUMPS = {  # file name -> format; the whole dataset, graphs kept where the format can
    "nam-kg.nq": ox.RdfFormat.N_QUADS,
    "nam-kg.trig": ox.RdfFormat.TRIG,
    "nam-kg.ttl": ox.RdfFormat.TURTLE,
    "nam-kg.nt": ox.RdfFormat.N_TRIPLES,
    "nam-kg.jsonld": ox.RdfFormat.JSON_LD,
}
VOID = "http://rdfs.org/ns/void#"
DCT = "http://purl.org/dc/terms/"
XSD = "http://www.w3.org/2001/XMLSchema#"
_TRUE = {"1", "true", "yes", "on"}


# ---------------------------------------------------------------- proxy mode


def trust_proxy(env: Mapping[str, str] | None = None) -> bool:
    """``NAMKG_TRUST_PROXY``: off unless set to 1/true/yes/on.

    >>> [trust_proxy(e) for e in ({}, {"NAMKG_TRUST_PROXY": "1"}, {"NAMKG_TRUST_PROXY": "0"})]
    [False, True, False]
    """
    env = os.environ if env is None else env
    return env.get("NAMKG_TRUST_PROXY", "").strip().lower() in _TRUE


def trusted_hosts(env: Mapping[str, str] | None = None) -> list[str] | None:
    """``NAMKG_TRUSTED_HOSTS``: host names (comma or space separated; ``.example.org`` takes
    subdomains) the server answers for; other ``Host`` headers get 400. Unset: any."""
    env = os.environ if env is None else env
    names = env.get("NAMKG_TRUSTED_HOSTS", "").replace(",", " ").split()
    return names or None


def configure_host_handling(app, env: Mapping[str, str] | None = None) -> None:
    """Apply the proxy mode and the trusted hosts to ``app`` (call last: ProxyFix must see the
    request before any other middleware builds a URL)."""
    app.config["TRUSTED_HOSTS"] = trusted_hosts(env)
    if trust_proxy(env):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=0, x_prefix=0)


# ---------------------------------------------------------------- VoID


def void_triples(store: ox.Store, iris: Iris, root: str, built_at: str) -> list[ox.Triple]:
    """The dataset's description from the store (facts and meta graphs) plus this server's
    endpoint and dump URLs under ``root``."""
    ds = ox.NamedNode(iris.dataset)
    triples = [
        ox.Triple(q.subject, q.predicate, q.object)
        for g in ("meta", "facts")
        for q in store.quads_for_pattern(None, None, None, ox.NamedNode(iris.graph(g)))
        if q.subject == ds or (g == "meta" and q.subject.value.startswith(iris.base + "graph/"))
    ]

    def add(p: str, o) -> None:
        triples.append(ox.Triple(ds, ox.NamedNode(VOID + p), o))

    add("sparqlEndpoint", ox.NamedNode(root + "sparql"))
    add("uriSpace", ox.Literal(iris.base + "id/"))
    add("vocabulary", ox.NamedNode(iris.vocab))
    add("rootResource", ox.NamedNode(iris.entity("article")))
    for name in DUMPS:
        add("dataDump", ox.NamedNode(root + "dumps/" + name))
        add("dataDump", ox.NamedNode(root + "dumps/" + name + ".gz"))
    triples.append(
        ox.Triple(
            ds,
            ox.NamedNode(DCT + "modified"),
            ox.Literal(built_at, datatype=ox.NamedNode(XSD + "dateTime")),
        )
    )
    return triples


def _ext() -> dict:
    return current_app.extensions["namkg"]


def _plain(status: int, message: str) -> Response:
    return Response(message + "\n", status, content_type="text/plain; charset=utf-8")


def _content_type(media: str) -> str:
    """One charset, on the textual RDF types (JSON is UTF-8 by definition)."""
    media = media.split(";")[0].strip()
    return media if media.endswith("json") or not _textual(media) else media + "; charset=utf-8"


def _textual(media: str) -> bool:
    return media.startswith("text/") or media in (
        "application/n-triples",
        "application/n-quads",
        "application/trig",
        "application/rdf+xml",
        "application/ld+json",
    )


def dataset() -> Response:
    """The VoID description of the dataset, in the RDF format the client asks for."""
    ext = _ext()
    try:
        media = negotiate(request.headers.get("Accept"), request.args.get("format")).graph
    except ProtocolError as exc:
        return _plain(exc.status, exc.message)
    # A client that takes no RDF format (a browser asking for text/html only) gets Turtle:
    # RFC 9110 lets a server send its default rather than 406.
    media = media or "text/turtle"
    state = ext["state"]
    triples = void_triples(state.store(), ext["iris"], request.url_root, state.built_at())
    body = ox.serialize(
        triples, format=ox.RdfFormat.from_media_type(media), prefixes={"void": VOID, "dcterms": DCT}
    )
    return Response(body, content_type=_content_type(media), headers={"Vary": "Accept"})


# ---------------------------------------------------------------- dumps


def dump(name: str) -> Response:
    """A dump of the whole dataset, written once per build, with ETag/Last-Modified and Range;
    ``NAME.gz`` is the same file gzipped (a file, so that Range and ETags stay simple)."""
    packed = name.endswith(".gz")
    fmt = DUMPS.get(name.removesuffix(".gz"))
    if fmt is None:
        abort(404)
    state = _ext()["state"]
    path = state.dump_file(name.removesuffix(".gz"), fmt)
    media = _content_type(fmt.media_type)
    if packed:
        path, media = _gzipped(path), "application/gzip"
    resp = send_file(
        path,
        mimetype=None,
        conditional=True,
        etag=True,
        last_modified=path.stat().st_mtime,
        download_name=name,
        as_attachment=False,
    )
    resp.headers["Content-Type"] = media  # exactly one charset (send_file's mimetype adds one)
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


def _gzipped(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    if not out.exists():
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        with path.open("rb") as src, tmp.open("wb") as raw:
            # mtime 0: the same dump gives the same bytes (and so the same ETag)
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as dst:
                shutil.copyfileobj(src, dst)
        tmp.replace(out)  # atomic: a concurrent reader sees no file or the whole file
    return out


# ---------------------------------------------------------------- robots.txt and sitemap


def robots() -> Response:
    root = request.url_root
    body = (
        f"User-agent: *\nDisallow: /sparql\nDisallow: /update\nAllow: /\n\n"
        f"Sitemap: {root}sitemap.xml\n"
    )
    return Response(body, content_type="text/plain; charset=utf-8")


def sitemap() -> Response:
    """Every entity page (one per IRI under ``id/`` that is the subject of a triple), the
    ontology, the named graphs and the dataset, as a sitemaps.org URL set."""
    ext = _ext()
    iris: Iris = ext["iris"]
    root = request.url_root
    prefix = iris.base + "id/"
    rows = ext["executor"].query(
        f"SELECT DISTINCT ?s WHERE {{ ?s ?p ?o FILTER(isIRI(?s) && STRSTARTS(STR(?s), "
        f'"{prefix}")) }} ORDER BY ?s',
        solutions_format="text/tab-separated-values",
        graph_format=None,
    )
    slugs = [
        line.strip()[1:-1][len(prefix) :]
        for line in rows.body.decode("utf-8").splitlines()[1:]
        if line.strip()
    ]
    pages = [
        "",
        "ontology",
        "dataset",
        *(f"graph/{g}" for g in GRAPH_NAMES),
        *(f"id/{s}" for s in slugs),
    ]
    urls = "".join(f"<url><loc>{escape(root + p)}</loc></url>\n" for p in pages)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + urls + "</urlset>\n"
    )
    return Response(body, content_type="application/xml; charset=utf-8")
