"""scripts/venv.sh: which interpreter and venv `PYTHON` picks for scripts/run and scripts/test;
scripts/azurite.sh: the storage emulator scripts/run starts for budgets, really started, on a
free port, or one line saying it did not."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from azure.data.tables.aio import TableServiceClient

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


@dataclass
class Emulator:
    """What start_azurite (scripts/azurite.sh) did: its exit status, what it said, and, when it
    started Azurite, the process and the connection string it gives the relay."""

    returncode: int
    said: str
    errors: str
    pid: int | None
    connection_string: str | None


@contextmanager
def start_azurite(location: Path, port: int, tmp_path: Path) -> Iterator[Emulator]:
    """Run start_azurite in a shell with scripts/run's options (it returns once Azurite has started,
    which runs on), and stop the Azurite it started, by its process id, at the end."""
    script = (
        'set -euo pipefail; source scripts/azurite.sh; start_azurite "$0" "$1"; echo "pid=$AZURITE_PID";'
        ' echo "connection=$AZURITE_CONNECTION_STRING"'
    )
    said, errors = tmp_path / "said", tmp_path / "errors"
    # Files, not pipes: Azurite outlives the shell, and a pipe it held would never end.
    with said.open("w") as out, errors.open("w") as err:
        done = subprocess.run(
            ["bash", "-c", script, str(location), str(port)], cwd=ROOT, stdout=out, stderr=err, timeout=60
        )
    lines = said.read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if line.startswith(("pid=", "connection=")))
    pid = int(values["pid"]) if "pid" in values else None
    told = "\n".join(line for line in lines if not line.startswith(("pid=", "connection=")))
    try:
        yield Emulator(done.returncode, told, errors.read_text(), pid, values.get("connection"))
    finally:
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def table_port(connection_string: str) -> int:
    fields = dict(field.split("=", 1) for field in connection_string.split(";"))
    return int(urlsplit(fields["TableEndpoint"]).port or 0)


async def test_azurite_on_a_port_in_use_runs_on_a_free_one_and_says_so(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # something else listens there
        port = taken.getsockname()[1]
        with start_azurite(tmp_path / "azurite", port, tmp_path) as emulator:
            assert emulator.returncode == 0
            assert emulator.connection_string is not None
            chosen = table_port(emulator.connection_string)
            assert chosen != port
            assert emulator.said == (
                f"Azurite (the storage emulator) keeps the relay's state (budgets, answers) in {tmp_path / 'azurite'}/,"
                f" on 127.0.0.1:{chosen} (127.0.0.1:{port} is in use)"
            )
            # Azurite itself answers there, with the account and key the relay is given.
            async with TableServiceClient.from_connection_string(emulator.connection_string) as tables:
                await tables.create_table_if_not_exists("startedhere")
                assert [table.name async for table in tables.list_tables()] == ["startedhere"]


def test_azurite_that_does_not_start_stops_with_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with start_azurite(not_a_folder, port, tmp_path) as emulator:
        assert emulator.returncode == 1
        assert emulator.connection_string is None
        assert emulator.said == ""
        assert emulator.errors.startswith(f"error: Azurite (the storage emulator) did not start on 127.0.0.1:{port}: ")
        assert emulator.errors.count("\n") == 1


def test_azurite_runs_on_the_port_asked_when_it_is_free(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with start_azurite(tmp_path / "azurite", port, tmp_path) as emulator:
        assert emulator.returncode == 0
        assert emulator.connection_string is not None
        assert table_port(emulator.connection_string) == port
        assert emulator.said.endswith(
            f"keeps the relay's state (budgets, answers) in {tmp_path / 'azurite'}/, on 127.0.0.1:{port}"
        )
