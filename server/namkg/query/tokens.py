"""SPARQL text as tokens with their places, for editing a query in place (:mod:`namkg.query.wdqs`).

Strings short and long with their escapes, IRIs, comments, variables, prefixed names: enough to
tell a brace of the query from one inside a string or a comment. A text this cannot read (a
string that never closes) raises :class:`Unlexable` and is left to Oxigraph's parser, whose
error says where. The SERVICE guard (:mod:`namkg.query.safety`) has its own lexer, which
fails closed instead.

>>> toks = tokens('SELECT * { ?s ?p "}" }')
>>> [t.text for t in toks], matching_braces(toks)
(['SELECT', '*', '{', '?s', '?p', '"}"', '}'], {2: 6})
>>> string_value('"a\\\\"b"'), line_of("a\\nb", 2)
('a"b', 2)
"""

from __future__ import annotations

import re
from typing import NamedTuple

# PN_CHARS_BASE of SPARQL 1.1 (§19.8), as a character class body.
_BASE = (
    "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d"
    "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_U = _BASE + "_"
_CH = _U + r"\-0-9\u00b7\u0300-\u036f\u203f-\u2040"
_PLX = r"%[0-9A-Fa-f]{2}|\\[_~.\-!$&'()*+,;=/?#@%]"
_PREFIX = rf"[{_BASE}](?:[{_CH}.]*[{_CH}])?"
_LOCAL = rf"(?:[{_U}:0-9]|{_PLX})(?:(?:[{_CH}.:]|{_PLX})*(?:[{_CH}:]|{_PLX}))?"
_TOKEN = re.compile(
    rf"""
    (?P<skip>(?:[ \t\r\n]|\#[^\r\n]*)+)
  | (?P<iri><(?:[^<>"{{}}|^`\\\x00-\x20]|\\u[0-9A-Fa-f]{{4}}|\\U[0-9A-Fa-f]{{8}})*>)
  | (?P<str>'''(?:'{{0,2}}(?:[^'\\]|\\.))*'''|\"\"\"(?:"{{0,2}}(?:[^"\\]|\\.))*\"\"\"
           |'(?:[^'\\\r\n]|\\.)*'|"(?:[^"\\\r\n]|\\.)*")
  | (?P<var>[?$][{_U}0-9][{_U}0-9\u00b7\u0300-\u036f\u203f-\u2040]*)
  | (?P<bnode>_:[{_U}0-9](?:[{_CH}.]*[{_CH}])?)
  | (?P<pname>(?:{_PREFIX})?:(?:{_LOCAL})?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\.[0-9]*[eE][+-]?[0-9]+
           |[0-9]+(?:[eE][+-]?[0-9]+)?)
  | (?P<lang>@[a-zA-Z]+(?:-[a-zA-Z0-9]+)*)
  | (?P<quote>['"])
  | (?P<punct>\^\^|&&|\|\||!=|<=|>=|.)
    """,
    re.VERBOSE | re.DOTALL,
)


class Tok(NamedTuple):  # a tuple: built ~3x faster than a frozen dataclass, per token
    kind: str
    start: int
    end: int
    text: str


class Unlexable(Exception):
    """A string that never closes: the text is left to the real parser's error message."""


def tokens(text: str) -> list[Tok]:
    """The significant tokens of ``text`` (no whitespace or comments).

    >>> [t.text for t in tokens('SELECT ?x { ?x a "}" . # }\\n ?x wdt:P31/wdt:P279* wd:Q5.}')]
    ['SELECT', '?x', '{', '?x', 'a', '"}"', '.', '?x', 'wdt:P31', '/', 'wdt:P279', '*', \
'wd:Q5', '.', '}']
    """
    out, pos = [], 0
    for m in _TOKEN.finditer(text):
        start, end = m.span()
        if start != pos:  # finditer skipped nothing it could not match: cannot happen
            raise Unlexable
        pos = end
        kind = m.lastgroup
        if kind == "skip":
            continue
        if kind == "quote":
            raise Unlexable
        out.append(Tok(kind, start, end, text[start:end]))
    return out


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def matching_braces(toks: list[Tok]) -> dict[int, int]:
    match, stack = {}, []
    for i, t in enumerate(toks):
        if t.text == "{":
            stack.append(i)
        elif t.text == "}" and stack:
            match[stack.pop()] = i
    return match


def matching(toks: list[Tok]) -> dict[int, int]:
    """Opening bracket index -> its closing one, for braces, parentheses and square brackets."""
    pairs, match, stack = {"{": "}", "(": ")", "[": "]"}, {}, []
    for i, t in enumerate(toks):
        if t.kind != "punct":
            continue
        if t.text in pairs:
            stack.append(i)
        elif t.text in (")", "}", "]"):
            while stack and pairs[toks[stack[-1]].text] != t.text:
                stack.pop()  # unbalanced: the parser will say so
            if stack:
                match[stack.pop()] = i
    return match


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def string_value(token: str) -> str:
    quote = 3 if token[:3] in ("'''", '"""') else 1
    body = token[quote:-quote]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)
