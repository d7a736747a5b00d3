"""A test client that reads the relay's SSE body as it arrives, recording when."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx2
import orjson

from responses_relay.sse import Decoder, Event


@dataclass
class Received:
    status: int
    headers: httpx2.Headers
    raw: bytes = b""
    events: list[Event] = field(default_factory=list)
    arrivals: list[tuple[float, Event]] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return orjson.loads(self.raw)

    def payloads(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [orjson.loads(event.data) for event in self.events if kind is None or event.event == kind]

    @property
    def text(self) -> str:
        return "".join(payload["delta"] for payload in self.payloads("response.output_text.delta"))

    @property
    def terminals(self) -> list[Event]:
        return [event for event in self.events if event.event in ("response.completed", "error")]


async def chat(
    client: httpx2.AsyncClient,
    body: object,
    *,
    read_size: int | None = None,
    stop_after: int | None = None,
    stop_at: str | None = None,
    headers: dict[str, str] | None = None,
) -> Received:
    """POST /api/chat and read the whole answer, or `stop_after` text deltas (or up to the first
    event of type `stop_at`) then hang up.

    `read_size` re-splits what arrives into pieces of that many bytes before
    decoding, so multi-byte characters and events are cut across reads.
    """
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    request_headers = {"content-type": "application/json", **(headers or {})}
    return await read_sse(
        client,
        "POST",
        "/api/chat",
        content=content,
        headers=request_headers,
        read_size=read_size,
        stop_after=stop_after,
        stop_at=stop_at,
    )


async def read_sse(
    client: httpx2.AsyncClient,
    method: str,
    path: str,
    *,
    read_size: int | None = None,
    stop_after: int | None = None,
    stop_at: str | None = None,
    created: asyncio.Future[str] | None = None,
    **request: Any,
) -> Received:
    """Send a request and read its SSE body as it arrives (see `chat`); `created` is resolved
    with the response id as soon as `response.created` arrives."""
    async with client.stream(method, path, **request) as response:
        received = Received(response.status_code, response.headers)
        decoder = Decoder()
        deltas = 0
        async for chunk in response.aiter_raw():
            received.raw += chunk
            pieces = (
                [chunk] if read_size is None else [chunk[i : i + read_size] for i in range(0, len(chunk), read_size)]
            )
            for piece in pieces:
                for event in decoder.feed(piece):
                    received.events.append(event)
                    received.arrivals.append((time.monotonic(), event))
                    deltas += event.event == "response.output_text.delta"
                    if event.event == "response.created" and created is not None and not created.done():
                        created.set_result(orjson.loads(event.data)["response_id"])
            if stop_after is not None and deltas >= stop_after:
                break
            if stop_at is not None and any(event.event == stop_at for event in received.events):
                break
    return received


async def status_line(base_url: str, request: bytes) -> bytes:
    """Send `request` (a head and as much of a body as the test chooses) on a raw connection and read
    the answer's status line, while the connection stays open: the server answered without waiting
    for the rest."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
