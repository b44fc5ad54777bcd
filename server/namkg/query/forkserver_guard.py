"""Imported by the query executor's fork server only (see ``worker.preload``): the fork
server ends when the process that started it (the HTTP worker) ends.

Its query workers already die with the fork server (``PR_SET_PDEATHSIG`` in each worker), so
with this a SIGKILLed HTTP worker leaves no process behind, even one in a runaway query: the
fork server would otherwise live on, and its worker with it, until the query ended.

A thread watches the parent *process* through a pidfd. ``PR_SET_PDEATHSIG`` would not do here:
it fires when the parent *thread* ends, and a fork server that multiprocessing restarts from a
short-lived thread (a worker replacer) would then be killed, with all its workers, as soon as
that thread finished.
"""

from __future__ import annotations

import os
import select
import sys
import threading


def _watch(pidfd: int) -> None:
    select.select([pidfd], [], [])  # readable once the process has ended
    os._exit(0)


if sys.platform.startswith("linux") and hasattr(os, "pidfd_open"):
    _parent = os.getppid()
    try:
        _fd = os.pidfd_open(_parent)
    except OSError:  # the parent is already gone
        os._exit(0)
    threading.Thread(target=_watch, args=(_fd,), daemon=True, name="namkg-parent-watch").start()
