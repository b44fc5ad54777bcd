"""A bare WSGI SPARQL endpoint: pyoxigraph in-process, no deadline, no safety, no Flask.

The baseline that prices nam-kg's deadline machinery (worker processes, pipes, limits), served
two ways by bench/run.py: under gunicorn (``BENCH_STORE=<build dir> gunicorn -k gthread
--threads 16 --chdir bench bare_app:app``) and under granian with ``namkg serve``'s settings
(the Python ceiling for our server: ``granian --interface wsgi --working-dir bench bare_app:app``).
"""

import os
from urllib.parse import parse_qs

import pyoxigraph as ox

store = ox.Store.read_only(os.environ["BENCH_STORE"])
JSON = ox.QueryResultsFormat.JSON


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(size).decode("utf-8"))
    else:
        form = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        result = store.query(form["query"][0], use_default_graph_as_union=True)
        body = result.serialize(format=JSON)
    except (KeyError, SyntaxError, OSError) as exc:
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [str(exc).encode()]
    start_response("200 OK", [("Content-Type", "application/sparql-results+json"),
                              ("Content-Length", str(len(body)))])
    return [body]
