"""The local host serves the FunctionApp's own registered functions as `func start` would."""

from __future__ import annotations

import asyncio
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
from starlette.requests import Request
from starlette.types import Message

import function_app
from responses_relay.local_host import route_prefix
from responses_relay.service import ChatService
from responses_relay.settings import Settings
from responses_relay.sse import Decoder, Event

from .conftest import ATTACHMENT_LIMITS, DEFAULT_LIMITS, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import chat

ROOT = Path(__file__).resolve().parent.parent
TEXT = "京都は千年の都です。清水寺や金閣寺など見どころが満載！"


def http_triggers(app: func.FunctionApp) -> dict[str, tuple[func.decorators.http.HttpTrigger, Callable[..., Any]]]:
    triggers = {}
    for function in app.get_functions():
        trigger = function.get_trigger()
        assert isinstance(trigger, func.decorators.http.HttpTrigger)
        triggers[str(function.get_function_name())] = (trigger, function.get_user_function())
    return triggers


async def call_registered(app: func.FunctionApp, name: str, method: str, body: bytes) -> tuple[int, bytes]:
    """Invoke a registered function as the Functions worker does: an ASGI request in, a response out."""
    trigger, user_function = http_triggers(app)[name]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": f"/api/{trigger.route}",
        "raw_path": f"/api/{trigger.route}".encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 7071),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    finished = asyncio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop()
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    response = await user_function(**{trigger.name: Request(scope, receive)})
    await response(scope, receive, send)
    finished.set()
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    return status, b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")


def summary(events: list[Event]) -> tuple[str, list[str | None]]:
    text = "".join(json.loads(event.data)["delta"] for event in events if event.event == "response.output_text.delta")
    return text, [event.event for event in events if event.event != "response.output_text.delta"]


async def test_registered_function_behaves_as_through_the_local_host(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(Scenario(text=TEXT, delta_seconds=0.001))
    service = ChatService(make_settings())
    async for server in serve(service):
        through_host = await chat(server.client, {"input": "京都"})
        status, raw = await call_registered(
            function_app.create_app(service), "chat", "POST", '{"input": "京都"}'.encode()
        )
        health_status, health = await call_registered(function_app.create_app(service), "health", "GET", b"")
        bad_status, bad = await call_registered(function_app.create_app(service), "chat", "POST", b"{")
    assert status == through_host.status == 200
    assert raw.startswith(b": stream open\n\n")
    assert (
        summary(Decoder().feed(raw))
        == summary(through_host.events)
        == (
            TEXT,
            ["response.created", "response.completed"],
        )
    )
    assert (health_status, json.loads(health)["upstream"]) == (200, "openai-compatible")
    assert (bad_status, json.loads(bad)["error"]["code"]) == (400, "invalid_json")


def test_app_registers_the_contract_routes() -> None:
    functions = {name: trigger for name, (trigger, _) in http_triggers(function_app.app).items()}
    routes = {
        name: (trigger.route, [method.value for method in trigger.methods or ()], trigger.auth_level)
        for name, trigger in functions.items()
    }
    assert routes == {
        "chat": ("chat", ["POST"], func.AuthLevel.FUNCTION),
        "resume": ("chat/{response_id}", ["GET"], func.AuthLevel.FUNCTION),
        "cancel": ("chat/{response_id}/cancel", ["POST"], func.AuthLevel.FUNCTION),
        "conversations": ("conversations", ["GET", "POST"], func.AuthLevel.FUNCTION),
        "conversation": ("conversations/{conversation_id}", ["GET", "PATCH", "DELETE"], func.AuthLevel.FUNCTION),
        "ai_sdk_chat": ("ai-sdk/chat", ["POST"], func.AuthLevel.FUNCTION),
        "ai_sdk_resume": ("ai-sdk/chat/{chat_id}/stream", ["GET"], func.AuthLevel.FUNCTION),
        "ag_ui_run": ("ag-ui", ["POST"], func.AuthLevel.FUNCTION),
        "ag_ui_resume": ("ag-ui/{thread_id}/runs/{run_id}", ["GET"], func.AuthLevel.FUNCTION),
        "feedback": ("feedback", ["POST"], func.AuthLevel.FUNCTION),
        "health": ("health", ["GET"], func.AuthLevel.ANONYMOUS),
    }
    assert route_prefix(ROOT) == "api"


def test_route_prefix_comes_from_host_json(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    assert route_prefix(tmp_path) == ""
    assert route_prefix(tmp_path / "missing") == "api"


async def test_function_key_is_enforced_when_asked(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    async for server in serve(ChatService(make_settings()), function_key="local-key"):
        without = await chat(server.client, {"input": "hi"})
        wrong = await chat(server.client, {"input": "hi"}, headers={"x-functions-key": "nope"})
        with_header = await chat(server.client, {"input": "hi"}, headers={"x-functions-key": "local-key"})
        with_query = await server.client.post("/api/chat?code=local-key", json={"input": "hi"})
        health = await server.client.get("/api/health")
    assert (without.status, wrong.status) == (401, 401)
    assert without.json["error"]["code"] == "unauthorized"
    assert with_header.status == with_query.status_code == health.status_code == 200


async def test_static_page_is_served_at_root(upstream: FaultyUpstream, make_settings: Callable[..., Settings]) -> None:
    async for server in serve(ChatService(make_settings()), static_dir=ROOT / "static"):
        page = await server.client.get("/")
        missing = await server.client.get("/nope.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert missing.status_code == 404


async def test_cors_preflight_for_allowed_origin(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    origin = "http://localhost:8000"
    async for server in serve(ChatService(make_settings()), cors_origins=[origin]):
        preflight = await server.client.options(
            "/api/chat",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                # the page's: its body, key or token, resume cursor and trace context
                "access-control-request-headers": "content-type, x-functions-key, last-event-id, traceparent",
            },
        )
        other = await server.client.options(
            "/api/chat", headers={"origin": "https://evil.example", "access-control-request-method": "POST"}
        )
        renames_and_deletes = [
            await server.client.options(
                "/api/conversations/conv_abc", headers={"origin": origin, "access-control-request-method": method}
            )
            for method in ("PATCH", "DELETE")
        ]
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in other.headers
    assert [answer.status_code for answer in renames_and_deletes] == [200, 200]


async def test_relay_answers_health(relay: RelayServer) -> None:
    response = await relay.client.get("/api/health")
    assert response.json() == {
        "status": "ok",
        "upstream": "openai-compatible",
        "model": "gpt-4o-mini",
        "resumable": False,
        "auth": "key",
        "python": platform.python_version(),
        "worker": "in-process",
        "stores_responses": False,  # an OpenAI-compatible server may keep no responses: send the history
        "budget": None,
        "conversations": False,  # no owner secret, no storage account
        "feedback": False,
        "limits": DEFAULT_LIMITS,
    }


async def test_health_gives_the_limits_in_force_and_whether_to_chain_responses(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        OPENAI_ENDPOINT="https://name.openai.azure.com/openai/v1/",
        MAX_BODY_BYTES="2048",
        MAX_MESSAGES="3",
        MAX_MESSAGE_CHARS="100",
    )
    async for server in serve(ChatService(settings)):
        health = (await server.client.get("/api/health")).json()
    assert health["upstream"] == "azure-openai"
    assert health["stores_responses"] is True
    assert health["limits"] == {
        "max_body_bytes": 2048,
        "max_messages": 3,
        "max_message_chars": 100,
        **ATTACHMENT_LIMITS,
    }
