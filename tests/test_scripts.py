"""scripts/venv.sh: which interpreter and venv `PYTHON` picks for scripts/run and scripts/test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .host_process import ROOT

VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def choose(python: str | None, path: str = os.environ["PATH"], **environ: str) -> subprocess.CompletedProcess[str]:
    """`choose_venv` in a shell with PYTHON set (or not); prints VENV and PYTHON."""
    script = 'source scripts/venv.sh && choose_venv && echo "$VENV $PYTHON"'
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/"), **environ}
    if python is not None:
        env["PYTHON"] = python
    return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)


def test_no_python_named_is_the_default_venv() -> None:
    assert choose(None).stdout == ".venv \n"


def test_an_interpreters_full_path_gets_a_venv_of_its_own() -> None:
    assert choose(sys.executable).stdout == f".venv-{VERSION} {sys.executable}\n"


def test_a_command_that_does_not_run_is_found_as_find_python_finds_it(tmp_path: Path) -> None:
    # As pyenv's shim without PYENV_VERSION: the command exists and fails.
    shim = tmp_path / f"python{VERSION}"
    shim.write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    named = {f"PYTHON_{VERSION.replace('.', '_')}_PATH": sys.executable}
    found = choose(f"python{VERSION}", path=f"{tmp_path}:{os.environ['PATH']}", **named)
    assert found.stdout == f".venv-{VERSION} {sys.executable}\n"


def test_a_python_that_cannot_serve_stops_with_one_line(tmp_path: Path) -> None:
    for python in ("/no/such/python3", "python2.7"):
        refused = choose(python, path="/usr/bin:/bin", PYENV_ROOT=str(tmp_path))
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert refused.stderr == f"error: PYTHON={python} is not a Python 3.11 or newer that runs here\n"
