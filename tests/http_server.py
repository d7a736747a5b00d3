"""The bases of the tests' hand-written HTTP/1.1 servers on 127.0.0.1: requests parsed by
httptools, or one request per connection read with asyncio streams."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httptools


class RequestParsing(asyncio.Protocol):
    """Parses each HTTP/1.1 request on the connection and hands it, whole, to `answer`."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._parser = httptools.HttpRequestParser(self)
        self._target = b""
        self._body = b""

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode()
        target, body = self._target.decode(), self._body
        self._target, self._body = b"", b""
        self.answer(method, target, body)

    def answer(self, method: str, target: str, body: bytes) -> None:
        """Write the response to `transport` (the request target may be absolute, from a proxy)."""
        raise NotImplementedError


class OneRequestEndpoint:
    """A server on 127.0.0.1 answering one request per connection: subclasses `handle` it."""

    def __init__(self) -> None:
        self.base_url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def aclose(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


async def answer_json(writer: asyncio.StreamWriter, payload: Any) -> None:
    """Write a 200 response with `payload` as JSON, and close the connection."""
    body = json.dumps(payload).encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    writer.close()
