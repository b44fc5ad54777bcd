"""A minimal Flask route doing bench/bare_app.py's work: pyoxigraph in-process, SPARQL JSON out.

What Flask alone costs on top of the bare WSGI app, under the same server (bench/run.py serves
it with granian, as ``namkg serve`` is served):
``BENCH_STORE=<build dir> granian --interface wsgi --working-dir bench flask_app:app``.
"""

import os

import pyoxigraph as ox
from flask import Flask, Response, request

store = ox.Store.read_only(os.environ["BENCH_STORE"])
JSON = ox.QueryResultsFormat.JSON
app = Flask(__name__)


@app.route("/sparql", methods=["GET", "POST"])
def sparql() -> Response:
    query = request.values.get("query")
    if query is None:
        return Response("no query", status=400, mimetype="text/plain")
    try:
        body = store.query(query, use_default_graph_as_union=True).serialize(format=JSON)
    except (SyntaxError, OSError) as exc:
        return Response(str(exc), status=400, mimetype="text/plain")
    return Response(body, mimetype="application/sparql-results+json")
