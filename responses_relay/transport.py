"""A lean HTTP/1.1 transport for the upstream, plugged into the openai SDK's httpx2 client.

The SDK still builds every request, authenticates, and maps every status to its
errors; this only moves bytes. httpx2's default stack (httpcore2, h11, an anyio
cancel scope per read) costs tens of microseconds per network read, which is per
token at model speed. Here a read is one `data_received` into the C parser of
httptools and a wake-up of the one task reading the body.

Connections are kept alive and reused per origin. A response body that is not
read fast enough stops the socket being read (backpressure), so a slow reader
never makes this buffer grow without bound.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import cast

import httptools
import httpx2

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


class StreamingTransport(httpx2.AsyncBaseTransport):
    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, max_idle: int = 256, buffer_bytes: int = 1 << 18):
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._buffer_bytes = buffer_bytes
        self._idle: dict[Origin, deque[_Connection]] = {}

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts = request.extensions.get("timeout", {})
        head = _request_head(request)
        body = await request.aread()
        connection = self._take_idle(origin)
        if connection is not None:
            try:
                return await connection.exchange(request, head, body, timeouts.get("read"))
            except _StaleConnection:
                pass  # the server closed the kept-alive connection first: use a new one
        connection = await self._connect(origin, request, timeouts.get("connect"))
        try:
            return await connection.exchange(request, head, body, timeouts.get("read"))
        except _StaleConnection:
            raise httpx2.RemoteProtocolError("the server closed the connection at once", request=request) from None

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if connection.alive:
                return connection
        return None

    def _release(self, origin: Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, deque())
        if len(idle) < self._max_idle:
            idle.append(connection)
        else:
            connection.close()

    async def _connect(self, origin: Origin, request: httpx2.Request, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            context = self._ssl_context = self._ssl_context or httpx2.create_ssl_context()
        loop = asyncio.get_running_loop()

        def release(connection: _Connection) -> None:
            self._release(origin, connection)

        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(release, self._buffer_bytes),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context else None,
                )
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"no connection to {host}:{port} in time", request=request) from None
        except OSError as error:
            raise httpx2.ConnectError(f"{type(error).__name__}: {error}", request=request) from None
        return connection

    async def aclose(self) -> None:
        """Close the pooled connections, and return once their sockets are closed."""
        connections = [connection for idle in self._idle.values() for connection in idle]
        self._idle.clear()
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.wait([connection.lost for connection in connections], timeout=5)


def _request_head(request: httpx2.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw]
    lines.append(b"\r\n")
    return b"".join(lines)


class _StaleConnection(Exception):
    """A kept-alive connection closed before any byte of the response arrived."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time, then back to the pool."""

    def __init__(self, release: Callable[[_Connection], None], buffer_bytes: int) -> None:
        self._release = release
        self._buffer_bytes = buffer_bytes
        self._transport: asyncio.Transport | None = None
        self._request: httpx2.Request | None = None  # None while idle in the pool
        self._waiter: asyncio.Future[bool] | None = None
        self.alive = True
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # the socket is closed
        self._reset()

    def _reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._headers_done = False
        self._ends_at_close = False
        self._keep_alive = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._complete = False
        self._got_bytes = False
        self._error: Exception | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._request is None:  # bytes on an idle connection: it cannot be trusted again
            self.close()
            return
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(httpx2.RemoteProtocolError(f"invalid HTTP from the upstream: {error}", request=self._request))

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if not self.lost.done():
            self.lost.set_result(None)
        if self._headers_done and self._ends_at_close and exc is None:
            self.on_message_complete()
        if self._request is not None and not self._complete:
            if not self._got_bytes:
                self._fail(_StaleConnection())
            else:
                message = "peer closed connection without sending complete message body"
                self._fail(httpx2.RemoteProtocolError(message, request=self._request))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        framed = {name.lower() for name, _ in self._headers} & {b"content-length", b"transfer-encoding"}
        self._ends_at_close = not framed  # an HTTP/1.0-style body: the end of the connection ends it
        self._keep_alive = self._parser.should_keep_alive()  # only valid while this message is parsed
        _resolve(self._waiter, True)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered >= self._buffer_bytes and self._transport is not None:
            self._transport.pause_reading()
        _resolve(self._waiter, True)

    def on_message_complete(self) -> None:
        self._complete = True
        _resolve(self._waiter, True)

    # the exchange

    async def exchange(
        self, request: httpx2.Request, head: bytes, body: bytes, read_timeout: float | None
    ) -> httpx2.Response:
        """Send the request; return once the response headers are in. Any failure closes the connection."""
        assert self._transport is not None
        self._request = request
        self._transport.write(head + body)
        try:
            while not self._headers_done:
                await self._wait(read_timeout, "response headers")
        except BaseException:
            self.close()
            raise
        headers, self._headers = self._headers, []  # httpx2 keeps its own copy
        return httpx2.Response(
            self._parser.get_status_code(),
            headers=headers,
            stream=_Body(self, read_timeout),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def chunks(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                if self._buffered >= self._buffer_bytes and self._transport is not None:
                    self._transport.resume_reading()
                self._buffered = 0
                yield data
            elif self._complete:
                return
            else:
                await self._wait(read_timeout, "more of the response body")

    async def _wait(self, timeout: float | None, what: str) -> None:
        if self._error is None:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if timeout is None else loop.call_later(timeout, _resolve, waiter, False)
            try:
                woke = await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._waiter = None
            if not woke:
                raise httpx2.ReadTimeout(f"no {what} in time", request=self._request)
        if self._error is not None:
            raise self._error

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        _resolve(self._waiter, True)

    def finish(self) -> None:
        """The body was read or abandoned: back to the pool if the server keeps it alive, else closed."""
        keep = self.alive and self._complete and self._error is None and self._keep_alive
        if self._buffered >= self._buffer_bytes and self._transport is not None:
            self._transport.resume_reading()
        self._request = None
        self._reset()
        if keep:
            self._release(self)
        else:
            self.close()

    def close(self) -> None:
        self.alive = False
        if self._transport is not None:
            self._transport.close()


class _Body(httpx2.AsyncByteStream):
    def __init__(self, connection: _Connection, read_timeout: float | None) -> None:
        self._connection = connection
        self._read_timeout = read_timeout
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._connection.chunks(self._read_timeout):
            yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._connection.finish()


def _resolve(waiter: asyncio.Future[bool] | None, woke: bool) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(woke)
