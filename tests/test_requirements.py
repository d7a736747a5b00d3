"""The requirements files' markers: each interpreter gets one version of each package, the
worker it runs on, and the gRPC and protobuf versions that worker was built with."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def requirements(name: str, python_version: str) -> dict[str, Requirement]:
    """The requirements `name` (and the files it includes) asks for on `python_version`."""
    found: dict[str, Requirement] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found.update(requirements(line.removeprefix("-r "), python_version))
        elif line:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"python_version": python_version}):
                assert requirement.name not in found, f"{requirement.name} twice for Python {python_version}"
                found[requirement.name] = requirement
    return found


@pytest.mark.parametrize(
    ("python_version", "worker", "grpcio", "protobuf", "azure_functions"),
    [
        ("3.11", None, "1.59.5", "4.25.9", "1.24.0"),
        ("3.12", None, "1.59.5", "4.25.9", "1.24.0"),
        ("3.13", "azure-functions-runtime", "1.70.0", "5.29.6", "2.3.0"),
    ],
)
def test_each_python_gets_its_workers_pins(
    python_version: str, worker: str | None, grpcio: str, protobuf: str, azure_functions: str
) -> None:
    wanted = requirements("requirements-dev.txt", python_version)
    assert ("azure-functions-runtime" in wanted) == (worker is not None)
    for package, example in (("grpcio", grpcio), ("grpcio-tools", grpcio), ("protobuf", protobuf)):
        assert wanted[package].specifier.contains(example), (package, python_version)
    assert wanted["azure-functions"].specifier.contains(azure_functions)


def test_what_is_installed_here_is_what_this_python_asks_for() -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    for package, requirement in requirements("requirements-worker.txt", here).items():
        assert requirement.specifier.contains(version(package), prereleases=True), package
