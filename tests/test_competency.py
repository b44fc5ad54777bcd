"""Every query in queries/ gives the article's answer, recorded in tests/expected/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from namkg.kg.layout import open_store

from .conftest import REPO

QUERIES = sorted((REPO / "queries").glob("*.rq"))


def expected(query: Path) -> dict:
    return json.loads((REPO / "tests" / "expected" / (query.stem + ".json")).read_text("utf-8"))


def rows_of(result) -> list[dict]:
    names = [v.value for v in result.variables]
    return [{n: s[n].value for n in names if s[n] is not None} for s in result]


def canonical(rows: list[dict], ordered: bool) -> list:
    items = [sorted(r.items()) for r in rows]
    return items if ordered else sorted(items)


def test_every_query_has_a_header_and_an_expected_answer():
    assert len(QUERIES) >= 8
    for q in QUERIES:
        assert q.read_text("utf-8").startswith("# "), f"{q.name}: no question in its header"
        assert expected(q)["rows"], f"{q.name}: empty expected answer"


@pytest.mark.parametrize("query", QUERIES, ids=lambda p: p.stem)
def test_query_answers_as_expected(built_store, query):
    store = open_store(built_store)
    result = store.query(query.read_text("utf-8"), use_default_graph_as_union=True)
    want = expected(query)
    assert canonical(rows_of(result), want["ordered"]) == canonical(want["rows"], want["ordered"])
