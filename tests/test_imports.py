"""Cold start: each configuration imports only what it uses. A serverless instance starts
often, and its first caller waits for `import function_app`; the keyless credential
(azure.identity), the demo upstream and telemetry (the Azure Monitor distro, OpenTelemetry's
SDK and the relay's recorder; FastAPI itself imports OpenTelemetry's API) are slow to import
and most configurations never touch them. Each case runs in a fresh process (sys.modules is process-wide) and looks
after the import, as the host does it, and after the first chat's upstream client is made.
As in test_upstream.py, the Entra credential is the one thing stood in for (no Azure here).
"""

from __future__ import annotations

import json

import pytest

from .test_telemetry import run_python

LOOK = """
import asyncio, json, sys
def loaded():
    return sorted({name for name in sys.modules for part in PARTS if name == part or name.startswith(part + ".")})
import function_app
seen = {"import": loaded()}
from responses_relay.service import ChatService
from responses_relay.settings import load_settings
class StandInCredential:
    async def close(self): pass
async def first_chat():
    service = ChatService(load_settings(), credential=StandInCredential())
    await service.upstream()  # what the first chat makes: the upstream client
    await service.aclose()
asyncio.run(first_chat())
seen["first chat"] = loaded()
print(json.dumps(seen))
"""
KEYLESS, DEMO, TABLES = "azure.identity", "responses_relay.demo", "azure.data.tables"
TELEMETRY = ("azure.monitor", "opentelemetry.sdk", "responses_relay.telemetry.recorder")
ENDPOINT = {"OPENAI_ENDPOINT": "https://example.openai.azure.com/openai/v1/"}


def modules_loaded(environ: dict[str, str]) -> dict[str, set[str]]:
    """The packages of KEYLESS, DEMO, TABLES and TELEMETRY loaded after the import and after the first chat's client."""
    parts = [KEYLESS, DEMO, TABLES, *TELEMETRY]
    code = f"PARTS = {parts!r}\n" + LOOK
    # Every setting the test does not give is emptied, so a .env file in the checkout cannot add one.
    unset = {"OPENAI_ENDPOINT": "", "OPENAI_API_KEY": "", "AZURE_CLIENT_ID": "", "USER_DAILY_TOKENS": ""}
    unset |= {"APPLICATIONINSIGHTS_CONNECTION_STRING": ""}
    result = run_python(code, {**unset, **environ})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    return {stage: {part for part in parts if part in names} for stage, names in seen.items()}


@pytest.mark.parametrize(
    ("environ", "after_first_chat"),
    [
        pytest.param({**ENDPOINT, "OPENAI_API_KEY": "k"}, set(), id="endpoint and API key: neither"),
        pytest.param(ENDPOINT, {KEYLESS}, id="keyless: the credential, at the first chat"),
        pytest.param({}, {DEMO}, id="demo mode: the demo upstream, at the first chat"),
    ],
)
def test_a_configuration_imports_only_what_it_uses(environ: dict[str, str], after_first_chat: set[str]) -> None:
    seen = modules_loaded(environ)
    assert seen == {"import": set(), "first chat": after_first_chat}


def test_the_budget_table_client_is_imported_only_with_budgets() -> None:
    budgets = {
        "USER_DAILY_TOKENS": "1000",
        "OWNER_HASH_SECRET": "s" * 32,
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    seen = modules_loaded({**ENDPOINT, "OPENAI_API_KEY": "k", **budgets})
    assert seen == {"import": {TABLES}, "first chat": {TABLES}}
