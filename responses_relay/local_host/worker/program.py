"""Which worker program runs the app, chosen by the interpreter's version as Azure chooses it.

- Python 3.11 and 3.12: the Azure Functions Python worker (4.34.0, vendored), which indexes
  the app at init only when `PYTHON_ENABLE_INIT_INDEXING` is set, and without it never
  starts its web server for HTTP streaming.
- Python 3.13: the Functions host starts a small proxy worker, which loads the worker's
  runtime from the `azure-functions-runtime` package and hands it each message; the
  runtime always indexes at init. The runtime here is the real one, from PyPI; the proxy in
  front of it is the project's own (`proxy_worker.py`), because Azure's is not published
  anywhere this project installs from.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from .protos_package import WORKER_DIR

_RUNTIME_FROM = (3, 13)


@dataclass(frozen=True)
class WorkerProgram:
    name: str  # the back end, as the host's ready line names it
    script: Path  # what the worker's process runs
    environment: dict[str, str] = field(default_factory=dict)
    # What a failed WorkerInitResponse means: the runtime indexes the app in it.
    init_failure: str = "could not start"


def worker_program() -> WorkerProgram:
    if sys.version_info >= _RUNTIME_FROM:
        return WorkerProgram(
            name=f"azure-functions-runtime {version('azure-functions-runtime')} behind the project's proxy worker",
            script=Path(__file__).with_name("proxy_worker.py"),
            init_failure="could not index function_app.py",
        )
    return WorkerProgram(
        name=f"Azure Functions Python worker {_vendored_version()}",
        script=WORKER_DIR / "worker.py",
        # Index at init, which is also what starts the worker's own web server for HTTP streaming.
        environment={"PYTHON_ENABLE_INIT_INDEXING": "1"},
    )


def _vendored_version() -> str:
    found = re.search(r"^VERSION = '([^']+)'", (WORKER_DIR / "azure_functions_worker" / "version.py").read_text(), re.M)
    assert found is not None, "the vendored worker's version.py names no VERSION"
    return found[1]
