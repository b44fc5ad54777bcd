"""The Wikidata Query Service dialect: queries written for query.wikidata.org, made plain SPARQL.

:func:`to_local` rewrites a query text before it is checked and run:

- WDQS's predeclared prefixes are declared for the prefixes the query uses and does not declare
  itself (its own ``PREFIX`` wins); an unknown prefix is a 400 naming it and its line.
- ``hint:`` triples (Blazegraph optimizer hints, which change no answer) are dropped.
- ``SERVICE wikibase:label { ... }`` becomes local patterns at the end of its group: per label
  variable, one ``OPTIONAL`` per language and a ``COALESCE`` in the listed order, the QID when
  no language has a label (as WDQS). It never becomes a remote call: the block is gone before
  the SERVICE guard (:mod:`namkg.query.safety`) sees the text, and every other SERVICE stays for it.
  A ``SELECT *`` is given its variables by name, so the helper variables stay out of sight.
- WDQS's other services (MWAPI, geospatial, ``bd:sample``...) are refused with a clear 400.

The text is tokenized (strings short and long with their escapes, IRIs, comments, prefixed
names) and edited by token positions; removed parts become spaces, so the lines and columns of
Oxigraph's syntax errors still point into the text as sent (the prefixes go on line 1).

>>> print(to_local('SELECT ?n { wd:Q1 wdt:P2124 ?n }'))
PREFIX wd: <http://www.wikidata.org/entity/> PREFIX wdt: <http://www.wikidata.org/prop/direct/> \
SELECT ?n { wd:Q1 wdt:P2124 ?n }
>>> to_local('PREFIX wd: <urn:x:> SELECT * { wd:a ?p "x:y" } # z:w')
'PREFIX wd: <urn:x:> SELECT * { wd:a ?p "x:y" } # z:w'
>>> to_local('SELECT * {\\n ?s foo:bar ?o }')
Traceback (most recent call last):
...
namkg.query.wdqs.WdqsError: Unknown prefix 'foo:' (line 2, in 'foo:bar'): declare it with PREFIX \
foo: <...>; WDQS's predeclared prefixes are known here without one
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from .backend import QuerySyntaxError
from .label_service import DESCRIPTION, RDFS_LABEL, SKOS_ALT, Names, label_patterns
from .tokens import Tok, Unlexable, line_of, matching, matching_braces, string_value, tokens
from .wdqs_prefixes import BD, HINT, PREFIXES, WIKIBASE

# WDQS services answered by nothing here: refused with what they are (never called).
UNSUPPORTED = {
    WIKIBASE + "mwapi": "the MediaWiki API service",
    WIKIBASE + "around": "the geospatial search service",
    WIKIBASE + "box": "the geospatial search service",
    BD + "sample": "the sampling service",
    BD + "slice": "the slice service",
    "http://www.bigdata.com/rdf/gas#service": "the graph analytics (GAS) service",
    "http://www.bigdata.com/rdf/search#search": "the full-text search service",
}


class WdqsError(QuerySyntaxError):
    """A WDQS-dialect query this endpoint cannot take; answered 400 with ``message``."""

    def __init__(self, message: str):
        super().__init__(message)


# ---------------------------------------------------------------- the rewrite


def to_local(text: str, uselang: str | None = None) -> str:
    """``text`` as plain SPARQL (see the module docstring); raises :class:`WdqsError`."""
    # Every rewrite starts at a prefixed name or a SERVICE: a text with neither is plain
    # SPARQL, and one with no ':' (in every prefixed name) and no 'service' in any case is
    # known to be so without being tokenized (~14 us a query).
    if ":" not in text and "service" not in text.lower():
        return text
    return _rewrite(text, uselang)


def _rewrite(text: str, uselang: str | None) -> str:
    """:func:`to_local` with every text tokenized."""
    try:
        toks = tokens(text)
    except Unlexable:
        return text
    if not any(t.kind == "pname" or (t.kind == "word" and t.text.upper() == "SERVICE")
               for t in toks):
        return text
    query = _Query(text, toks, _auto_language(uselang))
    return query.rewritten()


def _auto_language(uselang: str | None) -> str:
    if uselang and _LANG.match(uselang.strip()):
        return uselang.strip().lower()
    return "en"


_LANG = re.compile(r"^[a-zA-Z]{1,8}(?:-[a-zA-Z0-9]{1,8})*$")


@dataclass
class _LabelBlock:
    """One ``SERVICE wikibase:label { ... }``: where it is, its languages, its manual triples."""

    start: int  # first token index (SERVICE)
    end: int  # last token index (the closing brace; a following '.' included)
    group_end: int  # token index of the brace closing the group it stands in
    languages: list[str] = field(default_factory=list)
    manual: list[tuple[str, str, str]] = field(default_factory=list)  # (base var, IRI, var)
    targets: list[str] = field(default_factory=list)  # the variables it binds


class _Query:
    def __init__(self, text: str, toks: list[Tok], auto_language: str):
        self.text, self.toks, self.auto = text, toks, auto_language
        self.declared: dict[str, str] = {}
        self.decl_tokens: set[int] = set()
        for i, t in enumerate(toks):
            if (
                t.kind == "word"
                and t.text.upper() == "PREFIX"
                and i + 2 < len(toks)
                and toks[i + 1].kind == "pname"
                and toks[i + 1].text.endswith(":")
                and toks[i + 2].kind == "iri"
            ):
                self.declared[toks[i + 1].text[:-1]] = toks[i + 2].text[1:-1]
                self.decl_tokens.add(i + 1)

    @cached_property
    def brackets(self) -> dict[int, int]:
        return matching(self.toks)

    def expand(self, tok: Tok) -> str | None:
        """The IRI a prefixed name or IRI token stands for (None for other tokens)."""
        if tok.kind == "iri":
            return tok.text[1:-1]
        if tok.kind != "pname":
            return None
        prefix, _, local = tok.text.partition(":")
        ns = self.declared.get(prefix, PREFIXES.get(prefix))
        return None if ns is None else ns + re.sub(r"\\(.)", r"\1", local)

    def rewritten(self) -> str:
        needed = self._needed_prefixes()
        drop: list[tuple[int, int]] = []  # token index ranges to blank out
        inserts: dict[int, list[str]] = {}  # token index -> text put before it
        drop += self._hints()
        blocks = self._services()
        private = Names({t.text[1:] for t in self.toks if t.kind == "var"})
        auto_done = False
        for block in blocks:
            drop.append((block.start, block.end))
            if block.manual:
                wanted = block.manual
            elif not auto_done:
                wanted, auto_done = self._automatic(blocks), True
            else:
                wanted = []
            block.targets = [target for _, _, target in wanted]
            languages = block.languages
            snippet = label_patterns(wanted, languages, private)
            inserts.setdefault(block.group_end, []).append(snippet)
        if not needed and not drop and not inserts:
            return self.text
        if blocks:
            star = self._select_star()
            if star is not None:  # SELECT * would also show the helper variables: name them
                shown = self._in_scope(
                    star, {k for b in blocks for k in range(b.start, b.end + 1)}, private.made
                )
                names = shown + [v for b in blocks for v in b.targets if v not in shown]
                if names:
                    inserts.setdefault(star, []).append(" ".join(f"?{v}" for v in names))
                    drop.append((star, star))
        return self._edit(needed, drop, inserts)

    # -- SELECT *

    def _select_star(self) -> int | None:
        """The index of the ``*`` of the query's own ``SELECT *`` (not a subquery's)."""
        toks = self.toks
        for i, t in enumerate(toks):
            if t.text == "{":
                return None
            if t.kind == "word" and t.text.upper() == "SELECT":
                j = i + 1
                if j < len(toks) and toks[j].text.upper() in ("DISTINCT", "REDUCED"):
                    j += 1
                return j if j < len(toks) and toks[j].text == "*" else None
        return None

    def _in_scope(self, star: int, skip: set[int], private: set[str]) -> list[str]:
        """The variables ``SELECT *`` shows, in order of appearance: those of the WHERE clause
        but the ones only in FILTER, BIND or function expressions, MINUS, [NOT] EXISTS or a
        subquery's body (of a subquery, its projection)."""
        toks, match = self.toks, self.brackets
        found: list[str] = []
        i = next((k for k in range(star, len(toks)) if toks[k].text == "{"), len(toks))
        end = match.get(i, len(toks) - 1)
        i += 1
        while i < end:
            t = toks[i]
            up = t.text.upper() if t.kind == "word" else ""
            if i in skip:
                i += 1
            elif up in ("FILTER", "MINUS", "EXISTS"):
                nxt = i + 1
                while (
                    nxt < end
                    and toks[nxt].kind in ("word", "pname", "iri")
                    and toks[nxt].text.upper() != "AS"
                ):
                    nxt += 1  # FILTER NOT EXISTS, FILTER regex(...), FILTER <fn>(...)
                i = match.get(nxt, nxt) + 1
            elif up == "BIND" and i + 1 < end and toks[i + 1].text == "(":
                close = match.get(i + 1, i + 1)
                if toks[close - 1].kind == "var":
                    found.append(toks[close - 1].text[1:])
                i = close + 1
            elif t.text == "{" and i + 1 < end and toks[i + 1].text.upper() == "SELECT":
                close = match.get(i, end)
                found += self._projection(i + 1, close)
                i = close + 1
            elif t.kind == "var":
                found.append(t.text[1:])
                i += 1
            else:
                i += 1
        out: list[str] = []
        for name in found:
            if name not in out and name not in private:
                out.append(name)
        return out

    def _projection(self, select: int, close: int) -> list[str]:
        toks, match = self.toks, self.brackets
        names, i = [], select + 1
        while i < close and toks[i].text != "{" and toks[i].text.upper() != "WHERE":
            if toks[i].text == "*":
                return [t.text[1:] for t in toks[i:close] if t.kind == "var"]
            if toks[i].text == "(":
                inner = match.get(i, i)
                if toks[inner - 1].kind == "var":
                    names.append(toks[inner - 1].text[1:])
                i = inner + 1
                continue
            if toks[i].kind == "var":
                names.append(toks[i].text[1:])
            i += 1
        return names

    # -- prefixes

    def _needed_prefixes(self) -> list[str]:
        needed: list[str] = []
        for i, t in enumerate(self.toks):
            if t.kind != "pname" or i in self.decl_tokens:
                continue
            prefix = t.text.partition(":")[0]
            if prefix in self.declared or prefix in needed:
                continue
            if prefix not in PREFIXES:
                raise WdqsError(
                    f"Unknown prefix '{prefix}:' (line {line_of(self.text, t.start)}, in "
                    f"'{t.text}'): declare it with PREFIX {prefix}: <...>; WDQS's predeclared "
                    "prefixes are known here without one"
                )
            needed.append(prefix)
        return needed

    # -- hints

    def _hints(self) -> list[tuple[int, int]]:
        """Token ranges of ``hint:X hint:y value .`` triples: a hint subject and predicate and
        one literal (or IRI) value, in subject position; anything else is left as it is."""
        out, toks = [], self.toks

        def is_hint(k: int) -> bool:
            iri = self.expand(toks[k]) if k < len(toks) and toks[k].kind == "pname" else None
            return bool(iri and iri.startswith(HINT))

        for i in range(len(toks)):
            if not is_hint(i) or (i > 0 and toks[i - 1].text not in ("{", "}", ".")):
                continue
            j = i + 2
            if not is_hint(i + 1) or j >= len(toks):
                continue
            if not (
                toks[j].kind in ("str", "num", "iri", "pname")
                or toks[j].text.lower() in ("true", "false")
            ):
                continue
            if j + 1 < len(toks) and toks[j + 1].kind == "lang":
                j += 1
            elif j + 2 < len(toks) and toks[j + 1].text == "^^":
                j += 2
            if j + 1 < len(toks) and toks[j + 1].text == ".":
                j += 1
            out.append((i, j))
        return out

    # -- services

    def _services(self) -> list[_LabelBlock]:
        toks, blocks, stack = self.toks, [], []
        match = matching_braces(toks)
        for i, t in enumerate(toks):
            if t.text == "{":
                stack.append(i)
            elif t.text == "}":
                if stack:
                    stack.pop()
            if not (t.kind == "word" and t.text.upper() == "SERVICE"):
                continue
            j = i + 1
            if j < len(toks) and toks[j].kind == "word" and toks[j].text.upper() == "SILENT":
                j += 1
            if j + 1 >= len(toks) or toks[j + 1].text != "{":
                continue
            iri = self.expand(toks[j])
            if iri in UNSUPPORTED:
                raise WdqsError(
                    f"SERVICE {toks[j].text} ({UNSUPPORTED[iri]} of WDQS) is not supported here "
                    f"(line {line_of(self.text, t.start)}): this endpoint answers from its own "
                    "graph, and calls none of WDQS's services"
                )
            if iri != WIKIBASE + "label":
                continue
            close = match.get(j + 1)
            if close is None or not stack:
                continue  # unbalanced: left to the parser's error
            group_end = match.get(stack[-1])
            if group_end is None:
                continue
            block = _LabelBlock(i, close, group_end)
            if close + 1 < len(toks) and toks[close + 1].text == ".":
                block.end = close + 1
            self._read_block(block, j + 2, close)
            blocks.append(block)
        return blocks

    def _read_block(self, block: _LabelBlock, start: int, stop: int) -> None:
        """The triples inside the label block: ``bd:serviceParam wikibase:language "..."`` and
        the manual ones (``?x rdfs:label ?name``, ``schema:description``, ``skos:altLabel``)."""
        toks = self.toks
        line = line_of(self.text, toks[start - 2].start)

        def bad(tok: Tok, why: str) -> WdqsError:
            return WdqsError(
                f"In the label service (line {line}): {why}, at "
                f"'{tok.text}' (line {line_of(self.text, tok.start)})"
            )

        i = start
        while i < stop:
            subject = toks[i]
            i += 1
            while True:  # predicate-object lists
                if i >= stop:
                    raise bad(subject, "a triple is cut short")
                predicate = toks[i]
                i += 1
                while True:  # objects
                    if i >= stop:
                        raise bad(predicate, "a triple is cut short")
                    obj = toks[i]
                    i += 1
                    if i < stop and toks[i].kind == "lang" or (i < stop and toks[i].text == "^^"):
                        i += 1 if toks[i].kind == "lang" else 2
                    self._label_triple(block, subject, predicate, obj, bad)
                    if i < stop and toks[i].text == ",":
                        i += 1
                        continue
                    break
                if i < stop and toks[i].text == ";":
                    i += 1
                    if i < stop and toks[i].text not in (".",):
                        continue
                break
            if i < stop and toks[i].text == ".":
                i += 1
            elif i < stop:
                raise bad(toks[i], "expected '.' or the end of the block")
        if not block.languages:
            block.languages = [self.auto]

    def _label_triple(self, block: _LabelBlock, s: Tok, p: Tok, o: Tok, bad) -> None:
        if self.expand(s) == BD + "serviceParam":
            if self.expand(p) != WIKIBASE + "language":
                return  # other parameters change nothing we do
            if o.kind != "str":
                raise bad(o, 'wikibase:language takes a string such as "ar,en"')
            for lang in string_value(o.text).split(","):
                lang = lang.strip()
                if lang.upper() == "[AUTO_LANGUAGE]":
                    lang = self.auto
                if not _LANG.match(lang):
                    raise bad(o, f"{lang!r} is not a language code")
                if lang.lower() not in block.languages:
                    block.languages.append(lang.lower())
            return
        iri = self.expand(p)
        if iri == "https://schema.org/description":
            iri = DESCRIPTION
        if s.kind != "var" or o.kind != "var" or iri not in (RDFS_LABEL, DESCRIPTION, SKOS_ALT):
            raise bad(
                s,
                'only bd:serviceParam wikibase:language "..." and ?item rdfs:label|'
                "schema:description|skos:altLabel ?var are understood",
            )
        block.manual.append((s.text[1:], iri, o.text[1:]))

    def _automatic(self, blocks: list[_LabelBlock]) -> list[tuple[str, str, str]]:
        """Automatic mode: each ?xLabel / ?xDescription / ?xAltLabel the query mentions (outside
        label blocks) whose ?x it also mentions, and which it does not bind itself."""
        inside = {k for b in blocks for k in range(b.start, b.end + 1)}
        own = set(self._in_scope(0, inside, set()))
        names = []
        for k, t in enumerate(self.toks):
            if t.kind == "var" and k not in inside and t.text[1:] not in names:
                names.append(t.text[1:])
        present = set(names)
        wanted = []
        for name in names:
            for suffix, iri in (
                ("AltLabel", SKOS_ALT),
                ("Label", RDFS_LABEL),
                ("Description", DESCRIPTION),
            ):
                base = name[: -len(suffix)]
                if name.endswith(suffix) and base in present and name not in own:
                    wanted.append((base, iri, name))
                    break
        return wanted

    # -- the edit

    def _edit(
        self, needed: list[str], drop: list[tuple[int, int]], inserts: dict[int, list[str]]
    ) -> str:
        text, toks = self.text, self.toks
        blank = set()
        for a, b in drop:
            blank.update(range(a, b + 1))
        out, pos = [], 0
        for k, t in enumerate(toks):
            if k in inserts:
                out.append(text[pos : t.start])
                out.append(" ".join(inserts[k]) + " ")
                pos = t.start
            if k in blank:
                out.append(text[pos : t.start])
                out.append(re.sub(r"[^\r\n]", " ", text[t.start : t.end]))
                pos = t.end
        out.append(text[pos:])
        head = "".join(f"PREFIX {p}: <{PREFIXES[p]}> " for p in needed)
        return head + "".join(out)
