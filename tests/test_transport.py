"""The upstream transport's contract, for the lean transport and httpx2's own alike: framing,
keep-alive, timeouts, interim responses, request bodies, limits, closing, TLS; and the
lean one's backpressure.

The server here is a few lines of asyncio speaking HTTP/1.1 on 127.0.0.1 (requests
parsed by httptools), so each case (a kept-alive connection the server drops, a body
ending at close, headers that never come) can be produced exactly.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx2
import pytest

from responses_relay.transport import StreamingTransport

from .http_server import RequestParsing

BIG = 2 * 1024 * 1024


class Server(RequestParsing):
    connections = 0
    closed: asyncio.Event  # set when a connection closes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        Server.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        Server.closed.set()

    def answer(self, method: str, path: str, body: bytes) -> None:
        write = self.transport.write
        if path == "/length":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        elif path == "/chunked":
            write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            write(b"4\r\n\xe6\xbb\x8b\xe8\r\n2\r\n\xb3\x80\r\n0\r\n\r\n")
        elif path == "/until-close":
            write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
            self.transport.close()
        elif path == "/then-drop":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            self.transport.close()  # claims keep-alive, then drops the idle connection
        elif path == "/cut":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            self.transport.close()
        elif path == "/big":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG + b"x" * BIG)
        elif path == "/garbage":
            write(b"NOT HTTP AT ALL\r\n\r\n")
        elif path == "/interim":  # the final response a moment later, as when it takes time to make
            write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            final = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
            asyncio.get_running_loop().call_later(0.05, write, final)
        elif path == "/echo":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        elif path == "/endless":
            write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")  # then nothing
        # "/silent": never answers


Listen = Callable[..., Awaitable[int]]


@pytest.fixture
async def listen() -> AsyncIterator[Listen]:
    """Starts `Server` on a port of 127.0.0.1 (with TLS when given a context); stops it after the test."""
    Server.connections = 0
    Server.closed = asyncio.Event()
    listeners: list[asyncio.Server] = []

    async def start(tls: ssl.SSLContext | None = None) -> int:
        listener = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0, ssl=tls)
        listeners.append(listener)
        return int(listener.sockets[0].getsockname()[1])

    yield start
    for listener in listeners:
        listener.close()
        await listener.wait_closed()


@pytest.fixture
async def server(listen: Listen) -> str:
    return f"http://127.0.0.1:{await listen()}"


MakeTransport = Callable[..., httpx2.AsyncBaseTransport]


@pytest.fixture(params=["lean", "httpx"])
def make_transport(request: pytest.FixtureRequest) -> MakeTransport:
    """Either transport, from the same options (verify, cert, trust_env, limits)."""
    if request.param == "lean":
        return lambda **options: StreamingTransport(buffer_bytes=64 * 1024, **options)
    return httpx2.AsyncHTTPTransport


@pytest.fixture
async def client(make_transport: MakeTransport) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=make_transport(), timeout=5) as client:
        yield client


async def test_bodies_framed_every_way(server: str, client: httpx2.AsyncClient) -> None:
    assert (await client.get(server + "/length")).content == b"hello"
    assert (await client.get(server + "/chunked")).text == "abc滋賀"
    assert (await client.get(server + "/until-close")).content == b"all of it"


async def test_kept_alive_connection_is_reused(server: str, client: httpx2.AsyncClient) -> None:
    for _ in range(5):
        assert (await client.get(server + "/length")).content == b"hello"
    assert Server.connections == 1


async def test_a_dropped_idle_connection_is_replaced_transparently(server: str, client: httpx2.AsyncClient) -> None:
    assert (await client.get(server + "/then-drop")).content == b"ok"
    assert (await client.get(server + "/length")).content == b"hello"
    assert Server.connections == 2


async def test_a_body_cut_short_is_a_remote_protocol_error(server: str, client: httpx2.AsyncClient) -> None:
    with pytest.raises(httpx2.RemoteProtocolError, match="complete message body"):
        await client.get(server + "/cut")


async def test_no_headers_in_time_is_a_read_timeout_and_closes(server: str, make_transport: MakeTransport) -> None:
    async with httpx2.AsyncClient(transport=make_transport(), timeout=httpx2.Timeout(5, read=0.2)) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(server + "/silent")
        assert (await client.get(server + "/length")).content == b"hello"
    assert Server.connections == 2  # the timed-out connection was not reused


async def test_invalid_http_is_a_remote_protocol_error(server: str, client: httpx2.AsyncClient) -> None:
    with pytest.raises(httpx2.RemoteProtocolError):
        await client.get(server + "/garbage")


async def test_refused_connection_is_a_connect_error(client: httpx2.AsyncClient) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # nothing listens there once it is closed
    with pytest.raises(httpx2.ConnectError):
        await client.get(f"http://127.0.0.1:{port}/")


async def test_interim_responses_are_skipped(server: str, client: httpx2.AsyncClient) -> None:
    response = await client.get(server + "/interim")
    assert (response.status_code, response.content) == (200, b"final")
    assert "link" not in response.headers
    assert (await client.get(server + "/length")).content == b"hello"
    assert Server.connections == 1


async def test_request_bodies_of_known_and_unknown_length(server: str, client: httpx2.AsyncClient) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b'{"input": ', '"滋賀"'.encode(), b"}"):
            yield part

    assert (await client.post(server + "/echo", content=b"plain bytes")).content == b"plain bytes"
    streamed = await client.post(server + "/echo", content=parts())  # sent with Transfer-Encoding: chunked
    assert streamed.content == '{"input": "滋賀"}'.encode()
    assert (await client.post(server + "/echo", content=b"")).content == b""
    assert Server.connections == 1


async def test_connections_are_capped_by_the_limits(server: str, make_transport: MakeTransport) -> None:
    limits = httpx2.Limits(max_connections=1)
    timeout = httpx2.Timeout(5, pool=0.2)
    async with httpx2.AsyncClient(transport=make_transport(limits=limits), timeout=timeout) as client:
        async with client.stream("GET", server + "/length"):  # holds the one connection
            with pytest.raises(httpx2.PoolTimeout):
                await client.get(server + "/length")
        async with client.stream("GET", server + "/length"):
            waiting = asyncio.ensure_future(client.get(server + "/length", timeout=5))
            done, _ = await asyncio.wait([waiting], timeout=0.1)
            assert not done, "the second request waits for the connection"
        assert (await waiting).content == b"hello"  # it got the connection once the first was done


async def test_an_idle_connection_to_another_origin_makes_room(server: str, make_transport: MakeTransport) -> None:
    limits = httpx2.Limits(max_connections=1)
    other_origin = server.replace("127.0.0.1", "localhost")
    async with httpx2.AsyncClient(
        transport=make_transport(limits=limits), timeout=httpx2.Timeout(5, pool=0.2)
    ) as client:
        assert (await client.get(server + "/length")).content == b"hello"
        assert (await client.get(other_origin + "/length")).content == b"hello"
    assert Server.connections == 2


async def test_closing_the_client_ends_a_body_being_read(server: str, make_transport: MakeTransport) -> None:
    client = httpx2.AsyncClient(transport=make_transport(), timeout=5)
    async with client.stream("GET", server + "/endless") as response:
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"first"
        await client.aclose()
        await asyncio.wait_for(Server.closed.wait(), 5)  # the socket is closed at once
        with pytest.raises(httpx2.TransportError):
            await asyncio.wait_for(anext(chunks), 5)


async def test_a_closed_lean_transport_opens_nothing(server: str) -> None:
    transport = StreamingTransport()
    await transport.aclose()
    with pytest.raises(httpx2.ConnectError, match="closed"):
        await transport.handle_async_request(httpx2.Request("GET", server + "/length"))
    assert Server.connections == 0


async def test_the_lean_transport_refuses_head(server: str) -> None:
    """httptools cannot be told that a response to HEAD has no body: refused rather than hanging."""
    async with httpx2.AsyncClient(transport=StreamingTransport(), timeout=5) as client:
        with pytest.raises(httpx2.UnsupportedProtocol, match="HEAD"):
            await client.head(server + "/length")


async def test_an_unread_body_stops_reading_the_socket(server: str) -> None:
    """The lean transport's own buffer is bounded (httpx2's reads only when asked). White-box:
    the transport is asked directly, so its response's stream is the transport's own body."""
    transport = StreamingTransport(buffer_bytes=64 * 1024)
    async with transport:
        response = await transport.handle_async_request(httpx2.Request("GET", server + "/big"))
        connection = response.stream._connection  # type: ignore[union-attr]
        socket_transport = connection._transport
        paused = asyncio.get_running_loop().create_future()
        pause_reading = socket_transport.pause_reading

        def pause() -> None:
            pause_reading()
            if not paused.done():
                paused.set_result(connection._buffered)

        socket_transport.pause_reading = pause
        if not socket_transport.is_reading():  # paused already, by the read that brought the headers
            paused.set_result(connection._buffered)
        buffered = await asyncio.wait_for(paused, 5)
        assert not socket_transport.is_reading()
        assert 64 * 1024 <= buffered < 64 * 1024 + 256 * 1024  # one read past the limit at most
        received = sum([len(chunk) async for chunk in response.aiter_raw()])
        await response.aclose()
    assert received == BIG


async def test_tls_with_the_clients_verify_setting(
    certificate: tuple[Path, Path], listen: Listen, make_transport: MakeTransport
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    port = await listen(server_context)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with httpx2.AsyncClient(transport=make_transport(verify=trusting)) as client:
        assert (await client.get(f"https://localhost:{port}/chunked")).text == "abc滋賀"
    async with httpx2.AsyncClient(transport=make_transport()) as untrusting:
        with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.get(f"https://localhost:{port}/length")
