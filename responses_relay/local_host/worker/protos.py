"""The Functions host↔worker protocol's Python modules, generated from the vendored worker's
`.proto` files on first use (as the worker's own build does).

Generated code belongs to one Python and one protobuf: modules made for 3.11's protobuf 4.25
fail to import under 3.13's protobuf 5.29. So they are never written into the source tree:
each interpreter's venv gets its own, in a folder keyed by the `.proto` files' hash and the
protobuf and grpcio-tools versions, and `protos_package.py` puts them together with the
vendored package's `__init__` as `azure_functions_worker.protos`, in the host and in the
worker's process alike.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

from .protos_package import PACKAGE, PROTOS_DIR, install

_SOURCES = PROTOS_DIR / "_src" / "src" / "proto"
_FILES = ("shared/NullableTypes.proto", "identity/ClaimsIdentityRpc.proto", "FunctionRpc.proto")
_SUBPACKAGES = ("shared", "identity")


def load_protos() -> ModuleType:
    """`azure_functions_worker.protos`, generated first if needed."""
    return install(generated_dir())


def generated_dir(root: Path | None = None) -> Path:
    """The folder of this interpreter's generated modules (under `root`, by default the venv's
    own prefix), made if it does not exist yet."""
    target = (root or Path(sys.prefix) / "functions-protos") / _key()
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        out = Path(work) / "out"
        _generate(out)
        try:
            out.rename(target)  # atomic; a concurrent generator may have won, with the same modules
        except OSError:
            if not target.is_dir():
                raise
    return target


def _generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    for subpackage in _SUBPACKAGES:
        (out / subpackage).mkdir(parents=True)
        (out / subpackage / "__init__.py").touch()
    for name in _FILES:
        args = ["protoc", f"-I{_SOURCES}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
        if protoc.main([*args, str(_SOURCES / name)]) != 0:
            raise RuntimeError(f"protoc failed on {name}")
    for path in out.rglob("*_pb2*.py"):
        path.write_text(_absolute_imports(path.read_text()))


def _absolute_imports(source: str) -> str:
    """protoc writes `import X_pb2` and `from shared import ...`; the package needs absolute ones."""
    source = re.sub(r"^import (\w+_pb2) as", rf"from {PACKAGE} import \1 as", source, flags=re.M)
    return re.sub(r"^from (shared|identity) import", rf"from {PACKAGE}.\1 import", source, flags=re.M)


def _key() -> str:
    """What the generated modules depend on: the `.proto` files, and the versions of protobuf (the
    runtime the modules need) and grpcio-tools (the protoc that wrote them)."""
    digest = hashlib.sha256()
    for name in _FILES:
        digest.update((_SOURCES / name).read_bytes())
    return f"protobuf-{version('protobuf')}-grpcio-tools-{version('grpcio-tools')}-{digest.hexdigest()[:16]}"
