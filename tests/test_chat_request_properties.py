"""Property tests: whatever the body, the answer is a 4xx with a JSON error or a complete
stream, never a 500, and the server stays healthy after each."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responses_relay.service import ChatService
from responses_relay.settings import load_settings

from .conftest import FAKE_KEY, serve
from .faulty_upstream import FaultyUpstream, Scenario

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool", ""]) | JSON_SCALARS},
        optional={"content": st.text(max_size=50) | JSON_VALUES, "type": st.text(max_size=8), "name": st.text()},
    ),
    max_size=6,
)
BODIES = st.fixed_dictionaries(
    {},
    optional={
        "input": st.text(max_size=200) | MESSAGES | JSON_VALUES,
        "previous_response_id": st.text(max_size=20) | st.just("resp_abc") | JSON_SCALARS,
        "model": st.text(max_size=10),
        "instructions": st.text(max_size=10),
        "stream": st.booleans(),
    },
)
RAW_JSON_TRICKS = st.sampled_from(
    [
        b'{"input": "\\ud800"}',  # a lone surrogate
        b'{"input": "\\udfff\\ud800"}',
        b'{"input": "ok\\u0000"}',
        b"[" * 5000 + b"]" * 5000,  # deep nesting
        b'{"input": ' * 2000 + b'"x"' + b"}" * 2000,
        b'{"input": "x", "input": 5}',  # a duplicated key
        b'{"input": 1e999}',
        b"\xef\xbb\xbf{}",  # a byte order mark
    ]
)


@pytest.fixture(scope="module")
def base_url(upstream_server: FaultyUpstream) -> Iterator[str]:
    """The relay in its own thread and event loop, so hypothesis can drive it synchronously."""
    upstream_server.set_scenario(Scenario(text="OK", delta_seconds=0))
    ready: list[str] = []
    started, stop = threading.Event(), threading.Event()

    async def run() -> None:
        environ = {"OPENAI_ENDPOINT": upstream_server.base_url, "OPENAI_API_KEY": FAKE_KEY, "MAX_BODY_BYTES": "65536"}
        async for server in serve(ChatService(load_settings(environ))):
            ready.append(server.base_url)
            started.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    assert started.wait(30)
    yield ready[0]
    stop.set()
    thread.join(30)
    upstream_server.set_scenario(Scenario())


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx2.Client]:
    # TCP_NODELAY: without it, Nagle and delayed ACKs add 40 ms to every small request.
    transport = httpx2.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    with httpx2.Client(base_url=base_url, timeout=10, transport=transport) as client:
        yield client


def post(client: httpx2.Client, body: bytes) -> tuple[int, bytes, str]:
    response = client.post("/api/chat", content=body, headers={"content-type": "application/json"})
    assert client.get("/api/health").status_code == 200, "the server must stay healthy"
    return response.status_code, response.content, response.headers.get("content-type", "")


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def check(status: int, body: bytes, content_type: str) -> None:
    assert status != 500
    if status == 200:
        assert content_type.startswith("text/event-stream")
        assert body.rstrip().rsplit(b"\n\n", 1)[-1].count(b"event: response.completed") == 1
        return
    assert 400 <= status < 500, status
    assert content_type == "application/json"
    error = orjson.loads(body)["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert "Traceback" not in error["message"]
    assert FAKE_KEY not in body.decode("utf-8", "replace")


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(body=BODIES)
def test_any_json_object(client: httpx2.Client, body: dict[str, Any]) -> None:
    check(*post(client, dumps(body)))


@SETTINGS
@given(body=JSON_VALUES)
def test_any_json_value(client: httpx2.Client, body: Any) -> None:
    check(*post(client, dumps(body)))


@SETTINGS
@given(body=st.binary(max_size=300) | RAW_JSON_TRICKS)
def test_any_bytes(client: httpx2.Client, body: bytes) -> None:
    check(*post(client, body))


@SETTINGS
@given(size=st.integers(min_value=60_000, max_value=200_000))
def test_huge_strings(client: httpx2.Client, size: int) -> None:
    check(*post(client, dumps({"input": "滋" * size})))
