"""HTTP validators for what a build serves: ETag, Last-Modified, Cache-Control and 304s.

A build never changes once served, so every page and RDF document is a function of the build
id (and of its representation): the ETag is derived from it, Last-Modified is the build's time.
The check runs before the page is made, so a 304 costs no query. werkzeug's
``is_resource_modified`` implements RFC 9110's rules (If-None-Match wins over
If-Modified-Since).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime

from flask import Response, current_app, request
from werkzeug.http import is_resource_modified

MAX_AGE = 300  # seconds a cache may reuse a page without asking; a rebuild shows within that


def current_build() -> tuple[str, datetime] | None:
    """(build id, build time) of the build being served, or None in an app without a store
    state (a pages-only app in tests)."""
    state = current_app.extensions.get("namkg", {}).get("state")
    if state is None:
        return None
    path = state.path
    return path.name, datetime.fromtimestamp(int(path.stat().st_mtime), UTC)


def etag_for(build_id: str, variant: str) -> str:
    """A short opaque tag of one representation of one resource under one build.

    >>> etag_for("b1", "/id/x text/turtle") == etag_for("b1", "/id/x text/turtle")
    True
    >>> etag_for("b1", "/id/x text/turtle") == etag_for("b2", "/id/x text/turtle")
    False
    """
    return hashlib.sha256(f"{build_id}\n{variant}".encode()).hexdigest()[:24]


def conditional(view):
    """Wrap a view whose answer depends only on the build, the path, the query string and the
    negotiated headers: answer 304 when the client's copy is current, else add validators.

    Weak ETags: the app may gzip a body on the way out, which changes its bytes, not its
    meaning."""

    @functools.wraps(view)
    def run(**kwargs):
        build = current_build()
        if build is None or request.method not in ("GET", "HEAD"):
            return view(**kwargs)
        build_id, built = build
        variant = " ".join(
            (
                request.full_path,
                request.headers.get("Accept", ""),
                request.headers.get("X-Forwarded-Host", ""),
                request.headers.get("X-Forwarded-Proto", ""),
                request.host,
            )
        )
        tag = etag_for(build_id, variant)
        if not is_resource_modified(request.environ, etag=tag, last_modified=built):
            resp = Response(status=304)
        else:
            resp = current_app.make_response(view(**kwargs))
            if resp.status_code != 200:
                return resp
        resp.set_etag(tag, weak=True)
        resp.last_modified = built
        resp.cache_control.public = True
        resp.cache_control.max_age = MAX_AGE
        resp.vary.add("Accept")
        return resp

    return run
