"""How the executor ranks queries: by the CPU time they use, and by what their text did before.

- A query that runs long is deprioritised step by step: the more CPU it has used, the nicer
  its worker gets (:data:`NICE_STEPS`, :func:`nice_for`), so a query that burns CPU yields it
  to quick ones and to those that used less; a query slowed only by load is not starved by
  runaways (priority by CPU used, not by time waited).
- A text that finished before is demoted only once it has used twice the CPU it needed then
  (its grace): a known, moderately costly query (an ORDER BY over the whole store, ~0.12 s) is
  not starved as if it were a runaway. Runaways never finish, so they never earn that grace.
- A request queued for a worker gives up (503) once less than its last cost, or
  :data:`MIN_SLICE`, is left before its deadline.
- A text that ran past its deadline is remembered for :data:`RUNAWAY_MEMORY` seconds (by its
  :func:`shape`) and, while it is, gets a worker only while fewer than half the pool run long
  queries: a storm of runaways then leaves the other half to quick queries.

:class:`History` remembers costs and runaways; the executor applies the rest.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["LONG_AFTER", "MIN_SLICE", "NICE_STEPS", "TICK", "History", "Seen", "nice_for",
           "shape"]

# (CPU seconds the query has used, nice)
NICE_STEPS = ((0.05, 5), (0.1, 10), (0.2, 15), (0.4, 19))
LONG_AFTER = 0.25  # seconds: a query still running then may get an extra worker started
TICK = 0.05  # seconds between checks of a long query's CPU time
MIN_SLICE = 0.05  # seconds a query is assumed to need at least
RUNAWAY_MEMORY = 60.0  # seconds a text that ran past its deadline is remembered
COSTS_KEPT = 4096  # query texts whose last CPU cost (or runaway) is remembered
CHEAP = 0.005  # CPU seconds: a new text that costs less is not remembered (History.finished)
_TRAILING_COMMENT = re.compile(r"#[^\n\"'<>]*\Z")


def shape(text: str) -> str:
    """A query's text without its layout or a trailing comment (a request counter, say).

    >>> shape("SELECT *\\n{ ?s ?p ?o }  # 17") == shape("SELECT * { ?s ?p ?o } # 18")
    True
    """
    return " ".join(_TRAILING_COMMENT.sub("", text).split())


def nice_for(used: float, grace: float = 0.0) -> int:
    """The nice value of a query that has used ``used`` CPU seconds, ``grace`` of them free.

    >>> nice_for(0.01), nice_for(0.15), nice_for(5.0), nice_for(0.15, grace=0.24)
    (0, 10, 19, 0)
    """
    used -= grace
    return max([n for after, n in NICE_STEPS if used >= after], default=0)


@dataclass(slots=True)
class Seen:
    """What :meth:`History.recall` found of a query text."""

    text: str
    key: int  # of the text
    cost: float  # CPU seconds it used when it last finished; 0 if unknown
    ran_away: bool  # its shape ran past its deadline lately

    def shape(self) -> int:
        """The key of the text's shape: made only while some shape is a runaway, or for one."""
        return hash(shape(self.text))


class History:
    """The last CPU cost of each query text, and which shapes ran away lately; thread-safe.

    >>> h = History()
    >>> seen = h.recall("SELECT 1", now=100.0)
    >>> h.finished(seen, 0.2); h.cost("SELECT 1")
    0.2
    >>> h.finished(h.recall("ASK {}", now=100.0), 0.001); h.cost("ASK {}") is None  # cheap
    True
    >>> h.timed_out(seen, now=101.0); h.cost("SELECT 1"), h.recall("SELECT 1 # 2", 102.0).ran_away
    (None, True)
    >>> h.recall("SELECT 1", now=161.5).ran_away
    False
    """

    def __init__(self, kept: int = COSTS_KEPT, memory: float = RUNAWAY_MEMORY):
        self.kept, self.memory = kept, memory
        self._lock = threading.Lock()
        self._costs: OrderedDict[int, float] = OrderedDict()  # hash(text) -> CPU seconds
        self._runaways: OrderedDict[int, float] = OrderedDict()  # hash(shape) -> when

    def recall(self, sparql: str, now: float) -> Seen:
        """What is known of ``sparql`` at ``now`` (``time.monotonic()``)."""
        key = hash(sparql)  # (a single read of each dict, atomic under the GIL: no lock)
        seen = Seen(sparql, key, self._costs.get(key, 0.0), False)
        if self._runaways:  # the text's shape is worth making only then (a regex pass and a join)
            with self._lock:
                when = self._runaways.get(seen.shape())
            seen.ran_away = when is not None and when > now - self.memory
        return seen

    def cost(self, sparql: str) -> float | None:
        """The CPU seconds ``sparql`` used when it last finished, if remembered."""
        with self._lock:
            return self._costs.get(hash(sparql))

    def finished(self, seen: Seen, cost: float) -> None:
        """The query finished, using ``cost`` CPU seconds: its shape did not run away. A text
        unknown so far that cost under ``CHEAP`` is not kept: a grace of twice that changes
        no priority, and one-off texts would only push out the costs worth keeping."""
        if cost < CHEAP and not seen.cost and not self._runaways:
            return
        with self._lock:
            if self._runaways:
                self._runaways.pop(seen.shape(), None)
            _remember(self._costs, seen.key, cost, self.kept)

    def timed_out(self, seen: Seen, now: float) -> None:
        """The query ran past its deadline: no grace for its text, its shape a runaway."""
        form = seen.shape()
        with self._lock:
            self._costs.pop(seen.key, None)
            _remember(self._runaways, form, now, self.kept)

    def forget(self) -> None:
        """Forget everything (costs measured on other data say nothing)."""
        with self._lock:
            self._costs.clear()
            self._runaways.clear()


def _remember(kept: OrderedDict, key: int, value: float, most: int) -> None:
    kept[key] = value
    kept.move_to_end(key)
    if len(kept) > most:
        kept.popitem(last=False)
