"""The relay end to end: real sockets, the real openai SDK, the demo upstream as Azure."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any

import httpx2
import orjson
import pytest
from openai import AsyncOpenAI, AsyncStream

from responses_relay.demo.answers import split_deltas
from responses_relay.demo.wire import sse
from responses_relay.errors import INTERNAL_ERROR
from responses_relay.events import RelayEvent, Translator
from responses_relay.protocols.native import NativeEncoder
from responses_relay.relay import OPENING, RelayStream
from responses_relay.service import ChatService
from responses_relay.settings import Settings
from responses_relay.sse import Decoder
from responses_relay.sse_response import SSEResponse
from responses_relay.upstream_events import UpstreamEvents

from .conftest import RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import chat

QUESTION = {"input": "滋賀県について教えてください。"}
TEXT = "滋賀県は日本最大の湖、琵琶湖を抱く県です。比叡山延暦寺や彦根城もあり、近江牛も絶品です！"


async def test_streams_text_incrementally_and_whole(relay: RelayServer, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text=TEXT, delta_seconds=0.02, split_utf8=True))
    started = time.monotonic()
    received = await chat(relay.client, QUESTION, read_size=5)

    assert received.status == 200
    assert received.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert received.headers["cache-control"] == "no-cache, no-transform"
    assert received.headers["x-accel-buffering"] == "no"
    assert received.raw.startswith(b": stream open\n\n")
    assert received.text == TEXT
    arrivals = [at for at, event in received.arrivals if event.event == "response.output_text.delta"]
    # ~20 ms between upstream deltas: they arrive spread over the stream, not in one piece at the end.
    assert len(arrivals) >= len(split_deltas(TEXT)) // 2
    assert arrivals[-1] - arrivals[0] >= 0.5 * 0.02 * (len(split_deltas(TEXT)) - 1)
    assert arrivals[0] - started < arrivals[-1] - started - 0.1
    assert "琵".encode() in received.raw  # UTF-8 on the wire, not \\u escapes


async def test_event_ids_are_upstream_sequence_numbers(relay: RelayServer, upstream: FaultyUpstream) -> None:
    upstream.set_scenario(Scenario(text=TEXT, delta_seconds=0.005))
    received = await chat(relay.client, QUESTION)

    deltas = split_deltas(TEXT)
    first_delta, last_delta = 4, 4 + len(deltas) - 1  # created, in_progress, item added, part added
    kinds = [event.event for event in received.events]
    assert kinds[0] == "response.created"
    assert received.events[0].id == "0"
    delta_ids = [int(event.id or -1) for event in received.events if event.event == "response.output_text.delta"]
    assert delta_ids == sorted(delta_ids)
    assert delta_ids[0] >= first_delta
    assert delta_ids[-1] == last_delta
    assert received.terminals == [received.events[-1]]
    completed = received.payloads("response.completed")[0]
    assert received.events[-1].id == str(last_delta + 4)  # text done, part done, item done, completed
    created = received.payloads("response.created")[0]
    assert completed["response_id"] == created["response_id"]
    assert completed["status"] == "completed"
    assert completed["usage"]["output_tokens"] == len(deltas)
    assert set(completed["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}


async def test_request_to_upstream_comes_from_settings(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(MODEL_DEPLOYMENT_NAME="my-deployment", MAX_OUTPUT_TOKENS="77", TEMPERATURE="none")
    history = [
        {"role": "user", "content": "滋賀県について教えてください。"},
        {"role": "assistant", "content": "琵琶湖があります。"},
        {"role": "user", "content": "京都は？"},
    ]
    async for server in serve(ChatService(settings)):
        received = await chat(server.client, {"input": history, "previous_response_id": "resp_abc"})
    assert received.terminals[0].event == "response.completed"
    sent = upstream.records[-1].request
    assert sent["model"] == "my-deployment"
    assert sent["instructions"] == settings.instructions
    assert sent["max_output_tokens"] == 77
    assert "temperature" not in sent
    assert sent["top_p"] == 0.95
    assert sent["stream"] is True
    assert sent["input"] == history
    assert sent["previous_response_id"] == "resp_abc"


async def test_heartbeat_while_upstream_is_silent(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(Scenario(text=TEXT, ending="stall", after_deltas=2, delta_seconds=0.001))
    async for server in serve(ChatService(make_settings(HEARTBEAT_SECONDS="0.1"))):
        headers = {"content-type": "application/json"}
        raw = b""
        async with server.client.stream("POST", "/api/chat", content=orjson.dumps(QUESTION), headers=headers) as reply:
            async for chunk in reply.aiter_raw():
                raw += chunk
                if b": ping\n\n" in raw:
                    upstream.release()  # the upstream goes on only once a heartbeat was seen
    before_ping, _, after_ping = raw.partition(b": ping\n\n")
    assert b"response.output_text.delta" in before_ping
    assert b"event: response.completed" not in before_ping
    assert after_ping.count(b"event: response.completed") == 1
    last_event = after_ping.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    assert b"event: response.completed" in last_event


async def test_client_leaving_closes_the_upstream_connection(
    relay: RelayServer, upstream: FaultyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="responses_relay")
    upstream.set_scenario(Scenario(text=TEXT * 10, delta_seconds=0.05))
    received = await chat(relay.client, QUESTION, stop_after=2)
    left_at = time.monotonic()

    assert len(received.payloads("response.output_text.delta")) >= 2
    record = upstream.records[-1]
    assert await asyncio.to_thread(record.ended.wait, 5)
    assert record.client_left
    assert record.ended_at is not None
    assert record.ended_at - left_at < 1.0
    await relay.client.get("/api/health")  # the relay is still serving
    assert "outcome=client_disconnected" in caplog.text


async def test_the_openai_sdks_stream_reader_reads_the_relayed_stream(
    relay: RelayServer, upstream: FaultyUpstream
) -> None:
    """A Python caller can read the relay with the SDK's own `AsyncStream` (its SSE decoder and
    its error handling): the same events, in order, as the relay's wire format says."""
    upstream.set_scenario(Scenario(text=TEXT, delta_seconds=0.001, chunk_chars=3))
    sdk = AsyncOpenAI(base_url=relay.base_url + "/api", api_key="unused", max_retries=0)
    async with sdk, relay.client.stream("POST", "/api/chat", json=QUESTION) as response:
        items: list[dict[str, Any]] = [item async for item in AsyncStream(cast_to=dict, response=response, client=sdk)]
    deltas = [item["delta"] for item in items if item["type"] == "response.output_text.delta"]
    assert "".join(deltas) == TEXT
    assert [item["type"] for item in items if item["type"] != "response.output_text.delta"] == [
        "response.created",
        "response.completed",
    ]
    assert items[-1]["status"] == "completed"


