"""A lean HTTP/1.1 transport for the upstream, plugged into the openai SDK's httpx2 client.

The SDK still builds every request, authenticates, and maps every status to its
errors; this only moves bytes. httpx2's default stack (httpcore2, h11, an anyio
cancel scope per read) costs tens of microseconds per network read, which is per
token at model speed. Here a read is one `data_received` into the C parser of
httptools and a wake-up of the one task reading the body.

How it keeps httpx2's transport contract:

- Pooling follows `httpx2.Limits` as httpx2's own transport does: connections are
  reused per origin, most recently used first; at most `max_connections` are open
  (a request waits up to the pool timeout for room, then `PoolTimeout`; an idle
  connection to another origin is closed to make room) and `max_keepalive_connections`
  idle; one idle longer than `keepalive_expiry` is never reused: the next request to its
  origin closes it (networks such as Azure's outbound SNAT forget idle flows without
  telling either end).
- TLS: `verify`, `cert` and `trust_env` (`SSL_CERT_FILE`, `SSL_CERT_DIR`) make the
  context through `httpx2.create_ssl_context`, as httpx2's transport does.
- Request bodies are read whole before sending (here they are small JSON), so a
  kept-alive connection the server had closed is replaced transparently with the same
  bytes; a body of unknown length (`Transfer-Encoding: chunked`) goes out as one chunk.
- `1xx` interim responses (`100 Continue`, `103 Early Hints`) are skipped.
- Backpressure: a response body not read fast enough stops the socket being read, so
  a slow reader never makes this buffer grow without bound.
- `aclose()` closes every connection, idle or in use: a body still being read then
  fails with `ReadError`, and one closed later is not pooled.
- Left out: HTTP/2, proxies (the client serves proxied URLs with httpx2's own
  transport: see `upstream.py`), `HEAD` requests (refused), Unix sockets and socket
  options, and write timeouts (a request is handed to the socket in one write).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

import httptools
import httpx2

if TYPE_CHECKING:
    from httpx2._types import CertTypes

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)  # httpx2's defaults


class StreamingTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: CertTypes | None = None,
        trust_env: bool = True,
        limits: httpx2.Limits = DEFAULT_LIMITS,
        buffer_bytes: int = 1 << 18,
    ) -> None:
        self._tls_settings = (verify, cert, trust_env)
        self._ssl_context: ssl.SSLContext | None = None  # made on the first https connection
        self._pool = _Pool(limits)
        self._buffer_bytes = buffer_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}", request=request)
        if request.method == "HEAD":
            raise httpx2.UnsupportedProtocol("HEAD requests are not supported by this transport", request=request)
        origin = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        timeouts = request.extensions.get("timeout", {})
        data = await _request_bytes(request)
        while True:
            connection, reused = await self._acquire(origin, request, timeouts)
            try:
                return await connection.exchange(request, data, timeouts.get("read"))
            except _StaleConnection:
                if not reused:
                    message = "the server closed the connection at once"
                    raise httpx2.RemoteProtocolError(message, request=request) from None
                # the server had closed the kept-alive connection: try the next one, or a new one

    async def _acquire(
        self, origin: Origin, request: httpx2.Request, timeouts: dict[str, float | None]
    ) -> tuple[_Connection, bool]:
        """An idle connection to `origin` (reused: True), else a new one once the limits allow it."""
        pool = self._pool
        timeout = timeouts.get("pool")
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            if pool.closed:
                raise httpx2.ConnectError("the transport is closed", request=request)
            connection = pool.take_idle(origin)
            if connection is not None:
                return connection, True
            if pool.has_room():
                return await self._connect(origin, request, timeouts.get("connect")), False
            await pool.wait_for_room(deadline, request)

    async def _connect(self, origin: Origin, request: httpx2.Request, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = self._tls() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        self._pool.connecting += 1
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self._pool, origin, self._buffer_bytes),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context else None,
                )
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"no connection to {host}:{port} in time", request=request) from None
        except OSError as error:
            raise httpx2.ConnectError(f"{type(error).__name__}: {error}", request=request) from None
        finally:
            self._pool.connect_ended()
        if self._pool.closed:  # closed while connecting
            connection.close()
            raise httpx2.ConnectError("the transport is closed", request=request)
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            verify, cert, trust_env = self._tls_settings
            self._ssl_context = httpx2.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        return self._ssl_context

    async def aclose(self) -> None:
        """Close every connection, idle or in use, and return once their sockets are closed."""
        connections = self._pool.close()
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.wait([connection.lost for connection in connections], timeout=5)


async def _request_bytes(request: httpx2.Request) -> bytes:
    """The request's head and whole body, framed as one chunk when its length was not known."""
    body = await request.aread()
    if "transfer-encoding" in request.headers:  # httpx2 sets it, to "chunked", for bodies of unknown length
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw]
    lines.append(b"\r\n")
    return b"".join(lines) + body


