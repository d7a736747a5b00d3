"""The upstream connection on real networks, with either transport (UPSTREAM_TRANSPORT):
proxies from the environment, keep-alive from one chat to the next, idle connections
expiring, interim responses.

Over real sockets on 127.0.0.1, against a Responses upstream and a forward proxy written
here: the upstream writes the chunked terminator on its own, a moment after the last event,
as real servers do.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import orjson
import pytest

from responses_relay.chat_request import parse_chat_request
from responses_relay.demo.wire import ResponseEvents, sse
from responses_relay.service import ChatService
from responses_relay.settings import Settings, SettingsError, load_settings
from responses_relay.transport import StreamingTransport
from responses_relay.upstream import Upstream, http_client

from .conftest import serve
from .http_server import RequestParsing
from .sse_client import Received, chat

DELTAS = ["滋賀県は", "琵琶湖の", "ある県です。"]
QUESTION = {"input": "滋賀県について教えてください。"}
_SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n"
TERMINATOR_DELAY = 0.02
INTERIM_DELAY = 0.05


class ResponsesServer:
    """A Responses upstream; counts the connections it accepts."""

    def __init__(self) -> None:
        self.early_hints = False  # a 103 Early Hints before each 200
        self.deaf_after_first = False  # after its first response, a connection is never read or answered again
        self.connections = 0
        self.targets: list[str] = []  # request targets, as received
        self._protocols: list[_ResponsesProtocol] = []
        self._listener: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> str:
        """The base URL (https://localhost:PORT/... with `tls`, for the certificate's name)."""
        self._listener = await asyncio.get_running_loop().create_server(
            lambda: _ResponsesProtocol(self), "127.0.0.1", 0, ssl=tls
        )
        port = self._listener.sockets[0].getsockname()[1]
        return f"https://localhost:{port}/openai/v1/" if tls else f"http://127.0.0.1:{port}/openai/v1/"

    def opened(self, protocol: _ResponsesProtocol) -> None:
        self.connections += 1
        self._protocols.append(protocol)

    async def stop(self) -> None:
        assert self._listener is not None
        self._listener.close()
        for protocol in self._protocols:  # the deaf ones included: they never close by themselves
            protocol.transport.close()
        await self._listener.wait_closed()


class _ResponsesProtocol(RequestParsing):
    def __init__(self, server: ResponsesServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.opened(self)

    def answer(self, method: str, target: str, body: bytes) -> None:
        self.server.targets.append(target)
        if self.server.early_hints:  # the response follows a moment later, as when it takes time to make
            self.transport.write(b"HTTP/1.1 103 Early Hints\r\nlink: </app.js>; rel=preload\r\n\r\n")
            asyncio.get_running_loop().call_later(INTERIM_DELAY, self._respond, body)
        else:
            self._respond(body)

    def _respond(self, body: bytes) -> None:
        events = ResponseEvents(orjson.loads(body))
        payloads = [*events.opening(), *(events.delta(text) for text in DELTAS), *events.completion()]
        stream = b"".join(sse(payload) for payload in payloads)
        self.transport.write(_SSE_HEAD + b"%x\r\n%s\r\n" % (len(stream), stream))
        asyncio.get_running_loop().call_later(TERMINATOR_DELAY, self._end)

    def _end(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(b"0\r\n\r\n")
            if self.server.deaf_after_first:
                self.transport.pause_reading()  # no FIN, no RST: like a flow the network forgot


class ForwardProxy:
    """An HTTP forward proxy, as corporate and VNet networks have: requests in absolute form
    and CONNECT tunnels, relayed to their target. Records each connection's first request line."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._listener: asyncio.Server | None = None

    async def start(self) -> str:
        self._listener = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._listener.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
        else:
            url = urlsplit(target)
            host, port = url.hostname or "", str(url.port or 80)
        target_reader, target_writer = await asyncio.open_connection(host, int(port))
        self._writers.append(target_writer)
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            target_writer.write(head)  # the absolute form as it is: servers must accept it
        await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))

    async def stop(self) -> None:
        assert self._listener is not None
        self._listener.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._listener.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture(params=["lean", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def responses_server() -> AsyncIterator[ResponsesServer]:
    server = ResponsesServer()
    yield server
    await server.stop()


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variables in the environment until the test sets them."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    forward = ForwardProxy()
    yield forward
    await forward.stop()


async def one_chat(settings: Settings) -> bytes:
    """One Responses stream through the SDK client the relay builds, read whole."""
    assert settings.endpoint is not None
    upstream = Upstream(settings, settings.endpoint)
    try:
        response = await upstream.open(parse_chat_request(orjson.dumps(QUESTION), settings))
        try:
            return await response.aread()
        finally:
            await response.aclose()
    finally:
        await upstream.aclose()


def answered(body: bytes) -> bool:
    return b"event: response.completed" in body and all(delta.encode() in body for delta in DELTAS)


async def test_http_proxy_sees_the_request(
    transport: str,
    responses_server: ResponsesServer,
    proxy: ForwardProxy,
    environ: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> None:
    base_url = await responses_server.start()
    environ.setenv("HTTP_PROXY", await proxy.start())
    assert answered(await one_chat(make_settings(OPENAI_ENDPOINT=base_url, UPSTREAM_TRANSPORT=transport)))
    assert proxy.seen == [f"POST {base_url}responses"]
    assert responses_server.targets == [f"{base_url}responses"]  # in absolute form: it came through the proxy


async def test_no_proxy_goes_direct(
    transport: str,
    responses_server: ResponsesServer,
    proxy: ForwardProxy,
    environ: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> None:
    base_url = await responses_server.start()
    environ.setenv("HTTP_PROXY", await proxy.start())
    environ.setenv("NO_PROXY", "example.com,127.0.0.1")
    assert answered(await one_chat(make_settings(OPENAI_ENDPOINT=base_url, UPSTREAM_TRANSPORT=transport)))
    assert proxy.seen == []
    assert responses_server.targets == ["/openai/v1/responses"]


async def test_https_goes_through_a_connect_tunnel(
    transport: str,
    responses_server: ResponsesServer,
    proxy: ForwardProxy,
    certificate: tuple[Path, Path],
    environ: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    base_url = await responses_server.start(tls=server_context)
    environ.setenv("HTTPS_PROXY", await proxy.start())
    environ.setenv("SSL_CERT_FILE", str(cert))  # trust the test's own certificate authority
    assert answered(await one_chat(make_settings(OPENAI_ENDPOINT=base_url, UPSTREAM_TRANSPORT=transport)))
    assert proxy.seen == [f"CONNECT localhost:{urlsplit(base_url).port}"]


class Served(Exception):
    """Raised by a spied transport instead of sending: which transport object was asked."""

    def __init__(self, transport: httpx2.AsyncBaseTransport) -> None:
        self.transport = transport


async def served_by(client: httpx2.AsyncClient, url: str) -> httpx2.AsyncBaseTransport:
    with pytest.raises(Served) as caught:
        await client.get(url)
    return caught.value.transport


async def test_the_lean_transport_serves_what_no_proxy_covers_and_the_demo(
    environ: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    async def spy(self: httpx2.AsyncBaseTransport, request: httpx2.Request) -> httpx2.Response:
        raise Served(self)

    for transport_class in (StreamingTransport, httpx2.AsyncHTTPTransport):
        environ.setattr(transport_class, "handle_async_request", spy)
    environ.setenv("ALL_PROXY", "http://proxy.example:3128")
    environ.setenv("NO_PROXY", ".internal.example")
    for transport, unproxied in (("lean", StreamingTransport), ("httpx", httpx2.AsyncHTTPTransport)):
        async with http_client(make_settings(UPSTREAM_TRANSPORT=transport), httpx2.Timeout(5)) as client:
            direct = await served_by(client, "https://model.internal.example/v1/responses")
            proxied = await served_by(client, "https://x.openai.azure.com/openai/v1/responses")
        assert type(direct) is unproxied
        assert type(proxied) is httpx2.AsyncHTTPTransport
        assert proxied is not direct
        async with http_client(load_settings({"UPSTREAM_TRANSPORT": transport}), httpx2.Timeout(5)) as demo:
            assert type(await served_by(demo, "http://127.0.0.1:7072/v1/responses")) is unproxied


async def test_sequential_chats_reuse_one_connection(
    transport: str, responses_server: ResponsesServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(OPENAI_ENDPOINT=await responses_server.start(), UPSTREAM_TRANSPORT=transport)
    async for relay in serve(ChatService(settings)):
        for _ in range(10):
            received = await chat(relay.client, QUESTION)
            assert completed(received)
    assert responses_server.connections <= 2


async def test_an_idle_connection_is_not_reused_after_the_keepalive(
    transport: str, responses_server: ResponsesServer, make_settings: Callable[..., Settings]
) -> None:
    responses_server.deaf_after_first = True  # the network forgot the flow: requests on it go nowhere
    settings = make_settings(
        OPENAI_ENDPOINT=await responses_server.start(),
        UPSTREAM_TRANSPORT=transport,
        UPSTREAM_KEEPALIVE_SECONDS="1",
        UPSTREAM_READ_TIMEOUT_SECONDS="60",
    )
    async for relay in serve(ChatService(settings)):
        assert completed(await chat(relay.client, QUESTION))
        await asyncio.sleep(2)  # the idle time itself, not a synchronisation
        async with asyncio.timeout(10):  # seconds, where reusing the dead connection would wait 60
            assert completed(await chat(relay.client, QUESTION))
    assert responses_server.connections == 2


async def test_an_early_hints_response_changes_nothing(
    transport: str, responses_server: ResponsesServer, make_settings: Callable[..., Settings]
) -> None:
    responses_server.early_hints = True
    settings = make_settings(OPENAI_ENDPOINT=await responses_server.start(), UPSTREAM_TRANSPORT=transport)
    async for relay in serve(ChatService(settings)):
        received = await chat(relay.client, QUESTION)
    assert received.status == 200
    assert completed(received)
    assert received.text == "".join(DELTAS)


def completed(received: Received) -> bool:
    return received.text == "".join(DELTAS) and [event.event for event in received.terminals] == ["response.completed"]


def test_the_start_up_log_names_the_transport(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="responses_relay")
    ChatService(make_settings())
    ChatService(make_settings(UPSTREAM_TRANSPORT="httpx"))
    lines = [record.getMessage() for record in caplog.records if "transport" in record.getMessage()]
    assert [line.split("transport ")[1] for line in lines] == ["lean (httptools)", "httpx (httpx2's own)"]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("HTTPS_PROXY", "ftp://user:secret@proxy:21", "Unknown scheme for proxy URL URL('ftp://user:[secure]@proxy')"),
        ("ALL_PROXY", "socks5://proxy:1080", "the 'socksio' package is not installed"),
    ],
)
def test_an_unusable_proxy_stops_start_up_with_one_line(
    name: str, value: str, says: str, environ: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    environ.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        ChatService(make_settings())
    message = str(caught.value)
    assert message.startswith("HTTP_PROXY, HTTPS_PROXY or ALL_PROXY cannot be used: ")
    assert says in message
    assert "\n" not in message
    assert "secret" not in message
