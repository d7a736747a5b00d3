"""STREAM_TIME_LIMIT_SECONDS: a stream ends itself before Azure's front end would cut it
(230 s), played here by the local host's own cut (`--request-limit`). With resumable
streams the caller is handed off (`stream.resume`) and continues with nothing lost or
repeated; without them the stream ends with a clean `stream_time_limit` error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2
import orjson
import pytest

from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .conftest import RESUMABLE, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import Received, chat, read_sse

ANSWER = "".join(f"琵琶湖の見どころ{i}。" for i in range(30))
SLOW = Scenario(text=ANSWER, delta_seconds=0.01, chunk_chars=3)  # about 1.3 s of answer
FRONT_END_SECONDS = 0.6  # the local host's cut, standing in for Azure's 230 s
LIMIT_SECONDS = "0.4"  # the relay's own limit, short of it
# With hand-offs, a round's continuation (a tool call, then the next round's opening) fits within the limit.
FITS = {
    "TOOL_TIMEOUT_SECONDS": "0.1",
    "UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.1",
    "UPSTREAM_READ_TIMEOUT_SECONDS": "0.15",
}


def handed_off(received: Received) -> dict[str, object] | None:
    [*_, last] = received.events
    return orjson.loads(last.data) if last.event == "stream.resume" else None


async def test_a_stream_at_its_limit_hands_the_caller_off_and_the_answer_arrives_exactly_once(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(SLOW)
    settings = make_settings(**RESUMABLE, **FITS, STREAM_TIME_LIMIT_SECONDS=LIMIT_SECONDS)
    async for server in serve(ChatService(settings), request_limit_seconds=FRONT_END_SECONDS):
        streams = [await chat(server.client, {"input": "滋賀"})]
        while (resume := handed_off(streams[-1])) is not None:
            assert set(resume) == {"type", "response_id", "after"}
            path, after = f"/api/chat/{resume['response_id']}", resume["after"]
            streams.append(await read_sse(server.client, "GET", path, params={"after": after}))
            assert len(streams) < 10
    assert len(streams) >= 3, "the answer outlasted the limit twice"
    events = [event for received in streams for event in received.events]
    assert "".join(received.text for received in streams) == ANSWER
    ids = [int(event.id) for event in events if event.id is not None]
    assert ids == sorted(set(ids))
    assert [event.event for event in events if event.event in ("response.completed", "error")] == ["response.completed"]
    assert all(received.events[-1].event == "stream.resume" for received in streams[:-1])
    # Each handed-off stream's upstream call was closed; the stored response went on.
    for record in upstream.records:
        assert await asyncio.to_thread(record.ended.wait, 1)
    assert [record.method for record in upstream.records].count("POST") == 1


async def test_without_resumable_streams_the_limit_ends_the_stream_with_an_error_and_closes_the_upstream(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(SLOW)
    settings = make_settings(STREAM_TIME_LIMIT_SECONDS=LIMIT_SECONDS)
    async for server in serve(ChatService(settings), request_limit_seconds=FRONT_END_SECONDS):
        received = await chat(server.client, {"input": "滋賀"})
    assert received.terminals == [received.events[-1]]
    error = orjson.loads(received.events[-1].data)
    assert (error["type"], error["code"]) == ("error", "stream_time_limit")
    assert 0 < len(received.text) < len(ANSWER)
    record = upstream.records[-1]
    assert await asyncio.to_thread(record.ended.wait, 1)
    assert record.client_left  # the model stops


async def test_without_the_limit_the_front_end_cuts_the_stream(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    # What the limit prevents: Azure's cut leaves the caller with a broken stream and no terminal event.
    upstream.set_scenario(SLOW)
    settings = make_settings(STREAM_TIME_LIMIT_SECONDS="0")
    async for server in serve(ChatService(settings), request_limit_seconds=FRONT_END_SECONDS):
        with pytest.raises(httpx2.RemoteProtocolError):
            await chat(server.client, {"input": "滋賀"})


async def test_the_front_end_answers_502_when_no_response_has_started(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(Scenario(hold_headers=True))
    async for server in serve(ChatService(make_settings()), request_limit_seconds=0.2):
        reply = await server.client.post("/api/chat", json={"input": "滋賀"})
        upstream.release()
    assert (reply.status_code, reply.json()["error"]["code"]) == (502, "front_end_timeout")
