"""One error catalogue: docs/api.md lists exactly the codes of responses_relay/errors.py,
with their HTTP status, and every code the relay's code sends comes from it."""

from __future__ import annotations

import re
from pathlib import Path

from responses_relay.errors import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api.md"


def table(heading: str) -> list[list[str]]:
    """The rows of the first table after `heading` in docs/api.md, as cells."""
    text = API.read_text().split(heading, 1)[1]
    lines = text.split("\n| --- |", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_the_api_documents_every_code_before_the_stream_with_its_status() -> None:
    documented = {(row[1].strip("`"), int(row[0])) for row in table("### Before the stream")}
    catalogued = {(entry.code, entry.status) for entry in CATALOGUE.values() if entry.status is not None}
    assert documented == catalogued


def test_the_api_documents_every_code_of_the_stream() -> None:
    documented = {row[0].strip("`") for row in table("### In the stream")}
    assert documented == {entry.code for entry in CATALOGUE.values() if entry.in_stream}


def test_no_code_is_spelled_out_where_an_error_is_made() -> None:
    # Every HttpError, error_response and relay-made error event takes a catalogue entry, not a
    # string (mypy checks the types); this catches a string sneaking back in.
    made = re.compile(r'(HttpError|error_response|\.fail|\.interrupt)\(\s*\d*,?\s*"')
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "responses_relay").rglob("*.py")
        if "demo" not in path.parts
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if made.search(line)
    ]
    assert offenders == []
