"""The SERVICE guard's lexer (:mod:`namkg.query.safety`): one token at a time, as pyoxigraph
reads them, failing closed where pyoxigraph could read a string otherwise than we do.

The dialect (:mod:`namkg.query.tokens`) has a lexer of its own that leaves unreadable text to
Oxigraph's parser; this one refuses it (:class:`UnsafeQuery`), since a SERVICE it took for
string content could be live to pyoxigraph.

>>> lexer = Lexer('SELECT * { ?s <http://ex/p> "a}" } # }')
>>> pos, toks = 0, []
>>> while (tok := lexer.token(pos)) is not None:
...     kind, start, pos = tok
...     toks.append(kind)
>>> toks
['word', 'punct', 'punct', 'var', 'iri', 'str', 'punct']
>>> Lexer('ASK { ?s ?p "never ends }', strict=True).token(11)
Traceback (most recent call last):
...
namkg.query.guard_lexer.UnsafeQuery: line 1, column 13: a string that never ends (or runs past \
the end of its line) is refused
"""

from __future__ import annotations

import bisect
import re

__all__ = ["Lexer", "UnsafeQuery"]


class UnsafeQuery(ValueError):
    """The query is refused; ``str(exc)`` is a message fit for an HTTP 400 body."""


def _names(ascii_chars: str) -> str:
    """A character class: ``ascii_chars`` and every non-ASCII character (a superset of
    SPARQL's PN_CHARS that compiles fast; the others are syntax errors outside strings)."""
    return "[^" + "".join(f"\\x{i:02x}" for i in range(128) if chr(i) not in ascii_chars) + "]"


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = _names(_LETTERS)
_U = _names(_LETTERS + "_")
_U09 = _names(_LETTERS + "_0123456789")
_CHARS = _names(_LETTERS + "_-0123456789")
_CHARS_DOT = _names(_LETTERS + "_-0123456789.")
_PLX = r"%[0-9A-Fa-f]{2}|\\[_~.\-!$&'()*+,;=/?#@%]"
_LOCAL = (rf"(?:{_names(_LETTERS + '_:0123456789')}|{_PLX})"
          rf"(?:(?:{_names(_LETTERS + '_-0123456789.:')}|{_PLX})*"
          rf"(?:{_names(_LETTERS + '_-0123456789:')}|{_PLX}))?")
_SIMPLE = re.compile(
    rf"""
    (?P<var>[?$]{_U09}+)
  | (?P<bnode>_:{_U09}(?:{_CHARS_DOT}*{_CHARS})?)
  | (?P<pname>(?:{_BASE}(?:{_CHARS_DOT}*{_CHARS})?)?:(?:{_LOCAL})?)
  | (?P<word>{_U}(?:{_CHARS_DOT}*{_CHARS})?)
  | (?P<num>[0-9]+\.[0-9]*[eE][+-]?[0-9]+|\.?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<lang>@[a-zA-Z]+(?:-[a-zA-Z0-9]+)*(?:--[a-zA-Z]+)?)
    """,
    re.VERBOSE,
)
_SKIP = re.compile(r"(?:[ \t\r\n]|#[^\r\n]*)+")
_IRIREF = re.compile(r'<(?:[^<>"{}|^`\\\x00-\x20]|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8})*>')
_NEWLINE = re.compile(r"[\r\n]")


class _Finder:
    """Positions of ``needle`` not escaped by a backslash, found lazily and at most once.

    Escaping depends only on the run of backslashes just before a quote, so one left-to-right
    scan serves every string start: failed searches cannot add up to quadratic time.
    """

    def __init__(self, text: str, needle: str | re.Pattern):
        self.text, self.needle = text, needle
        self.found: list[int] = []
        self.scanned = 0  # every hit before this index is in ``found``

    def next(self, start: int) -> int:
        """The first hit at or after ``start``, or -1."""
        i = bisect.bisect_left(self.found, start)
        if i < len(self.found):
            return self.found[i]
        pos = max(start, self.scanned)
        text = self.text
        while True:
            if isinstance(self.needle, str):
                hit = text.find(self.needle, pos)
            else:
                m = self.needle.search(text, pos)
                hit = m.start() if m else -1
            if hit < 0:
                self.scanned = len(text)
                return -1
            self.scanned = hit + 1
            run = 0
            while hit - run - 1 >= 0 and text[hit - run - 1] == "\\":
                run += 1
            if run % 2 == 0 or not isinstance(self.needle, str):
                self.found.append(hit)
                return hit
            pos = hit + 1


class Lexer:
    """One token at a time: ``token(pos)`` -> (kind, start, end) after whitespace and comments.

    ``strict``: fail closed. A string that Oxigraph could read otherwise than we do (one that
    never ends, or holds an escape that is not SPARQL's) raises :class:`UnsafeQuery`: pyoxigraph
    then backtracks to other readings of the same characters, and a SERVICE we took for string
    content could become live.
    """

    def __init__(self, text: str, strict: bool = False):
        self.text, self.strict = text, strict
        self.finders = {q: _Finder(text, q) for q in ("'", '"', "'''", '"""')}
        self.newlines = _Finder(text, _NEWLINE)

    def token(self, pos: int) -> tuple[str, int, int] | None:
        text = self.text
        m = _SKIP.match(text, pos)
        if m:
            pos = m.end()
        if pos >= len(text):
            return None
        c = text[pos]
        if c == "<":
            m = _IRIREF.match(text, pos)
            return ("iri", pos, m.end()) if m else ("punct", pos, pos + 1)
        if c in "'\"":
            return self._string(pos, c)
        m = _SIMPLE.match(text, pos)
        if m:
            return m.lastgroup, pos, m.end()
        return "punct", pos, pos + 1

    def _string(self, pos: int, q: str) -> tuple[str, int, int]:
        # Like pyoxigraph's PEG grammar: try the long form, fall back to the short one.
        if self.text.startswith(q * 3, pos):
            end = self.finders[q * 3].next(pos + 3)
            if end >= 0:
                self._escapes(pos, pos + 3, end)
                return "str", pos, end + 3
        end = self.finders[q].next(pos + 1)
        nl = self.newlines.next(pos + 1)
        if end >= 0 and (nl < 0 or end < nl):
            self._escapes(pos, pos + 1, end)
            return "str", pos, end + 1
        if self.strict:
            raise UnsafeQuery(f"{_where(self.text, pos)}: a string that never ends (or runs "
                              "past the end of its line) is refused")
        return "punct", pos, pos + 1  # unterminated: a syntax error for the real parser

    def _escapes(self, start: int, body: int, end: int) -> None:
        if self.strict and not _STRING_BODY.fullmatch(self.text, body, end):
            bad = next((m.start() for m in _BAD_ESCAPE.finditer(self.text, body, end)
                        if m.group(1)), body)
            shown = self.text[bad:bad + 2]
            raise UnsafeQuery(f"{_where(self.text, start)}: the string holds '{shown}', which is "
                              "not a SPARQL escape (\\t \\b \\n \\r \\f \\\" \\' "
                              "\\\\ \\uXXXX)")


# A string's content: no backslash but in one of SPARQL's escapes (ECHAR, UCHAR).
_ESC = r"""\\(?:[tbnrf"'\\]|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8})"""
_STRING_BODY = re.compile(rf"(?:[^\\]++|{_ESC})*+")  # possessive: no backtracking
_BAD_ESCAPE = re.compile(rf"{_ESC}|(\\)")


def _where(text: str, pos: int) -> str:
    """'line L, column C' of ``pos`` (1-based), for messages."""
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"
