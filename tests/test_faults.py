"""The fault matrix: every upstream failure, what the client gets, what is logged, and
that nothing is left open (tasks: the `serve` fixture; sockets: ResourceWarning is an
error; the upstream connection: observed at the upstream).

Before the first byte a fault is plain HTTP with a JSON error; after it, the stream
ends with one `error` event (or `response.completed` with status incomplete).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from responses_relay.demo.answers import split_deltas
from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .conftest import FAKE_KEY, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import Received, chat

QUESTION = {"input": "滋賀県について教えてください。"}
TEXT = "滋賀県は日本最大の湖、琵琶湖を抱く県です。比叡山延暦寺や彦根城もあり、近江牛も絶品です！"
FIRST_THREE = "".join(split_deltas(TEXT)[:3])


@dataclass
class Case:
    scenario: Scenario
    settings: dict[str, str] = field(default_factory=dict)
    status: int = 200
    code: str | None = None  # the JSON error's code, or the error event's
    incomplete: str | None = None  # response.completed with status incomplete, and this reason
    text: str | None = None  # the text that must have arrived before the end
    log: str = ""  # a fragment of a WARNING (or higher) record
    attempts: int = 1
    headers: dict[str, str | None] = field(default_factory=dict)


def mid_stream(ending: str, **knobs: Any) -> Scenario:
    return Scenario(text=TEXT, ending=ending, after_deltas=3, delta_seconds=0.001, **knobs)  # type: ignore[arg-type]


CASES = {
    # before the first byte
    "401": Case(Scenario(status=401), status=502, code="upstream_unauthorized", log="status 401"),
    "403": Case(Scenario(status=403), status=502, code="upstream_forbidden", log="status 403"),
    "404 deployment not found": Case(Scenario(status=404), status=502, code="upstream_not_found", log="status 404"),
    "400 content filter": Case(Scenario(status=400), status=400, code="content_filter", log="code content_filter"),
    "429 with Retry-After": Case(
        Scenario(status=429, retry_after="7"), status=429, code="rate_limited", log="429", headers={"retry-after": "7"}
    ),
    "429 without Retry-After": Case(
        Scenario(status=429), status=429, code="rate_limited", log="429", headers={"retry-after": None}
    ),
    "500, retried once": Case(Scenario(status=500), status=502, code="upstream_error", log="status 500", attempts=2),
    "503, retried once": Case(Scenario(status=503), status=502, code="upstream_error", log="status 503", attempts=2),
    "no headers in time": Case(
        Scenario(hold_headers=True),
        settings={"UPSTREAM_READ_TIMEOUT_SECONDS": "0.3"},
        status=504,
        code="upstream_timeout",
        log="timed out before its response headers",
    ),
    # after the first byte
    "stall longer than the read timeout": Case(
        mid_stream("stall"),
        settings={"UPSTREAM_READ_TIMEOUT_SECONDS": "0.3"},
        code="upstream_timeout",
        text=FIRST_THREE,
        log="stalled",
    ),
    "connection cut mid-stream": Case(
        mid_stream("cut"), code="upstream_connection_lost", text=FIRST_THREE, log="connection lost"
    ),
    "stream ends without a terminal event": Case(
        mid_stream("silent_end"), code="upstream_incomplete", text=FIRST_THREE, log="outcome=upstream_incomplete"
    ),
    "invalid JSON in data:": Case(mid_stream("bad_json"), code="upstream_bad_response", text=FIRST_THREE, log="bad"),
    "error event, flat": Case(
        mid_stream("error_flat"), code="server_error", text=FIRST_THREE, log="outcome=server_error"
    ),
    "error event, nested": Case(
        mid_stream("error_nested"), code="server_error", text=FIRST_THREE, log="outcome=server_error"
    ),
    "response.failed": Case(mid_stream("failed"), code="server_error", text=FIRST_THREE, log="outcome=server_error"),
    "incomplete: max output tokens": Case(
        mid_stream("incomplete"),
        incomplete="max_output_tokens",
        text=FIRST_THREE,
        log="outcome=incomplete:max_output_tokens",
    ),
    "incomplete: content filter": Case(
        mid_stream("incomplete", incomplete_reason="content_filter"),
        incomplete="content_filter",
        text=FIRST_THREE,
        log="outcome=incomplete:content_filter",
    ),
    "malformed lines and unknown event types are ignored": Case(
        Scenario(text=TEXT, noise=True, delta_seconds=0.001), text=TEXT, log="outcome=completed"
    ),
}


@pytest.mark.parametrize("name", CASES)
async def test_fault(
    name: str,
    upstream: FaultyUpstream,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    case = CASES[name]
    caplog.set_level(logging.INFO)
    upstream.set_scenario(case.scenario)
    async for server in serve(ChatService(make_settings(**case.settings))):
        received = await chat(server.client, QUESTION)
        if case.scenario.ending == "stall" or case.scenario.hold_headers:
            upstream.release()
    check_client_outcome(case, received)
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("responses_relay")]
    assert any(case.log in message for message in messages), messages
    failed = case.code is not None or case.status != 200
    assert bool(warnings(caplog)) == failed, "a failure is a warning; anything else is not"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(upstream.records) == case.attempts
    for record in upstream.records:  # every upstream connection was closed or finished
        assert await asyncio.to_thread(record.ended.wait, 5)
    assert FAKE_KEY not in caplog.text
    assert FAKE_KEY.encode() not in received.raw


def check_client_outcome(case: Case, received: Received) -> None:
    assert received.status == case.status
    if case.status != 200:
        assert received.headers["content-type"] == "application/json"
        assert received.json["error"]["code"] == case.code
        for header, value in case.headers.items():
            assert received.headers.get(header) == value
        retry_after = case.headers.get("retry-after")  # in the body too, for pages on another origin
        assert received.json["error"].get("retry_after") == (None if retry_after is None else int(retry_after))
        return
    assert received.terminals == [received.events[-1]], "exactly one terminal event, and it is the last"
    payload = orjson.loads(received.events[-1].data)
    if case.text is not None:
        assert received.text == case.text
    if case.code is not None:
        assert payload["type"] == "error"
        assert payload["code"] == case.code
    else:
        assert payload["type"] == "response.completed"
        assert payload["status"] == ("incomplete" if case.incomplete else "completed")
        assert payload.get("incomplete_reason") == case.incomplete


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING and record.name != "uvicorn.error"]


async def test_connection_refused(make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    settings = make_settings(OPENAI_ENDPOINT=f"http://127.0.0.1:{port}/openai/v1/")
    async for server in serve(ChatService(settings)):
        received = await chat(server.client, QUESTION)
    assert (received.status, received.json["error"]["code"]) == (502, "upstream_unreachable")
    assert str(port).encode() not in received.raw
    assert "upstream unreachable" in caplog.text


async def test_name_not_resolvable(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    # No DNS here (and no traffic but to 127.0.0.1): the resolver is the one thing faked.
    async def no_such_name(*args: object, **kwargs: object) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_such_name)
    settings = make_settings(OPENAI_ENDPOINT="https://no-such-resource.openai.azure.com/openai/v1/")
    async for server in serve(ChatService(settings)):
        received = await chat(server.client, QUESTION)
    assert (received.status, received.json["error"]["code"]) == (502, "upstream_unreachable")
    assert b"no-such-resource" not in received.raw


async def test_text_cannot_forge_sse_frames(relay_with_text: Callable[[str], Any]) -> None:
    forged = 'a\n\nevent: error\ndata: {"type":"error"}\n\nid: 99\r\n: x\rb'
    received = await relay_with_text(forged)
    assert received.text == forged
    assert [event.event for event in received.events].count("error") == 0
    assert received.terminals == [received.events[-1]]


@pytest.fixture
def relay_with_text(upstream: FaultyUpstream, make_settings: Callable[..., Settings]) -> Callable[[str], Any]:
    async def run(text: str) -> Received:
        upstream.set_scenario(Scenario(text=text, delta_seconds=0))
        received = []
        async for server in serve(ChatService(make_settings())):
            received.append(await chat(server.client, QUESTION))
        return received[0]

    return run


async def test_no_secret_or_upstream_address_in_logs(
    relay: RelayServer, upstream: FaultyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for scenario in (Scenario(delta_seconds=0), Scenario(status=401), Scenario(status=500)):
        upstream.set_scenario(scenario)
        await chat(relay.client, QUESTION)
    assert FAKE_KEY not in caplog.text
    host_and_port = upstream.base_url.split("//")[1].split("/")[0]
    assert host_and_port not in "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
