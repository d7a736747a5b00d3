"""The worker protocol's generated modules: one set per interpreter and protobuf, never in the
source tree, and the same package in the host and in the worker's process."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from responses_relay.local_host.worker import protos
from responses_relay.local_host.worker.protos_package import PROTOS_DIR


def test_the_modules_are_keyed_by_protobuf_grpcio_tools_and_the_proto_files(tmp_path: Path) -> None:
    generated = protos.generated_dir(tmp_path)
    name = generated.name
    assert name.startswith(f"protobuf-{version('protobuf')}-grpcio-tools-{version('grpcio-tools')}-")
    assert sorted(path.relative_to(generated).as_posix() for path in generated.rglob("*.py")) == [
        "FunctionRpc_pb2.py",
        "FunctionRpc_pb2_grpc.py",
        "identity/ClaimsIdentityRpc_pb2.py",
        "identity/ClaimsIdentityRpc_pb2_grpc.py",
        "identity/__init__.py",
        "shared/NullableTypes_pb2.py",
        "shared/NullableTypes_pb2_grpc.py",
        "shared/__init__.py",
    ]
    assert protos.generated_dir(tmp_path) == generated  # made once


def test_another_protobuf_gets_its_own_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ours = protos.generated_dir(tmp_path)
    monkeypatch.setattr(protos, "version", lambda package: "9.9.9" if package == "protobuf" else version(package))
    other = protos.generated_dir(tmp_path)
    assert other != ours
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([ours.name, other.name])


def test_the_package_is_the_vendored_init_over_this_interpreters_modules() -> None:
    package = protos.load_protos()
    assert Path(package.__file__ or "") == PROTOS_DIR / "__init__.py"
    generated = protos.generated_dir()
    assert generated.is_relative_to(sys.prefix)  # this interpreter's venv, not the source tree
    for name in ("FunctionRpc_pb2", "FunctionRpc_pb2_grpc", "shared.NullableTypes_pb2"):
        assert Path(sys.modules[f"{package.__name__}.{name}"].__file__ or "").is_relative_to(generated), name


def test_every_message_and_field_the_313_runtime_builds_is_in_the_vendored_proto_files() -> None:
    runtime = pytest.importorskip("azure_functions_runtime", reason="Python 3.13's worker runtime")
    package = protos.load_protos()
    built: list[tuple[str, str]] = []
    for path in Path(runtime.__file__ or "").parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "protos":
                built += [(node.func.attr, keyword.arg or "") for keyword in node.keywords]
    assert len(built) > 50  # the runtime still builds its answers from `protos.X(...)`
    for message, field in built:
        assert field in {each.name for each in getattr(package, message).DESCRIPTOR.fields}, (message, field)
