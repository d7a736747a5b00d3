"""Upstream load emulator: a minimal, fast HTTP/1.1 server that speaks the Responses stream.

Each delta's text is its emit time (`time.monotonic_ns()`, the clock every process on
this machine shares) followed by ";", so a client can compute per-delta latency even
when a relay merges deltas. The request's input carries the knobs:
"n=200 interval=0.02 id=s1-0" (`interval=0` sends as fast as the socket takes it).
Events look like Azure's, with item ids and the `obfuscation` padding.

GET /stats returns, per stream id, when the connection was closed by the peer before
the stream ended (for the disconnect scenario), then forgets them.

    python -m bench.upstream --port 0    # prints "PORT <n>" once listening
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from typing import Any, cast

import orjson

from responses_relay.demo.wire import ResponseEvents, sse

from .listening import port_argument, serve_announced

_KNOB = re.compile(r"(\w+)=([\w.\-]+)")
_SSE_HEADERS = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)

closed_early: dict[str, int] = {}
in_flight: set[str] = set()  # stream ids being sent now


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _delta(events: ResponseEvents) -> bytes:
    payload = events.delta(f"{time.monotonic_ns()};")
    payload["obfuscation"] = secrets.token_urlsafe(6)  # Azure and OpenAI pad deltas like this
    return sse(payload)


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.task: asyncio.Task[None] | None = None
        self.stream_id: str | None = None
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.task is None or self.task.done():
            self._next_request()

    def _next_request(self) -> None:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        end = head_end + 4 + length
        if len(self.buffer) < end:
            return
        method, path, _ = head.split("\r\n", 1)[0].split(" ", 2)
        body = self.buffer[head_end + 4 : end]
        self.buffer = self.buffer[end:]
        if method == "GET":
            if path == "/stats":
                stats = orjson.dumps(closed_early)
                closed_early.clear()
            else:  # /in-flight, answered on a connection of its own
                stats = orjson.dumps({"streams": len(in_flight)})
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(stats), stats))
                self.transport.close()
                return
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(stats), stats)
            )
            return
        self.task = asyncio.get_running_loop().create_task(self._respond(orjson.loads(body)))

    async def _respond(self, request: dict[str, Any]) -> None:
        text = request["input"] if isinstance(request["input"], str) else request["input"][-1]["content"]
        knobs = dict(_KNOB.findall(text))
        count, interval = int(knobs.get("n", "50")), float(knobs.get("interval", "0.02"))
        self.stream_id = knobs.get("id")
        if self.stream_id:
            in_flight.add(self.stream_id)
        events = ResponseEvents(request)
        write = self.transport.write
        write(_SSE_HEADERS + _chunk(b"".join(sse(payload) for payload in events.opening())))
        start = time.monotonic()
        for index in range(count):
            if interval:
                delay = start + (index + 1) * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif index % 8 == 0:
                await self.writable.wait()
                await asyncio.sleep(0)
            write(_chunk(_delta(events)))
        write(_chunk(b"".join(sse(payload) for payload in events.completion())))
        write(b"0\r\n\r\n")  # the chunked terminator in a write of its own, as real servers send it
        in_flight.discard(self.stream_id or "")
        self.stream_id = None
        if self.buffer:
            self._next_request()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            if self.stream_id is not None:
                closed_early[self.stream_id] = time.monotonic_ns()
                in_flight.discard(self.stream_id)
            self.task.cancel()


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(UpstreamProtocol, "127.0.0.1", port, backlog=4096)
    await serve_announced(server)


def main() -> None:
    port = port_argument()
    import uvloop

    if os.environ.get("BENCH_NO_UVLOOP"):
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    main()
