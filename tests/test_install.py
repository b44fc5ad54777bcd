"""The package as a user gets it: a wheel built from this checkout, installed (with its declared
dependencies only) in a fresh virtual environment, every command run from an empty directory.

This is what catches a file the code reads that the wheel does not carry, a runtime import that
is not a declared dependency, or a default path inside site-packages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
import requests

from .conftest import REPO, free_port

pytestmark = pytest.mark.timeout(900)


def run(*args, cwd: Path, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAMKG_", "PYTHONPATH"))}
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin directory, an empty working directory)."""
    root = tmp_path_factory.mktemp("install")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root / "dist", REPO,
        cwd=root)
    [wheel] = (root / "dist").glob("nam_kg-*.whl")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "-q", wheel, cwd=root)
    work = root / "work"
    work.mkdir()
    return bin_dir, work


def test_the_wheel_installs_namkg_and_no_other_top_level_package(installed):
    bin_dir, work = installed
    where = run(bin_dir / "python", "-c", "import namkg, sys; print(namkg.__file__)",
                cwd=work).stdout.strip()
    assert "site-packages" in where and str(REPO) not in where
    assert run(bin_dir / "python", "-c", "import importlib.util as u; "
               "print(u.find_spec('server'))", cwd=work).stdout.strip() == "None"


def test_every_command_works_from_an_empty_directory(installed):
    bin_dir, work = installed
    namkg = bin_dir / "namkg"
    assert run(namkg, "validate", cwd=work).stdout.startswith("OK: 0 violations")
    run(namkg, "build", cwd=work)
    assert (work / "store" / "current").is_dir()  # the store is the current directory's
    (work / "count.rq").write_text("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }\n")
    out = run(namkg, "query", "count.rq", "--format", "json", cwd=work).stdout
    assert int(json.loads(out)["results"]["bindings"][0]["n"]["value"]) > 1000
    ttl = run(namkg, "export", "--format", "ttl", cwd=work).stdout
    assert "دول حركة عدم الانحياز" in ttl or "Non-Aligned" in ttl
    assert run(namkg, "export", "--format", "quickstatements", cwd=work).stdout.strip()
    dry = run(namkg, "publish", "--to", "http://127.0.0.1:9/store", "--dry-run", cwd=work)
    assert "nothing was written" in dry.stdout + dry.stderr


def test_the_installed_server_serves_pages_queries_and_static_files(installed):
    bin_dir, work = installed
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAMKG_")}
    proc = subprocess.Popen([str(bin_dir / "namkg"), "serve", "--port", str(port)], cwd=work,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            pytest.fail("the installed server did not start")
        page = requests.get(url + "/id/azerbaijan", headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert requests.get(url + "/", timeout=10).status_code == 200
        assert requests.get(url + "/ontology", headers={"Accept": "text/turtle"},
                            timeout=10).status_code == 200
        answer = requests.post(url + "/sparql", data={"query": "ASK { ?s ?p ?o }"}, timeout=10)
        assert answer.json()["boolean"] is True
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