async def test_a_failure_inside_the_stream_is_logged_and_ends_with_an_error_event(
    relay: RelayServer, upstream: FaultyUpstream, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = Translator.feed

    def feed(self: Translator, payload: dict[str, Any]) -> None:
        if self.deltas == 3:
            raise RuntimeError("a bug in the relay")
        original(self, payload)

    monkeypatch.setattr(Translator, "feed", feed)
    upstream.set_scenario(Scenario(text=TEXT, delta_seconds=0.001))
    received = await chat(relay.client, QUESTION)

    assert received.text == "".join(split_deltas(TEXT)[:3])
    assert received.terminals == [received.events[-1]]
    assert orjson.loads(received.events[-1].data) == {
        "type": "error",
        "code": "internal_error",
        "message": "The relay failed",
    }
    [crash] = [record for record in caplog.records if record.levelname == "ERROR"]
    assert crash.getMessage() == "relay failed mid-stream"
    assert crash.exc_info is not None
    assert "a bug in the relay" not in received.raw.decode()
    record = upstream.records[-1]
    assert await asyncio.to_thread(record.ended.wait, 5)


class RecordingBody(httpx2.AsyncByteStream):
    """An upstream body that never sends anything and records being closed."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""

    async def aclose(self) -> None:
        self.closed = True


async def test_a_client_gone_before_the_producer_ran_still_closes_the_upstream() -> None:
    upstream = RecordingBody()
    events = UpstreamEvents(httpx2.Response(200, stream=upstream))
    stream = RelayStream(events, Translator(), heartbeat_seconds=5, buffer_bytes=1024)
    body = stream.body()
    assert await anext(body) == OPENING
    stream.client_left()  # in the same loop step: the producer is made, then cancelled before it ran
    with pytest.raises(StopAsyncIteration):
        await anext(body)
    await stream.aclose()
    assert upstream.closed
    assert stream.outcome == "client_disconnected"


async def test_a_caller_cannot_choose_the_invocation_id_in_the_stream_record(
    relay: RelayServer, upstream: FaultyUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.set_scenario(Scenario(text=TEXT, delta_seconds=0.001))
    forged = "00000000-0000-0000-0000-000000000000"
    with caplog.at_level(logging.INFO, logger="responses_relay.relay"):
        await chat(relay.client, QUESTION, headers={"x-ms-invocation-id": forged})
        await chat(relay.client, QUESTION, headers={"x-ms-invocation-id": "forged\\nline"})
    ids = [getattr(record, "stream_invocation_id", None) for record in caplog.records]
    assert len(ids) == 2
    assert all(re.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", str(value)) for value in ids)
    assert forged not in ids


class ScriptedBody(httpx2.AsyncByteStream):
    """An upstream body that sends `reads`, then ends, once `released` if given."""

    def __init__(self, reads: list[bytes], released: asyncio.Event | None = None) -> None:
        self.reads = reads
        self.released = released

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for read in self.reads:
            yield read
        if self.released is not None:
            await self.released.wait()


class MarkingEncoder:
    """The native encoder with a protocol's own opening and closing bytes, and each batch marked."""

    def __init__(self) -> None:
        self.headers = {"x-protocol": "marked"}
        self.native = NativeEncoder()
        self.closes = 0

    def open(self) -> bytes:
        return b"<open>"

    def encode(self, events: Sequence[RelayEvent]) -> bytes:
        return b"<batch>" + self.native.encode(events) if events else b""

    def close(self) -> bytes:
        self.closes += 1
        return b"<close>"


CREATED = {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "m"}}
DELTA = {"type": "response.output_text.delta", "delta": "滋賀", "sequence_number": 1}
COMPLETED = {"type": "response.completed", "sequence_number": 2, "response": {"id": "resp_1"}}
ENDS: dict[str, Callable[[RelayStream], None] | None] = {
    "completed": None,
    "cut": None,  # the upstream ends early: an error event ends the stream
    "cancelled": RelayStream.cancel,
    "interrupted": lambda stream: stream.interrupt(INTERNAL_ERROR, "stopping"),
    "left": RelayStream.client_left,
}


