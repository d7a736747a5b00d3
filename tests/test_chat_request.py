"""Bad requests get the right 4xx and a JSON error naming the problem, and no crash log."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
import pytest

from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .conftest import RelayServer, serve
from .faulty_upstream import FaultyUpstream
from .sse_client import chat, status_line

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "status", "code", "param", "says"),
    [
        (b"{not json", 400, "invalid_json", None, "JSON"),
        (b"\xff\xfe{}", 400, "invalid_json", None, "UTF-8"),
        (b'{"input": "\\ud800"}', 400, "invalid_json", None, "JSON"),
        (b"[1, 2]", 400, "invalid_request", None, "object"),
        (b"{}", 400, "invalid_request", "input", "required"),
        (b'{"input": 42}', 400, "invalid_request", "input", "string or a list"),
        (b'{"input": "   "}', 400, "invalid_request", "input", "empty"),
        (b'{"input": []}', 400, "invalid_request", "input", "empty"),
        (b'{"input": [{"role": "system", "content": "x"}]}', 400, "invalid_request", "input[0].role", "'user'"),
        (b'{"input": [{"role": "developer", "content": "x"}]}', 400, "invalid_request", "input[0].role", "'user'"),
        (b'{"input": [{"role": "user", "content": 5}]}', 400, "invalid_request", "input[0].content", "string"),
        (b'{"input": [{"role": "user"}]}', 400, "invalid_request", "input[0].content", "string"),
        (b'{"input": ["hi"]}', 400, "invalid_request", "input[0]", "object"),
        (
            b'{"input": [{"role": "user", "content": "x", "name": "y"}]}',
            400,
            "invalid_request",
            "input[0].name",
            "name",
        ),
        (b'{"input": "x", "model": "gpt-5"}', 400, "invalid_request", "model", "set by the server"),
        (b'{"input": "x", "previous_response_id": 7}', 400, "invalid_request", "previous_response_id", "resp_"),
        (b'{"input": "x", "previous_response_id": "../x"}', 400, "invalid_request", "previous_response_id", "resp_"),
        (b'{"input": "' + b"a" * 101 + b'"}', 400, "invalid_request", "input", "at most 100"),
        (
            b'{"input": [' + b",".join([b'{"role":"user","content":"x"}'] * 4) + b"]}",
            400,
            "invalid_request",
            "input",
            "at most 3",
        ),
        (b'{"input": "' + b"a" * 3000 + b'"}', 413, "body_too_large", None, "2048 bytes"),
        (b'{"approvals": [{"approval_request_id": "mcpr_1", "approve": true}]}', 400, "invalid_request",
         "previous_response_id", "'previous_response_id' must name that response"),
        (b'{"previous_response_id": "resp_1", "approvals": []}', 400, "invalid_request", "approvals", "a list"),
        (b'{"previous_response_id": "resp_1", "approvals": {"mcpr_1": true}}', 400, "invalid_request", "approvals",
         "a list"),
        (b'{"previous_response_id": "resp_1", "approvals": [' + b",".join([b'{"approval_request_id": "m", '
         b'"approve": true}'] * 4) + b"]}", 400, "invalid_request", "approvals", "at most 3"),
        (b'{"previous_response_id": "resp_1", "approvals": ["mcpr_1"]}', 400, "invalid_request", "approvals[0]",
         "object"),
        (b'{"previous_response_id": "resp_1", "approvals": [{"approval_request_id": "a/b", "approve": true}]}', 400,
         "invalid_request", "approvals[0].approval_request_id", "the id of an approval request"),
        (b'{"previous_response_id": "resp_1", "approvals": [{"approval_request_id": "m", "approve": "yes"}]}', 400,
         "invalid_request", "approvals[0].approve", "true or false"),
        (b'{"previous_response_id": "resp_1", "approvals": [{"approval_request_id": "m", "approve": true, '
         b'"reason": "x"}]}', 400, "invalid_request", "approvals[0].reason", "reason"),
    ],
)  # fmt: skip
async def test_bad_bodies(
    small_limits: RelayServer,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    status: int,
    code: str,
    param: str | None,
    says: str,
) -> None:
    caplog.set_level(logging.INFO)
    response = await small_limits.client.post("/api/chat", content=body, headers=JSON)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error.get("param") == param
    assert says in error["message"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert (await small_limits.client.get("/api/health")).status_code == 200


async def test_wrong_content_type_is_415(relay: RelayServer) -> None:
    response = await relay.client.post("/api/chat", content=b'{"input":"x"}', headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_json_with_charset_is_accepted(relay: RelayServer) -> None:
    received = await chat(relay.client, {"input": "hi"}, headers={"content-type": "application/json; charset=utf-8"})
    assert received.status == 200


async def test_chunked_body_over_the_limit_is_refused_without_reading_it_all(small_limits: RelayServer) -> None:
    # A chunked body with no Content-Length that never ends: the answer must come anyway.
    head = b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = (b"400\r\n" + b" " * 1024 + b"\r\n") * 4
    assert (await status_line(small_limits.base_url, head + chunks)).startswith(b"HTTP/1.1 413")


async def test_wrong_method_is_405_json(relay: RelayServer) -> None:
    response = await relay.client.get("/api/chat")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.fixture
async def small_limits(upstream: FaultyUpstream, make_settings: Callable[..., Settings]):  # type: ignore[no-untyped-def]
    settings = make_settings(MAX_BODY_BYTES="2048", MAX_MESSAGES="3", MAX_MESSAGE_CHARS="100")
    async for server in serve(ChatService(settings)):
        yield server


async def test_control_characters_cannot_forge_log_lines(relay: RelayServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = "x\n2026-01-01 00:00:00 ERROR forged: line\r\x1b[31m"
    for body in ({"input": "hi", forged: 1}, {"input": [{"role": forged, "content": forged}]}, {"input": forged}):
        await relay.client.post("/api/chat", content=orjson.dumps(body), headers=JSON)
    assert "forged" not in caplog.text
    assert all(
        "\n" not in record.getMessage() for record in caplog.records if record.name.startswith("responses_relay")
    )
