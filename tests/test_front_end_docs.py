"""The README's front-end code is the code the client tests run: RelayAgent word for word, and the
AI SDK's transport, its resume on a cut and its Stop as tests/clients/ai_sdk.mjs has them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Use it from your own front end")[1].split("\n## ")[0]

SHARED = {
    "tests/clients/ai_sdk.mjs": [
        "api: `${relay}/api/ai-sdk/chat`,",
        'headers: { "x-functions-key": key },',
        "onFinish: ({ isAbort, isDisconnect, isError, finishReason }) => {",
        "if (isDisconnect || (!isAbort && !isError && !finishReason))",
        "async function stopAnswer() {\n  await chat.stop();\n"
        "  const responseId = chat.lastMessage?.metadata?.responseId;\n"
        '  if (responseId) await fetch(`${relay}/api/chat/${responseId}/cancel`, { method: "POST",'
        ' headers: { "x-functions-key": key } });\n}',
    ],
    "tests/clients/ag_ui.mjs": ['new RelayAgent({ url: `${relay}/api/ag-ui`, headers: { "x-functions-key": key }'],
}


def test_the_readme_shows_relay_agent_as_it_is() -> None:
    assert (ROOT / "docs" / "examples" / "relay-agent.mjs").read_text() in SECTION


@pytest.mark.parametrize(
    ("script", "fragment"), [(script, f) for script, fragments in SHARED.items() for f in fragments]
)
def test_the_readmes_front_end_code_is_what_the_tests_run(script: str, fragment: str) -> None:
    assert fragment in SECTION
    assert fragment in (ROOT / script).read_text()