async def relay_marked(name: str) -> tuple[bytes, MarkingEncoder]:
    """The body of a stream in the marking protocol, ended as `name` says once the delta is out. The
    upstream body ends only after the stream's (except when cut): its end ends nothing."""
    reads = [sse(CREATED), sse(DELTA), *([sse(COMPLETED)] if name == "completed" else [])]
    end = ENDS[name]
    released = None if name == "cut" else asyncio.Event()
    events = UpstreamEvents(httpx2.Response(200, stream=ScriptedBody(reads, released)))
    encoder = MarkingEncoder()
    stream = RelayStream(events, Translator(), heartbeat_seconds=5, buffer_bytes=1024, encoder=encoder)
    body = bytearray()
    async with asyncio.timeout(5), aclosing(stream.body()) as chunks:
        async for chunk in chunks:
            body += chunk
            if end is not None and b"output_text.delta" in body:
                end(stream)
                end = None
    if released is not None:
        released.set()
    await stream.aclose()
    return bytes(body), encoder


@pytest.mark.parametrize("name", ["completed", "cut", "cancelled", "interrupted"])
async def test_a_stream_ends_with_its_protocols_closing_bytes_once_whoever_ends_it(name: str) -> None:
    body, encoder = await relay_marked(name)
    assert body.startswith(OPENING + b"<open><batch>")
    assert body.endswith(b"\n\n<close>")
    assert encoder.closes == 1
    events = Decoder().feed(body.replace(b"<open>", b"").replace(b"<batch>", b"").replace(b"<close>", b""))
    assert [event.event for event in events[:2]] == ["response.created", "response.output_text.delta"]
    assert events[-1].event == ("response.completed" if name in ("completed", "cancelled") else "error")


async def test_a_caller_who_left_gets_no_closing_bytes() -> None:
    body, encoder = await relay_marked("left")
    assert encoder.closes == 0
    assert b"<close>" not in body


def test_the_response_carries_the_protocols_headers_beside_the_sse_ones() -> None:
    events = UpstreamEvents(httpx2.Response(200, stream=ScriptedBody([])))
    stream = RelayStream(events, Translator(), heartbeat_seconds=5, buffer_bytes=1024, encoder=MarkingEncoder())
    headers = SSEResponse(stream).headers
    assert headers["x-protocol"] == "marked"
    assert headers["content-type"] == "text/event-stream; charset=utf-8"
