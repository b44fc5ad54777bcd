"""Imported by the query executor's fork server only (see ``executor._preload``): the fork
server dies with the process that started it (the HTTP worker).

Its query workers already die with the fork server (``PR_SET_PDEATHSIG`` in each worker), so
with this a SIGKILLed HTTP worker leaves no process behind, even one in a runaway query: the
fork server would otherwise live on, and its worker with it, until the query ended.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

if sys.platform.startswith("linux"):
    _parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != _parent:  # the parent died before prctl took effect
        os._exit(0)
