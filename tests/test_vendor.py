"""The page's vendored libraries are exactly the pinned npm versions, and nothing loads from a CDN."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"
MANIFEST = json.loads((VENDOR / "VENDOR.json").read_text())
PINS = json.loads((ROOT / "package.json").read_text())["devDependencies"]
LOCK = json.loads((ROOT / "package-lock.json").read_text())["packages"]


def test_manifest_lists_exactly_the_pinned_packages() -> None:
    assert {name: entry["version"] for name, entry in MANIFEST.items()} == PINS
    for name, version in PINS.items():
        assert LOCK[f"node_modules/{name}"]["version"] == version


@pytest.mark.parametrize(
    ("name", "target"), [(name, target) for name, entry in MANIFEST.items() for target in entry["files"]]
)
def test_vendored_file_matches_its_pinned_hash(name: str, target: str) -> None:
    entry = MANIFEST[name]["files"][target]
    content = (VENDOR / target).read_bytes()
    assert hashlib.sha256(content).hexdigest() == entry["sha256"]
    installed = ROOT / "node_modules" / name
    if installed.exists():  # scripts/test runs `npm ci`: compare with the registry's own file too
        assert json.loads((installed / "package.json").read_text())["version"] == MANIFEST[name]["version"]
        assert (installed / entry["source"]).read_bytes() == content


def test_every_vendored_file_is_in_the_manifest() -> None:
    listed = {target for entry in MANIFEST.values() for target in entry["files"]}
    present = {str(path.relative_to(VENDOR)) for path in VENDOR.rglob("*") if path.is_file()} - {"VENDOR.json"}
    assert present == listed


def test_page_loads_nothing_from_another_origin() -> None:
    for path in [*ROOT.glob("static/*.html"), *ROOT.glob("static/js/*.js"), *ROOT.glob("static/*.css")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert not re.search(r"""(import|from)\s*\(?["'](https?:)?//""", text), path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {path}"
        assert "<style" not in text, f"inline style in {path}"
        assert ' style="' not in text, f"inline style in {path}"
