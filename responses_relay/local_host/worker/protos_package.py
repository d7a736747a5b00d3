"""`azure_functions_worker.protos` put together from two folders: the vendored package's own
`__init__.py` (which names the messages) and this interpreter's generated modules (see
`protos.py`). The host imports it so, and so does the worker's process (`launcher.py`, which
imports this file by path: it has no imports of the project's own).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

WORKER_DIR = Path(__file__).resolve().parents[3] / "vendor" / "functions-worker"
PROTOS_DIR = WORKER_DIR / "azure_functions_worker" / "protos"
PACKAGE = "azure_functions_worker.protos"


def install(generated: Path) -> ModuleType:
    """Import `azure_functions_worker.protos` with the generated modules found first."""
    _import_package("azure_functions_worker", [PROTOS_DIR.parent])
    # The generated folder comes first: its `shared` and `identity` hold the modules.
    return _import_package(PACKAGE, [generated, PROTOS_DIR])


def _import_package(name: str, folders: list[Path]) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, folders[-1] / "__init__.py", submodule_search_locations=[str(folder) for folder in folders]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
