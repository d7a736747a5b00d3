"""The base of the tests' hand-written HTTP/1.1 servers: requests parsed by httptools."""

from __future__ import annotations

import asyncio

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
