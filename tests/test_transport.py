"""The upstream client's transport contract, for both UPSTREAM_TRANSPORT clients (the openai
SDK's DefaultAioHttpClient and its httpx2 one): framing, keep-alive, timeouts, interim
responses, request bodies, limits, closing, TLS, and a POST never sent twice.

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
from aiohttp import ClientConnectorError
from openai import DefaultAioHttpClient, DefaultAsyncHttpxClient

from .http_server import RequestParsing

CLIENTS: dict[str, type[httpx2.AsyncClient]] = {"aiohttp": DefaultAioHttpClient, "httpx": DefaultAsyncHttpxClient}


class Server(RequestParsing):
    connections = 0
    requests: list[str]  # "METHOD path", as received
    closed: asyncio.Event  # set when a connection closes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        Server.connections += 1
        self.answered = 0

    def connection_lost(self, exc: Exception | None) -> None:
        Server.closed.set()

    def answer(self, method: str, path: str, body: bytes) -> None:
        Server.requests.append(f"{method} {path}")
        self.answered += 1
        write = self.transport.write
        if path == "/length":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + (b"" if method == "HEAD" else b"hello"))
        elif path == "/chunked":
            write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            write(b"4\r\n\xe6\xbb\x8b\xe8\r\n2\r\n\xb3\x80\r\n0\r\n\r\n")
        elif path == "/late-terminator":  # the chunked terminator in a write of its own, a moment later
            write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            asyncio.get_running_loop().call_later(0.02, write, b"0\r\n\r\n")
        elif path == "/until-close":
            write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
            self.transport.close()
        elif path == "/then-drop":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            self.transport.close()  # claims keep-alive, then drops the idle connection
        elif path == "/second-dies" and self.answered > 1:
            self.transport.close()  # the request was read whole; not a byte of response
        elif path == "/second-dies":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        elif path == "/cut":
            write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            self.transport.close()
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
    Server.requests = []
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


MakeClient = Callable[..., httpx2.AsyncClient]


@pytest.fixture(params=list(CLIENTS))
def make_client(request: pytest.FixtureRequest) -> MakeClient:
    """Either UPSTREAM_TRANSPORT's client class, as the upstream makes it (no proxy variables here)."""
    return lambda **options: CLIENTS[request.param](trust_env=False, **options)


@pytest.fixture
async def client(make_client: MakeClient) -> AsyncIterator[httpx2.AsyncClient]:
    async with make_client(timeout=5) as client:
        yield client


async def test_bodies_framed_every_way(server: str, client: httpx2.AsyncClient) -> None:
    assert (await client.get(server + "/length")).content == b"hello"
    assert (await client.get(server + "/chunked")).text == "abc滋賀"
    assert (await client.get(server + "/until-close")).content == b"all of it"
    assert (await client.head(server + "/length")).content == b""


async def test_kept_alive_connection_is_reused_when_the_terminator_comes_late(
    server: str, client: httpx2.AsyncClient
) -> None:
    for _ in range(3):
        async with client.stream("GET", server + "/late-terminator") as response:
            assert [chunk async for chunk in response.aiter_raw()] == [b"hello"]
    assert Server.connections == 1


async def test_a_dropped_idle_connection_is_replaced_transparently(server: str, client: httpx2.AsyncClient) -> None:
    assert (await client.get(server + "/then-drop")).content == b"ok"
    await asyncio.wait_for(Server.closed.wait(), 5)  # the server's close has reached the client's socket
    assert (await client.get(server + "/length")).content == b"hello"
    assert Server.connections == 2


async def test_a_post_is_never_sent_twice(server: str, client: httpx2.AsyncClient) -> None:
    """A kept-alive connection that dies after the request was written, before any response
    byte: the request may have arrived, so the transport must not send it again."""
    assert (await client.post(server + "/second-dies", content=b"{}")).content == b"first"
    with pytest.raises(httpx2.TransportError):
        await client.post(server + "/second-dies", content=b"{}")
    assert Server.requests == ["POST /second-dies"] * 2
    assert Server.connections == 1


async def test_a_body_cut_short_is_a_lost_connection_not_a_timeout(server: str, client: httpx2.AsyncClient) -> None:
    """What the relay tells its caller mid-stream depends on it: upstream_connection_lost."""
    with pytest.raises(httpx2.TransportError) as caught:
        await client.get(server + "/cut")
    assert not isinstance(caught.value, httpx2.TimeoutException)


async def test_no_headers_in_time_is_a_read_timeout_and_closes(server: str, make_client: MakeClient) -> None:
    async with make_client(timeout=httpx2.Timeout(5, read=0.2)) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(server + "/silent")
        assert (await client.get(server + "/length")).content == b"hello"
    assert Server.connections == 2  # the timed-out connection was not reused


async def test_silence_mid_body_is_a_read_timeout(server: str, make_client: MakeClient) -> None:
    async with (
        make_client(timeout=httpx2.Timeout(5, read=0.2)) as client,
        client.stream("GET", server + "/endless") as response,
    ):
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"first"
        with pytest.raises(httpx2.ReadTimeout):
            await anext(chunks)


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


async def test_connections_are_capped_by_the_limits(server: str, make_client: MakeClient) -> None:
    limits = httpx2.Limits(max_connections=1)
    async with make_client(limits=limits, timeout=httpx2.Timeout(5, pool=0.2)) as client:
        async with client.stream("GET", server + "/endless"):  # holds the one connection
            with pytest.raises(httpx2.TimeoutException):  # aiohttp's adapter: ConnectTimeout; httpx2's: PoolTimeout
                await client.get(server + "/length")
        async with client.stream("GET", server + "/endless"):
            waiting = asyncio.ensure_future(client.get(server + "/length", timeout=5))
            done, _ = await asyncio.wait([waiting], timeout=0.1)
            assert not done, "the second request waits for the connection"
        assert (await waiting).content == b"hello"  # it got a connection once the first was closed


async def test_closing_the_client_ends_a_body_being_read(server: str, make_client: MakeClient) -> None:
    client = make_client(timeout=5)
    async with client.stream("GET", server + "/endless") as response:
        chunks = response.aiter_raw()
        assert await anext(chunks) == b"first"
        await client.aclose()
        await asyncio.wait_for(Server.closed.wait(), 5)  # the socket is closed at once
        # aiohttp's adapter lets aiohttp's RuntimeError("Connection closed.") through unmapped;
        # the relay closes the client only once its streams have ended.
        with pytest.raises((httpx2.TransportError, RuntimeError)):
            await asyncio.wait_for(anext(chunks), 5)


async def test_a_refused_connection_is_reported_with_its_cause(client: httpx2.AsyncClient) -> None:
    """aiohttp's adapter calls it ConnectTimeout; the upstream tells it apart by the cause (upstream.py)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # nothing listens there once it is closed
    with pytest.raises(httpx2.TransportError) as caught:
        await client.get(f"http://127.0.0.1:{port}/")
    assert isinstance(caught.value, httpx2.ConnectError) or isinstance(caught.value.__cause__, ClientConnectorError)


async def test_tls_with_the_clients_verify_setting(
    certificate: tuple[Path, Path], listen: Listen, make_client: MakeClient
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    port = await listen(server_context)
    trusting = ssl.create_default_context(cafile=str(cert))
    async with make_client(verify=trusting) as client:
        assert (await client.get(f"https://localhost:{port}/chunked")).text == "abc滋賀"
    async with make_client() as untrusting:
        with pytest.raises(httpx2.TransportError, match=r"(?i)certificate verify failed"):
            await untrusting.get(f"https://localhost:{port}/length")
