"""Refuse SPARQL that would make the server fetch URLs (SERVICE, LOAD) or nest too deeply.

pyoxigraph follows ``SERVICE <url>`` to any URL, so a query could make the server request
internal addresses. A SPARQL-aware lexer finds the SERVICE (and, in updates, LOAD) keyword
and refuses it unless its endpoint resolves to an IRI in ``allowlist``. Words inside
strings, comments, IRIs, variables and prefixed names are not keywords:

>>> check_query('SELECT * { ?service <http://ex/service> "service" } # service')
>>> check_query('SELECT * { SERVICE <http://evil/> { ?s ?p ?o } }')
Traceback (most recent call last):
...
namkg.query.guard_lexer.UnsafeQuery: SERVICE <http://evil/> is refused: the endpoint is not \
allowlisted
>>> check_query('PREFIX w: <https://query.wikidata.org/> SELECT * { SERVICE w:sparql {} }',
...             allowlist=["https://query.wikidata.org/sparql"])
>>> check_update('LOAD <http://evil/data.ttl>')
Traceback (most recent call last):
...
namkg.query.guard_lexer.UnsafeQuery: LOAD <http://evil/data.ttl> is refused: the IRI is not \
allowlisted
>>> check_query('SELECT * {' + '{' * 100 + '}' * 100 + '}')
Traceback (most recent call last):
...
namkg.query.guard_lexer.UnsafeQuery: the query nests brackets deeper than 64 levels

The lexer follows what pyoxigraph actually parses, including its quirks: keywords need no word
boundary (``trueSERVICE <x> {}`` and ``service:x {}`` are SERVICE calls to pyoxigraph), a
long string that never closes falls back to a short one, and inside an expression
``?o <?x#>`` may be a less-than followed by a comment. Where two readings are possible both
are checked. The text is also checked after SPARQL 1.1 §19.2 codepoint-escape decoding
(``\\u0053ERVICE``), which some parsers apply. Everything is iterative and linear-time;
malformed input is left to the real parser, which reports syntax errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .guard_lexer import Lexer, UnsafeQuery

__all__ = ["UnsafeQuery", "cannot_offend", "check_query", "check_update", "declares_dataset",
           "read_all", "resolve"]


def check_query(text: str, *, allowlist: Iterable[str] = (), max_depth: int = 64) -> None:
    """Raise :class:`UnsafeQuery` if ``text`` calls a non-allowlisted SERVICE or nests too deep."""
    _check(text, frozenset(allowlist), max_depth, update=False)


def check_update(text: str, *, allowlist: Iterable[str] = (), max_depth: int = 64) -> None:
    """Like :func:`check_query`, and also refuse LOAD of a non-allowlisted IRI.

    >>> check_update('INSERT DATA { <http://ex/a> <http://ex/load> "LOAD <http://x/>" }')
    """
    _check(text, frozenset(allowlist), max_depth, update=True)


def declares_dataset(text: str) -> bool:
    """Whether the query has its own FROM / FROM NAMED clause (so it picks its dataset).

    >>> declares_dataset('SELECT * FROM <http://ex/g> { ?s ?p ?o }')
    True
    >>> declares_dataset('SELECT ?from { ?s <http://ex/from> "FROM" } # FROM')
    False
    """
    if "from" not in text.lower():
        return False
    lexer = Lexer(text)
    pos = 0
    while (tok := lexer.token(pos)) is not None:
        kind, start, pos = tok
        if kind == "word" and text[start:pos].lower() == "from":
            return True
    return False


def cannot_offend(text: str, max_depth: int = 64, update: bool = False) -> bool:
    """Whether ``text`` passes the guard whatever its reading: no backslash (so no escape,
    and no decoded view that differs), no ``service`` (nor, in an update, ``load``) in any
    case anywhere (keywords need no boundary, so a substring test is the sound one), and
    fewer bracket and prefix-operator characters than ``max_depth``, which bounds every
    nesting the checker counts. Most queries qualify and skip the lexer (~35-70 us each).
    The one refusal this skips, a string that never ends, is then Oxigraph's syntax error:
    with no SERVICE anywhere in the text there is nothing such a string could hide.

    >>> cannot_offend('SELECT * { ?s ?p "service" }'), cannot_offend('SELECT * { ?s ?p ?o }')
    (False, True)
    >>> deep = 'SELECT * {' + '{' * 70 + '}' * 70 + '}'
    >>> cannot_offend(deep), cannot_offend('LOAD <x:>', update=True)
    (False, False)
    """
    if "\\" in text:
        return False
    low = text.lower()  # the checker's own lowering: it finds no more than this does
    if "service" in low or (update and "load" in low):
        return False
    return len(_NESTERS.findall(text)) <= max_depth


_NESTERS = re.compile(r"[{(\[!+\-]|<(?=<)")  # what can push the checker's stack or unary count


def _check(text: str, allowlist: frozenset[str], max_depth: int, update: bool) -> None:
    if not cannot_offend(text, max_depth, update):
        read_all(text, allowlist, max_depth, update)


def read_all(text: str, allowlist: frozenset[str], max_depth: int = 64,
             update: bool = False) -> None:
    """The whole check, with no shortcut (:func:`cannot_offend`): tests prove the two agree."""
    views = [text]
    decoded = _ESCAPE.sub(_unescape, text)
    if decoded != text:
        views.append(decoded)
    # Strict (fail closed) on the text as Oxigraph reads it; the decoded view is a second
    # look for parsers that decode first, where "\\u0022" in a string is a legal quote.
    for i, view in enumerate(views):
        _Checker(view, allowlist, max_depth, update, strict=i == 0).run()


_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")


def _unescape(m: re.Match) -> str:
    code = int(m.group(1) or m.group(2), 16)
    return chr(code) if code <= 0x10FFFF else m.group(0)


# --- IRIs -------------------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_PARTS = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.\-]*):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?",
                    re.S)


def _remove_dots(path: str) -> str:
    out: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if len(out) > 1:
                out.pop()
        elif seg != ".":
            out.append(seg)
    if path.split("/")[-1] in (".", ".."):
        out.append("")
    result = "/".join(out)
    return "/" + result.lstrip("/") if path.startswith("/") else result


def resolve(ref: str, base: str) -> str:
    """RFC 3986 §5.2 resolution (``urllib.parse.urljoin`` ignores unknown schemes).

    >>> resolve("../x?q#f", "http://a/b/c/d")
    'http://a/b/x?q#f'
    >>> resolve("//evil/", "urn:a")
    'urn://evil/'
    """
    s, a, p, q, f = _PARTS.fullmatch(ref).groups()
    bs, ba, bp, bq, _ = _PARTS.fullmatch(base).groups()
    if s is None:
        s = bs
        if a is None:
            a = ba
            if p == "":
                p, q = bp, (q if q is not None else bq)
            elif not p.startswith("/"):
                p = ("/" + p) if ba is not None and bp == "" else bp[: bp.rfind("/") + 1] + p
    p = _remove_dots(p)
    out = (s + ":" if s is not None else "") + ("//" + a if a is not None else "") + p
    return out + ("?" + q if q is not None else "") + ("#" + f if f is not None else "")


# --- checker ----------------------------------------------------------------------------

_OPERANDS = {"var", "iri", "pname", "bnode", "str", "num", "lang", "word"}
_UNLOCAL = re.compile(r"\\(.)")


class _Checker:
    """Walks the token stream, forking where pyoxigraph could read ``<`` two ways."""

    def __init__(self, text: str, allowlist: frozenset[str], max_depth: int, update: bool,
                 strict: bool = True):
        self.text, self.allowlist, self.max_depth, self.update = text, allowlist, max_depth, update
        self.lexer = Lexer(text, strict=strict)
        self.prefixes: dict[str, set[str]] = {}
        self.bases: set[str] = set()
        self.visited: set[tuple[int, bool]] = set()
        self.forks: list[tuple] = [(0, [], ("start", ""), -1)]

    def run(self) -> None:
        budget = 1000  # forks are rare (odd IRIs right after an operand); bound them anyway
        while self.forks:
            budget -= 1
            if budget < 0:
                raise UnsafeQuery("the query is too ambiguous to check (too many '<' readings)")
            self._walk(*self.forks.pop())

    def _walk(self, pos: int, stack: list[str], prev: tuple[str, str], quiet_until: int) -> None:
        """Read tokens from ``pos``; tokens before ``quiet_until`` are not keywords (an IRI
        read as code on a forked path)."""
        text = self.text
        pending: tuple | None = None  # what a SERVICE / LOAD keyword still waits for
        decl: tuple | None = None  # a PREFIX / BASE declaration in progress
        unary = 0  # prefix operators in a row
        while True:
            if pos >= quiet_until and pending is None:
                key = (pos, bool(stack) and stack[-1] == "(")
                if key in self.visited:
                    return  # read from here before, in the same state
                self.visited.add(key)
            tok = self.lexer.token(pos)
            if tok is None:
                if pending is not None and pending[0] != "SERVICE?":
                    raise UnsafeQuery(f"{pending[0]} without an endpoint IRI is not allowed")
                return
            kind, start, pos = tok
            value = text[start:pos]
            low = value.lower()
            if start >= quiet_until:
                if pending is not None and pending[0] == "SERVICE?":
                    if value == "{":  # "service:x {" is SERVICE :x to pyoxigraph
                        self._allow("SERVICE", pending[1])
                    pending = None
                if pending is not None:
                    pending = self._endpoint(pending, kind, value)
                    prev = (kind, low)
                    continue
                pending = self._keyword(kind, low, value, prev)
                decl = self._declaration(decl, kind, low, value)
            # A run of prefix operators ("!!!!…", "- - -…") nests the parser as deeply as
            # brackets do: count it towards the same depth limit.
            unary = unary + 1 if kind == "punct" and value in ("!", "-", "+") else 0
            if len(stack) + unary > self.max_depth:
                raise UnsafeQuery(
                    f"the query nests operators deeper than {self.max_depth} levels")
            if kind == "punct":
                if value in "{([":
                    stack.append(value)
                    if len(stack) > self.max_depth:
                        raise UnsafeQuery(
                            f"the query nests brackets deeper than {self.max_depth} levels")
                elif value in "})]" and stack:
                    stack.pop()
                elif value == "<" and text.startswith("<", pos):
                    stack.append("<<")
                elif value == ">" and text.startswith(">", pos) and stack and stack[-1] == "<<":
                    stack.pop()
            elif (kind == "iri" and start >= quiet_until and stack and stack[-1] == "("
                  and (prev[0] in _OPERANDS or prev[1] in (")", "]"))
                  and ("#" in value or "'" in value)):
                # In an expression "?o <?x#> ..." may be ?o < ?x and a comment: read both ways.
                self.forks.append((start + 1, list(stack), ("punct", "<"), pos))
            prev = ("decl", "") if decl == ("done",) else (kind, low)

    def _keyword(self, kind: str, low: str, value: str, prev: tuple[str, str]) -> tuple | None:
        """Start waiting for an endpoint after SERVICE / LOAD (keywords need no boundary)."""
        if kind == "word":
            for word in ("service", "load") if self.update else ("service",):
                i = low.find(word)
                if i >= 0:
                    rest = low[i + len(word):]
                    if rest not in ("", "silent"):
                        raise UnsafeQuery(f"{value!r} reads as {word.upper()}: not allowed")
                    return (word.upper(), rest == "")
        elif kind == "pname":
            prefix = low.split(":", 1)[0]
            i = prefix.find("service")
            if i >= 0 and prev != ("word", "graph"):
                targets = self._name_targets(value[i + 7:])
                if low[i + 7:].startswith("silent"):
                    targets |= self._name_targets(value[i + 13:]) or {""}
                return ("SERVICE?", targets)
            at_operation = prev[0] in ("start", "decl") or prev == ("punct", ";")
            if self.update and prefix.startswith("load") and at_operation:
                self._allow("LOAD", self._name_targets(value[4:]))
        return None

    def _endpoint(self, pending: tuple, kind: str, value: str) -> tuple | None:
        """The token after SERVICE / LOAD (and an optional SILENT) names the endpoint."""
        what, silent_ok = pending
        if silent_ok and kind == "word" and value.lower() == "silent":
            return (what, False)
        if kind == "iri":
            self._allow(what, self._iri_targets(value[1:-1]))
        elif kind == "pname":
            targets = self._name_targets(value)
            if silent_ok and value.lower().startswith("silent"):  # SILENT glued to a name
                targets |= self._name_targets(value[6:]) or {""}
            self._allow(what, targets)
        elif kind == "var":
            raise UnsafeQuery(f"{what} with a variable endpoint ({value}) is not allowed")
        else:
            raise UnsafeQuery(f"{what} must be followed by an allowlisted IRI")
        return None

    def _declaration(self, decl: tuple | None, kind: str, low: str, value: str) -> tuple | None:
        """Track PREFIX and BASE; every value ever declared counts (conservative)."""
        if kind == "word" and low in ("prefix", "base"):
            return (low,)
        if kind == "pname" and low.endswith(":"):
            if decl == ("prefix",):
                return ("prefix", value[:-1])
            if low.startswith("prefix"):  # "PREFIXex:" is PREFIX ex: to pyoxigraph
                return ("prefix", value[6:-1])
        if kind == "iri" and decl is not None and decl not in (("prefix",), ("done",)):
            iris = self._iri_targets(value[1:-1])
            if decl[0] == "base":
                self.bases |= iris
            else:
                self.prefixes.setdefault(decl[1], set()).update(iris)
            return ("done",)
        return None

    def _iri_targets(self, iri: str) -> set[str]:
        if _SCHEME.match(iri):
            return {iri, resolve(iri, iri)}  # resolved against a base, dot segments go
        return {resolve(iri, base) for base in self.bases}

    def _name_targets(self, pname: str) -> set[str]:
        if ":" not in pname:
            return set()
        prefix, local = pname.split(":", 1)
        local = _UNLOCAL.sub(r"\1", local)
        return {ns + local for ns in self.prefixes.get(prefix, ())}

    def _allow(self, what: str, targets: set[str]) -> None:
        bad = sorted(t for t in targets if t not in self.allowlist)
        if not targets or bad == [""]:
            raise UnsafeQuery(f"{what} is refused: its IRI cannot be resolved "
                              "(unknown prefix, or a relative IRI without BASE)")
        if bad:
            shown = next(t for t in bad if t)
            noun = "endpoint" if what == "SERVICE" else "IRI"
            raise UnsafeQuery(f"{what} <{shown}> is refused: the {noun} is not allowlisted")
