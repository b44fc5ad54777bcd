"""The ``virtuoso`` fixture: bench/virtuoso.py's throwaway Virtuoso, small, for the tests.

Needs Debian's ``virtuoso-opensource-7-bin`` (``virtuoso-t`` and ``isql-vt``). Without it the
tests that use the fixture are skipped with the reason, unless ``NAMKG_REQUIRE_VIRTUOSO=1`` makes
that a failure (for CI, where the package is installed).

Use it from a test module with ``from tests.virtuoso import virtuoso_fixture  # noqa: F401`` and
a ``virtuoso`` argument.
"""

from __future__ import annotations

import os
import shutil

import pytest

from bench.virtuoso import Tuning, Virtuoso

INSTALL = "apt-get install -y --no-install-recommends virtuoso-opensource-7-bin"
# ResultSetMaxRows below the ~1.5 k triples of the graph on purpose, so the tests see the cap
# at work.
TESTS = Tuning(threads=10, buffers=10_000, dirty_buffers=6_000, max_rows=1000)


def unavailable() -> str | None:
    """Why Virtuoso cannot run here, or None."""
    missing = [b for b in ("virtuoso-t", "isql-vt") if shutil.which(b) is None]
    return f"{', '.join(missing)} not installed (Debian: {INSTALL})" if missing else None


@pytest.fixture(scope="session", name="virtuoso")
def virtuoso_fixture(tmp_path_factory):
    """A running Virtuoso with a random dba password, stopped at the end of the session."""
    reason = unavailable()
    if reason:
        if os.environ.get("NAMKG_REQUIRE_VIRTUOSO") == "1":
            pytest.fail(f"NAMKG_REQUIRE_VIRTUOSO=1 but {reason}")
        pytest.skip(reason)
    server = Virtuoso(tmp_path_factory.mktemp("virtuoso"), tuning=TESTS).start()
    try:
        yield server
    finally:
        server.stop()
