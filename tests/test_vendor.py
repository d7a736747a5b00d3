"""The vendored libraries are exactly the pinned npm versions: the page's in static/vendor/, the browser
tests' accessibility checker in tests/browser/vendor/ (never shipped). Nothing loads from a CDN."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each folder scripts/vendor.mjs fills, with its manifest.
MANIFESTS = {
    folder: json.loads((ROOT / folder / "VENDOR.json").read_text())
    for folder in ("static/vendor", "tests/browser/vendor")
}
# Run by the tests, never vendored: the storage emulator, and the front ends' client libraries the
# protocol tests run (tests/clients/).
TOOLS = {"azurite", "ai", "@ag-ui/client", "@ag-ui/core", "rxjs", "zod"}
PINS = {
    name: version
    for name, version in json.loads((ROOT / "package.json").read_text())["devDependencies"].items()
    if name not in TOOLS
}
LOCK = json.loads((ROOT / "package-lock.json").read_text())["packages"]


def test_manifests_list_exactly_the_pinned_packages() -> None:
    listed = [(name, entry["version"]) for manifest in MANIFESTS.values() for name, entry in manifest.items()]
    assert len(listed) == len(dict(listed))  # each package vendored into one folder
    assert dict(listed) == PINS
    for name, version in PINS.items():
        assert LOCK[f"node_modules/{name}"]["version"] == version


@pytest.mark.parametrize(
    ("folder", "name", "target"),
    [
        (folder, name, target)
        for folder, manifest in MANIFESTS.items()
        for name, entry in manifest.items()
        for target in entry["files"]
    ],
)
def test_vendored_file_matches_its_pinned_hash(folder: str, name: str, target: str) -> None:
    entry = MANIFESTS[folder][name]["files"][target]
    content = (ROOT / folder / target).read_bytes()
    assert hashlib.sha256(content).hexdigest() == entry["sha256"]
    installed = ROOT / "node_modules" / name
    if installed.exists():  # scripts/test runs `npm ci`: compare with the registry's own file too
        assert json.loads((installed / "package.json").read_text())["version"] == MANIFESTS[folder][name]["version"]
        assert (installed / entry["source"]).read_bytes() == content


@pytest.mark.parametrize("folder", MANIFESTS)
def test_every_vendored_file_is_in_the_manifest(folder: str) -> None:
    listed = {target for entry in MANIFESTS[folder].values() for target in entry["files"]}
    vendor = ROOT / folder
    present = {str(path.relative_to(vendor)) for path in vendor.rglob("*") if path.is_file()} - {"VENDOR.json"}
    assert present == listed


def test_page_loads_nothing_from_another_origin() -> None:
    for path in [*ROOT.glob("static/*.html"), *ROOT.glob("static/js/*.js"), *ROOT.glob("static/*.css")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert not re.search(r"""(import|from)\s*\(?["'](https?:)?//""", text), path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {path}"
        assert "<style" not in text, f"inline style in {path}"
        assert ' style="' not in text, f"inline style in {path}"
