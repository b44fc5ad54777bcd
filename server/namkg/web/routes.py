"""Every route of the server, in one table, and how it is mounted.

A route names its view as ``owner.attribute``: :func:`namkg.web.app.create_app` makes the
owners (the SPARQL views, the pages, discovery, operations) and :func:`mount` adds
each route whose owner is there to the Flask app, so an app made of some owners (tests do
that) gets the same rules, endpoints and wrappers as the whole server.

Two flags say what the chain (:mod:`namkg.web.chain`) may do beyond routing:

- ``plain``: the view takes the WSGI environ and returns an
  :class:`~namkg.web.endpoint.Answer`, without Flask's request context or a werkzeug request
  (a SPARQL query costs ~0.4 ms; Flask's context, routing and response objects would add
  ~1.5 ms). ``when`` says which requests it takes; the others fall
  through to the Flask route with the same rule.
- ``cached``: the answer depends on nothing but the request and the build, so it is kept
  while the build is served (each page is rendered at most once per build and
  representation). With ``doorkeeper``, only from the second time it is asked
  (:meth:`namkg.web.cache.ResponseCache.first_sighting`): most query texts are asked once.

>>> [r.rule for r in ROUTES if r.cached][:4]
['/sparql', '/', '/id/<path:slug>', '/ontology']
>>> sorted({r.view.split(".")[0] for r in ROUTES})
['discovery', 'ops', 'pages', 'sparql']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

from .conditional import conditional
from .endpoint import is_query

READ = ("GET", "HEAD")
ANY = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")  # the view answers each


@dataclass(frozen=True)
class Route:
    rule: str
    endpoint: str
    view: str  # "owner.attribute"
    methods: tuple[str, ...] = READ
    cached: bool = False
    doorkeeper: bool = False  # cached: kept from the second time asked, not the first
    validators: bool = False  # ETag/Last-Modified of the build, 304 (conditional.py)
    plain: bool = False
    when: Callable[[str, bytes], bool] | None = None  # plain routes: (method, query string)


ROUTES = (
    Route("/sparql", "query", "sparql.query", ("GET", "HEAD", "POST"), cached=True,
          doorkeeper=True, plain=True, when=is_query),
    Route("/sparql", "sparql", "sparql.sparql", ANY),  # service description, 405s
    Route("/update", "update", "sparql.update", ANY),
    Route("/", "ui", "pages.ui", cached=True, validators=True),
    Route("/id/<path:slug>", "entity", "pages.entity", cached=True, validators=True),
    Route("/ontology", "ontology", "pages.ontology", cached=True, validators=True),
    Route("/ontology.<ext>", "ontology_file", "pages.ontology", cached=True, validators=True),
    Route("/ontology/<version>", "ontology_version", "pages.ontology_version", cached=True,
          validators=True),
    Route("/graph/<name>", "graph", "pages.graph", cached=True, validators=True),
    Route("/build", "build", "pages.build", cached=True, validators=True),
    Route("/build.<ext>", "build_file", "pages.build", cached=True, validators=True),
    Route("/dataset", "dataset", "discovery.dataset", cached=True, validators=True),
    Route("/.well-known/void", "well_known_void", "discovery.dataset", cached=True,
          validators=True),
    Route("/dumps/<name>", "dump", "discovery.dump"),  # files, with their own validators
    Route("/robots.txt", "robots", "discovery.robots", validators=True),
    Route("/sitemap.xml", "sitemap", "discovery.sitemap", cached=True, validators=True),
    Route("/static/yasgui/<path:filename>", "static", "pages.static"),
    Route("/healthz", "healthz", "ops.healthz"),
    Route("/metrics", "metrics", "ops.metrics"),
)


def view_of(route: Route, owners: dict[str, object]):
    """The callable a route names, or None when its owner is not in ``owners``."""
    owner, _, attribute = route.view.partition(".")
    return getattr(owners[owner], attribute) if owner in owners else None


def mount(app: Flask, owners: dict[str, object]) -> list[tuple[Route, Callable]]:
    """Add the Flask routes of ``owners`` to ``app``; return the plain ones, for the chain."""
    plain = []
    for route in ROUTES:
        view = view_of(route, owners)
        if view is None:
            continue
        if route.plain:
            plain.append((route, view))
            continue
        app.add_url_rule(route.rule, route.endpoint,
                         conditional(view) if route.validators else view,
                         methods=list(route.methods))
    return plain
