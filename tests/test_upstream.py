"""Auth selection: the API key when set, otherwise Microsoft Entra ID.

Azure itself cannot run here, so the Entra credential is the one thing faked:
a credential object that hands out a token, as DefaultAzureCredential would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from responses_relay.service import ChatService
from responses_relay.settings import Settings, SettingsError, load_settings
from responses_relay.upstream import AZURE_SCOPE, Upstream, json_body

from .conftest import FAKE_KEY, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .http_server import OneRequestEndpoint, answer_json
from .sse_client import chat


class FakeCredential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.closed = False

    async def get_token(self, *scopes: str, **options: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("entra-token-123", 4_102_444_800)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def test_api_key_is_sent_as_bearer(upstream: FaultyUpstream, make_settings: Callable[..., Settings]) -> None:
    async for server in serve(ChatService(make_settings())):
        await chat(server.client, {"input": "hi"})
    assert upstream.records[-1].authorization == f"Bearer {FAKE_KEY}"


async def test_keyless_uses_the_entra_token_provider(upstream: FaultyUpstream) -> None:
    settings = load_settings({"OPENAI_ENDPOINT": upstream.base_url})
    credential = FakeCredential()
    async for server in serve(ChatService(settings, credential=credential)):
        received = await chat(server.client, {"input": "hi"})
    assert received.events[-1].event == "response.completed"
    assert credential.scopes == [(AZURE_SCOPE,)]
    assert upstream.records[-1].authorization == "Bearer entra-token-123"
    assert credential.closed


class ManagedIdentityEndpoint(OneRequestEndpoint):
    """The managed identity endpoint Azure Functions gives an app (IDENTITY_ENDPOINT and
    IDENTITY_HEADER, App Service's 2019-08-01 protocol), on 127.0.0.1: Azure's one stand-in here."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        target = head.split(" ", 2)[1]
        headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        self.requests.append((target, {name.lower(): value for name, value in headers.items()}))
        token = {
            "access_token": "managed-identity-token",
            "expires_on": str(int(time.time()) + 3600),
            "resource": "https://cognitiveservices.azure.com",
            "token_type": "Bearer",
        }
        await answer_json(writer, token)


async def test_keyless_gets_a_token_from_the_managed_identity(
    upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real DefaultAzureCredential, as on Azure: the app's user-assigned identity (AZURE_CLIENT_ID)."""
    identity = ManagedIdentityEndpoint()
    await identity.start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity.base_url + "/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "identity-header-secret")
    for name in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "MSI_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings({"OPENAI_ENDPOINT": upstream.base_url, "AZURE_CLIENT_ID": "client-of-the-app"})
    try:
        async for server in serve(ChatService(settings)):
            received = await chat(server.client, {"input": "hi"})
    finally:
        await identity.aclose()
    assert received.events[-1].event == "response.completed"
    assert upstream.records[-1].authorization == "Bearer managed-identity-token"
    [(target, headers)] = identity.requests
    assert "resource=https://cognitiveservices.azure.com&" in target
    assert "client_id=client-of-the-app" in target
    assert headers["x-identity-header"] == "identity-header-secret"


def test_key_never_builds_a_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**options: Any) -> None:
        raise AssertionError("a credential was built although a key is set")

    monkeypatch.setattr("azure.identity.aio.DefaultAzureCredential", refuse)
    settings = load_settings({"OPENAI_ENDPOINT": "https://a.openai.azure.com/openai/v1/", "OPENAI_API_KEY": "k"})
    Upstream(settings, settings.endpoint or "")


def test_redact_removes_the_upstream_address() -> None:
    settings = load_settings(
        {"OPENAI_ENDPOINT": "https://secret-name.openai.azure.com/openai/v1/", "OPENAI_API_KEY": "k"}
    )
    upstream = Upstream(settings, settings.endpoint or "")
    message = upstream.redact(
        "failed at https://secret-name.openai.azure.com/openai/v1/responses and secret-name.openai.azure.com"
    )
    assert "secret-name" not in message


def test_a_request_body_holds_no_more_memory_than_its_size() -> None:
    # The request is held, so its body, for as long as its stream lasts: at 1,000 streams, a
    # working buffer kept with each body would be 4 MiB.
    settings = load_settings({"OPENAI_ENDPOINT": "https://a.openai.azure.com/openai/v1/", "OPENAI_API_KEY": "k"})
    parameters = {"model": settings.model, "instructions": settings.instructions, "input": "滋賀県について"}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        body = json_body(parameters)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert body == json.dumps(parameters, ensure_ascii=False, separators=(",", ":")).encode()
    assert held < len(body) + 100


async def test_a_spillover_deployment_is_asked_for_and_the_record_says_who_answered(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(MODEL_DEPLOYMENT_NAME="gpt-4o-ptu", SPILLOVER_DEPLOYMENT="gpt-4o-standard")
    async for server in serve(ChatService(settings)):
        with caplog.at_level(logging.INFO, logger="responses_relay.relay"):
            upstream.set_scenario(Scenario(text="琵琶湖", delta_seconds=0))
            await chat(server.client, {"input": "滋賀"})
            upstream.set_scenario(
                Scenario(text="琵琶湖", delta_seconds=0, headers=(("x-ms-spillover-from-gpt-4o-ptu", "true"),))
            )
            await chat(server.client, {"input": "滋賀"})
    assert [record.headers.get("x-ms-spillover-deployment") for record in upstream.records] == ["gpt-4o-standard"] * 2
    answered = [
        getattr(record, "stream_deployment", None) for record in caplog.records if record.name.endswith("relay")
    ]
    assert answered == ["gpt-4o-ptu", "gpt-4o-standard"]


def test_a_spillover_deployment_must_be_a_deployment_name() -> None:
    with pytest.raises(SettingsError, match="SPILLOVER_DEPLOYMENT"):
        load_settings({"SPILLOVER_DEPLOYMENT": "a b/c"})
