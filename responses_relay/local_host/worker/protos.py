"""The Functions host↔worker protocol's Python modules, generated from the vendored worker's
`.proto` files on first use (as the worker's own build does) and imported from there.

The generated modules go into the vendored package (`azure_functions_worker/protos/`, ignored
by git), where the worker imports them too; a stamp holds the hash of the `.proto` files, so
they are regenerated when those change.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

WORKER_DIR = Path(__file__).resolve().parents[3] / "vendor" / "functions-worker"
PROTOS_DIR = WORKER_DIR / "azure_functions_worker" / "protos"
_SOURCES = PROTOS_DIR / "_src" / "src" / "proto"
_FILES = ("shared/NullableTypes.proto", "identity/ClaimsIdentityRpc.proto", "FunctionRpc.proto")
_STAMP = PROTOS_DIR / ".generated"
_PACKAGE = "azure_functions_worker.protos"


def load_protos() -> ModuleType:
    """`azure_functions_worker.protos`, generated first if needed."""
    generate()
    if str(WORKER_DIR) not in sys.path:
        sys.path.insert(0, str(WORKER_DIR))
    return importlib.import_module(_PACKAGE)


def generate() -> None:
    wanted = _sources_hash()
    if _STAMP.exists() and _STAMP.read_text() == wanted:
        return
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    with tempfile.TemporaryDirectory() as work:
        staging, out = Path(work) / "protos", Path(work) / "out"
        shutil.copytree(_SOURCES, staging)
        out.mkdir()
        for name in _FILES:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            args = ["protoc", f"-I{staging}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
            args.append(str(staging / name))
            if protoc.main(args) != 0:
                raise RuntimeError(f"protoc failed on {name}")
        for path in out.rglob("*_pb2*.py"):
            target = PROTOS_DIR / path.relative_to(out)
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(_absolute_imports(path.read_text()))
            partial.replace(target)  # atomic: a concurrent reader sees the old file or the new one
    _STAMP.write_text(wanted)


def _absolute_imports(source: str) -> str:
    """protoc writes `import X_pb2` and `from shared import ...`; the package needs absolute ones."""
    source = re.sub(r"^import (\w+_pb2) as", rf"from {_PACKAGE} import \1 as", source, flags=re.M)
    return re.sub(r"^from (shared|identity) import", rf"from {_PACKAGE}.\1 import", source, flags=re.M)


def _sources_hash() -> str:
    digest = hashlib.sha256()
    for name in _FILES:
        digest.update((_SOURCES / name).read_bytes())
    return digest.hexdigest()
