"""Where the app runs, for the health route: the interpreter's version and the Functions
worker program that drives it, found by what is loaded in this process (so it holds in
Azure, under `func start` and on the local host alike)."""

from __future__ import annotations

import platform
import sys

# The module that names each worker's version, and the package it comes from; Python 3.13's
# runtime comes first: its process also loads the older worker's protocol package.
_WORKERS = (
    ("azure_functions_runtime.version", "azure-functions-runtime"),
    ("azure_functions_worker.version", "azure-functions-worker"),
)


def python_version() -> str:
    return platform.python_version()


def worker() -> str:
    """`in-process` (the local host's default back end), or the worker's package and version."""
    for module, package in _WORKERS:
        loaded = sys.modules.get(module)
        if loaded is not None:
            return f"{package} {loaded.VERSION}"
    return "in-process"