class _Pool:
    """One transport's connections: which are open, which idle, and `httpx2.Limits` on both."""

    def __init__(self, limits: httpx2.Limits) -> None:
        self._max_open = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._open: set[_Connection] = set()
        self._idle: dict[Origin, deque[_Connection]] = {}  # oldest first
        self._idle_count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()  # requests waiting for room
        self.connecting = 0
        self.closed = False

    def take_idle(self, origin: Origin) -> _Connection | None:
        """The most recently used idle connection to `origin` that is alive and not expired."""
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            connection.pooled = False
            if connection.alive and (self._expiry is None or now - connection.idle_since <= self._expiry):
                return connection
            connection.close()
        return None

    def has_room(self) -> bool:
        """Whether a new connection may open, after closing the oldest idle one if that makes room."""
        if self._max_open is None or len(self._open) + self.connecting < self._max_open:
            return True
        oldest = next((idle[0] for idle in self._idle.values() if idle), None)
        if oldest is None:
            return False
        oldest.close()
        return True

    async def wait_for_room(self, deadline: float | None, request: httpx2.Request) -> None:
        """Until a connection is released or closed; `PoolTimeout` at `deadline` (the loop's clock)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken but leaving: the turn goes to the next waiter
            waiter.cancel()
            if isinstance(error, TimeoutError):
                raise httpx2.PoolTimeout("no connection free in time", request=request) from None
            raise

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def opened(self, connection: _Connection) -> None:
        self._open.add(connection)

    def connect_ended(self) -> None:
        self.connecting -= 1
        self._wake()

    def release(self, connection: _Connection) -> None:
        """A connection whose response ended cleanly: idle in the pool, or closed when there is no room."""
        if self._max_idle is not None and self._idle_count >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        connection.pooled = True
        self._idle.setdefault(connection.origin, deque()).append(connection)
        self._idle_count += 1
        self._wake()

    def forget(self, connection: _Connection) -> None:
        """A connection was closed, by either end."""
        self._open.discard(connection)
        if connection.pooled:
            connection.pooled = False
            self._idle[connection.origin].remove(connection)
            self._idle_count -= 1
        self._wake()

    def close(self) -> list[_Connection]:
        """No more connections; returns the open ones, for the caller to close."""
        self.closed = True
        return list(self._open)


class _StaleConnection(Exception):
    """A kept-alive connection closed before any byte of the response arrived."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one exchange at a time, then back to the pool."""

    def __init__(self, pool: _Pool, origin: Origin, buffer_bytes: int) -> None:
        self._pool = pool
        self.origin = origin
        self._buffer_bytes = buffer_bytes
        self._transport: asyncio.Transport | None = None
        self._request: httpx2.Request | None = None  # None while idle in the pool
        self._waiter: asyncio.Future[bool] | None = None
        self.alive = True
        self.pooled = False
        self.idle_since = 0.0  # time.monotonic() when it went back to the pool
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()  # the socket is closed
        self._reset()

    def _reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._interim = False  # parsing a 1xx response, which the final one follows
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
        self._pool.opened(self)

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
        self._pool.forget(self)
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

    def on_message_begin(self) -> None:
        self._headers.clear()  # an interim response's headers are not the final one's

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._interim = True
            return
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
        if self._interim:
            self._interim = False
            return
        self._complete = True
        _resolve(self._waiter, True)

    # the exchange

    async def exchange(self, request: httpx2.Request, data: bytes, read_timeout: float | None) -> httpx2.Response:
        """Send the request; return once the final response's headers are in. Any failure closes the connection."""
        assert self._transport is not None
        self._request = request
        self._transport.write(data)
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
            self._pool.release(self)
        else:
            self.close()

    def close(self) -> None:
        if self._request is not None and not self._complete:
            self._fail(httpx2.ReadError("the connection was closed", request=self._request))
        self.alive = False
        if self._transport is not None:
            self._transport.close()
        self._pool.forget(self)


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
