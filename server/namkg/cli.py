"""The ``namkg`` command: serve (the main verb), build, validate, query, export, wikidata."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import click
import pyoxigraph as ox

from .config import Config
from .iris import Iris
from .kg import build as builder
from .kg import wikidata
from .kg.layout import Sources, open_store
from .kg.publish import PublishError, publish_repo
from .query.auth import credentials_from_env
from .shacl.validation import InputError, ValidationCrash
from .shacl.validation import validate as run_validation
from .web.protocol import ProtocolError, negotiate
from .web.serve import listen, run

FORMATS = ("text", "json", "turtle", "junit")
# namkg.shacl.validation's ENGINES and FAIL_ON, spelt out: importing it (rdflib) would slow every
# verb; tests/test_shacl_cli.py checks they agree.
ENGINES = ("pyshacl-turbo", "pyshacl", "oxigraph")
FAIL_ON = ("info", "warning", "violation")
EXPORTS = ("ttl", "nt", "nq", "trig", "jsonld", "wikibase", "quickstatements")


def _config(ctx: click.Context, **overrides) -> Config:
    try:
        return Config.from_env(**overrides)
    except ValueError as exc:
        ctx.fail(str(exc))


def _env(name: str) -> str:
    """``[NAMKG_NAME, default]`` for an option's help, from :class:`Config` itself, so that
    the help cannot disagree with the settings it describes."""
    default = next(f.default for f in fields(Config) if f.name == name)
    value = f"{default:g}" if isinstance(default, float) else default
    return f"[NAMKG_{name.upper()}, {value}]"


@click.group()
@click.version_option(package_name="nam-kg")
def main() -> None:
    """nam-kg: a source-faithful knowledge graph of one article, served over SPARQL 1.1."""


@main.command()
@click.option("--host", help=f"Interface to bind {_env('host')}.")
@click.option("--port", type=int, help=f"Port {_env('port')}.")
@click.option("--store", type=click.Path(path_type=Path), help="Store directory [NAMKG_STORE].")
@click.option("--threads", "http_threads", type=int, help=f"HTTP threads {_env('http_threads')}.")
@click.option("--query-workers", type=int,
              help=f"Query processes {_env('query_workers')}.")
@click.option("--timeout", "query_timeout", type=float,
              help=f"Query deadline, s {_env('query_timeout')}.")
@click.option("--backend", help="Serve from this remote SPARQL endpoint [NAMKG_BACKEND]; "
              "its password from NAMKG_BACKEND_PASSWORD.")
@click.option("--backend-user", help="User for the backend [NAMKG_BACKEND_USER].")
@click.pass_context
def serve(ctx, **opts) -> None:
    """Serve the SPARQL endpoint, UI and linked-data pages; build the store first if missing."""

    config = _config(ctx, **opts)
    try:
        listener = listen(config)  # first: a port in use fails now, before any build
    except OSError as exc:
        click.echo(f"error: {exc.strerror}", err=True)
        sys.exit(2)
    if not (Path(config.store) / "current").exists():
        click.echo(f"no store in {config.store}: building it", err=True)
        _build_or_exit(builder, config)
    try:
        open_store(config.store)  # fail loudly now, not on the first query
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    run(config, listener=listener)


@main.command()
@click.option("--store", type=click.Path(path_type=Path), help="Store directory [NAMKG_STORE].")
@click.option("--base-iri", help="Base of the minted IRIs [NAMKG_BASE_IRI].")
@click.pass_context
def build(ctx, store, base_iri) -> None:
    """Parse, validate and load ontology and data into a new store, swapped in atomically."""

    _build_or_exit(builder, _config(ctx, store=store, base_iri=base_iri))


def _build_or_exit(builder, config: Config) -> None:

    try:
        builder.build(config, log=lambda m: click.echo(m, err=True))
    except (builder.BuildError, InputError) as exc:
        click.echo(f"build failed, previous store kept: {exc}", err=True)
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--shapes", type=click.Path(exists=True, path_type=Path), help="Shapes file.")
@click.option("--engine", type=click.Choice(ENGINES), default=ENGINES[0], show_default=True,
              help="pyshacl-turbo: pyshacl's validate() in Rust (passes the W3C SHACL suite); "
              "pyshacl: the reference implementation, slower; oxigraph: shapes as SPARQL on an "
              "Oxigraph store, which judges typed literals in canonical form "
              "(\"4.0\"^^xsd:decimal as \"4\"): wrong on some data, for comparison only.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default=FAIL_ON[0], show_default=True,
              help="The least severe result that fails (exit 1). info: any result, as the SHACL "
              "spec's sh:conforms; violation: Warning and Info results are reported only.")
@click.option("--explain", is_flag=True, help="Also say which engine judged which shape (stderr).")
@click.option("--no-ontology", is_flag=True,
              help="Do not add the repository's ontology (its class hierarchy) to PATHS.")
@click.pass_context
def validate(ctx, paths, fmt, shapes, engine, fail_on, explain, no_ontology) -> None:
    """Validate Turtle against the shapes: exit 0 passes, 1 fails (see --fail-on), 2 unreadable
    input or a validator error.

    PATHS are Turtle files or directories (default: the repository's data). The repository's
    ontology is added, since shapes target subclasses through it, unless --no-ontology.
    """

    sources = Sources.of(_config(ctx).root)
    files = _expand(paths) if paths else sources.facts + sources.links
    ontology = [] if no_ontology else [p for p in sources.ontology
                                        if p.resolve() not in {f.resolve() for f in files}]
    try:
        report = run_validation(files, shapes or sources.shapes, ontology_paths=ontology,
                                sparql_engine=engine, fail_on=fail_on)
    except (InputError, ValidationCrash) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    out = {"text": report.to_text, "json": report.to_json, "turtle": report.to_turtle,
           "junit": report.to_junit}[fmt]()
    click.echo(out)
    if explain:
        click.echo(report.explain(), err=True)
    sys.exit(0 if report.passed else 1)


def _expand(paths) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        files += sorted(p.rglob("*.ttl")) if p.is_dir() else [p]
    return files


@main.command()
@click.option("--to", required=True, help="Graph Store (or SPARQL Update) URL of the target.")
@click.option("--graph", help="Publish the union into this one graph (default: each graph "
              "under its own name).")
@click.option("--user", help="User name for the target.")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the password.")
@click.option("--token-env", metavar="VAR", help="Environment variable holding a Bearer token.")
@click.option("--query-endpoint", help="The target's query URL (default: derived from --to).")
@click.option("--update-endpoint", help="The target's update URL (default: derived from --to).")
@click.option("--method", type=click.Choice(["auto", "gsp", "update"]), default="auto",
              show_default=True)
@click.option("--allow-altered", is_flag=True,
              help="Publish even if the target stores some literals differently (warned).")
@click.option("--dry-run", is_flag=True, help="Say what would be written; write nothing.")
@click.option("--store", type=click.Path(path_type=Path), help="Store directory [NAMKG_STORE].")
@click.pass_context
def publish(ctx, to, user, password_env, token_env, store, **options) -> None:
    """Validate, then write the built graph into an existing SPARQL store, replacing its copy."""

    config = _config(ctx, store=store)
    try:
        auth, token = credentials_from_env(user, password_env, token_env)
    except ValueError as exc:
        ctx.fail(str(exc))
    try:
        result = publish_repo(config, to=to, auth=auth, token=token,
                              log=lambda m: click.echo(m, err=True), **options)
    except (PublishError, OSError) as exc:
        click.echo(f"publish failed, the target's previous copy is kept: {exc}", err=True)
        sys.exit(1)
    if result.method == "dry-run":  # publish_repo has said what it would write
        click.echo(f"dry run: would publish {result.triples} triples; nothing was written")
        return
    click.echo(f"published {result.triples} triples by {result.method} in {result.seconds:.2f}s")


@main.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--format", "fmt", default=None,
              help="Result format: json, xml, csv, tsv (SELECT/ASK); "
              "ttl, nt, nq, trig, rdf, jsonld (CONSTRUCT/DESCRIBE).")
@click.option("--store", type=click.Path(path_type=Path), help="Store directory [NAMKG_STORE].")
@click.pass_context
def query(ctx, file, fmt, store) -> None:
    """Run a SPARQL query (FILE.rq, or - for stdin) against the built store."""

    config = _config(ctx, store=store)
    try:
        chosen = negotiate(None, fmt)
    except ProtocolError as exc:
        ctx.fail(exc.message)
    try:
        st = open_store(config.store)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)

    try:
        result = st.query(file.read(), use_default_graph_as_union=True)
    except SyntaxError as exc:
        click.echo(f"query error: {exc}", err=True)
        sys.exit(1)
    graph = isinstance(result, ox.QueryTriples)
    media = chosen.graph if graph else chosen.solutions
    if media is None:  # e.g. --format ttl on a SELECT, csv on a CONSTRUCT
        kind, fits = (("CONSTRUCT/DESCRIBE", "ttl, nt, nq, trig, rdf or jsonld") if graph
                      else ("SELECT/ASK", "json, xml, csv or tsv"))
        click.echo(f"error: --format {fmt} does not fit a {kind} query; use {fits}", err=True)
        sys.exit(2)
    if graph:
        body = ox.serialize(result, format=ox.RdfFormat.from_media_type(media))
    else:
        body = result.serialize(format=ox.QueryResultsFormat.from_media_type(media))
    sys.stdout.buffer.write(body)


@main.command()
@click.option("--format", "fmt", required=True,
              type=click.Choice(EXPORTS))
@click.option("--reference-url", help="URL of the article, the source (S854) of each statement.")
@click.option("--store", type=click.Path(path_type=Path), help="Store directory [NAMKG_STORE].")
@click.pass_context
def export(ctx, fmt, reference_url, store) -> None:
    """Export the graph, the Wikidata-shaped view, or QuickStatements for Wikidata editors."""

    config = _config(ctx, store=store)
    try:
        st = open_store(config.store)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.stdout.buffer.write(wikidata.export(st, fmt, iris=Iris(config.base_iri),
                                            reference_url=reference_url))


@main.group(name="wikidata")
def wikidata_group() -> None:
    """Wikidata links."""


@wikidata_group.command()
@click.option("--store", type=click.Path(path_type=Path), help="Store directory [NAMKG_STORE].")
@click.pass_context
def check(ctx, store) -> None:
    """Compare each linked item's label with Wikidata's API (skipped when offline)."""

    config = _config(ctx, store=store)
    st = open_store(config.store)
    results = wikidata.check_links(wikidata.links_from_store(st, Iris(config.base_iri)))
    bad = 0
    for r in results:
        click.echo(f"{r.status:9} {r.qid:10} {r.entity}  {r.detail}")
        bad += r.status == "mismatch"
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
