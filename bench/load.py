"""Load client: many concurrent SSE streams over raw sockets, timing every delta.

Each stream is one HTTP/1.1 connection parsed with httptools (chunked bodies included)
and the project's SSE decoder. A delta's text holds emit times ("<ns>;" each), so
latency = receive time - emit time for every delta, merged or not. A relay answers in the
protocol its target asks for: the native format, the AI SDK's UI message stream, or AG-UI.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import cast

import httptools
import orjson

from responses_relay.sse import Decoder

# How each protocol's events say what the client counts: (delta type, delta field, the end, an error).
PROTOCOLS = {
    "native": ("response.output_text.delta", "delta", "response.completed", "error"),
    "ai-sdk": ("text-delta", "delta", "finish", "error"),
    "ag-ui": ("TEXT_MESSAGE_CONTENT", "delta", "RUN_FINISHED", "RUN_ERROR"),
}
PATHS = {"native": "/api/chat", "ai-sdk": "/api/ai-sdk/chat", "ag-ui": "/api/ag-ui"}


@dataclass
class Target:
    name: str
    host: str
    port: int
    path: str  # /api/chat for a relay, /openai/v1/responses for the upstream itself
    direct: bool = False
    protocol: str = "native"  # what the relay is asked to speak: a key of PROTOCOLS

    def request(self, knobs: str) -> bytes:
        if self.direct:
            body = orjson.dumps({"model": "gpt-4o-mini", "input": [{"role": "user", "content": knobs}], "stream": True})
        elif self.protocol == "ai-sdk":
            message = {"id": "m", "role": "user", "parts": [{"type": "text", "text": knobs}]}
            body = orjson.dumps({"id": "bench", "messages": [message], "trigger": "submit-message"})
        elif self.protocol == "ag-ui":
            message = {"id": "m", "role": "user", "content": knobs}
            body = orjson.dumps(
                {"threadId": "bench", "runId": "run", "messages": [message], "tools": [], "context": []}
            )
        else:
            body = orjson.dumps({"input": knobs})
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


@dataclass
class StreamResult:
    stream_id: str
    status: int = 0
    first_delta_ms: float | None = None
    first_delta_ns: int | None = None  # when it arrived, on the machine-wide monotonic clock
    latencies_ms: list[float] = field(default_factory=list)
    deltas: int = 0
    delta_events: int = 0  # the events that carried them (a relay merges the deltas of one read)
    completed: bool = False
    error: str | None = None
    left_at_ns: int | None = None  # when this client hung up on purpose


class StreamClient(asyncio.Protocol):
    def __init__(
        self, target: Target, knobs: str, result: StreamResult, leave_after: int | None, pause: float = 0.0
    ) -> None:
        self.target, self.knobs, self.result, self.leave_after = target, knobs, result, leave_after
        self.pause = pause  # a slow reader: stop reading for this long after each read
        self.parser = httptools.HttpResponseParser(self)
        self.decoder = Decoder()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_ns = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.sent_ns = time.monotonic_ns()
        self.transport.write(self.target.request(self.knobs))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._finish(f"bad HTTP: {error}")

    def on_headers_complete(self) -> None:
        self.result.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.pause:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(self.pause, self._resume)
        now = time.monotonic_ns()
        result = self.result
        delta_kind, _, end_kind, error_kind = PROTOCOLS[self.target.protocol]
        for event in self.decoder.feed(body):
            if event.data == b"[DONE]":
                continue
            payload = orjson.loads(event.data)
            kind = payload.get("type")
            if kind == delta_kind:
                result.delta_events += 1
                if result.first_delta_ms is None:
                    result.first_delta_ms = (now - self.sent_ns) / 1e6
                    result.first_delta_ns = now
                for stamp in payload["delta"].split(";")[:-1]:
                    result.latencies_ms.append((now - int(stamp)) / 1e6)
                    result.deltas += 1
                if self.leave_after is not None and result.deltas >= self.leave_after:
                    result.left_at_ns = time.monotonic_ns()
                    self.transport.close()
                    self._finish(None)
                    return
            elif kind == end_kind:
                # The relays flatten the status; the upstream itself nests it in `response`.
                status = payload.get("status") or payload.get("response", {}).get("status")
                result.completed = status == "completed" or self.target.protocol != "native"
            elif kind == error_kind:
                result.error = f"error event: {payload.get('code') or payload.get('errorText')}"

    def _resume(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def on_message_complete(self) -> None:
        if self.result.left_at_ns is not None:  # the rest of a read we already hung up on
            return
        if self.result.status != 200:
            self.result.error = f"HTTP {self.result.status}"
        elif not self.result.completed and self.result.error is None:
            self.result.error = "ended without response.completed"
        self.transport.close()
        self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish("connection lost" if self.result.left_at_ns is None else None)

    def _finish(self, error: str | None) -> None:
        if error and self.result.error is None and not self.done.done():
            self.result.error = error
        if not self.done.done():
            self.done.set_result(None)


async def run_stream(
    target: Target,
    knobs: str,
    stream_id: str,
    leave_after: int | None = None,
    timeout: float = 120,
    pause: float = 0.0,
) -> StreamResult:
    result = StreamResult(stream_id)
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_connection(
            lambda: StreamClient(target, f"{knobs} id={stream_id}", result, leave_after, pause),
            target.host,
            target.port,
        )
        try:
            await asyncio.wait_for(protocol.done, timeout)
        finally:
            transport.close()
    except (OSError, TimeoutError) as error:
        result.error = result.error or type(error).__name__
    return result


async def run_streams(
    target: Target,
    *,
    streams: int,
    deltas: int,
    interval: float,
    prefix: str,
    leave: bool = False,
    seed: int = 7,
) -> list[StreamResult]:
    """`streams` concurrent streams; with `leave`, each hangs up after a random number of deltas."""
    chance = random.Random(seed)
    knobs = f"n={deltas} interval={interval}"
    jobs = [
        run_stream(target, knobs, f"{prefix}-{index}", chance.randint(1, deltas - 1) if leave else None)
        for index in range(streams)
    ]
    return list(await asyncio.gather(*jobs))
