"""The upstream connection on real networks, with either transport (UPSTREAM_TRANSPORT):
proxies from the environment, keep-alive from one chat to the next, idle connections
expiring, interim responses.

Over real sockets on 127.0.0.1, against a Responses upstream and a forward proxy written
here: the upstream writes the chunked terminator on its own, a moment after the last event,
as real servers do.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import orjson
import pytest

from responses_relay.chat_request import ChatRequest, parse_chat_request
from responses_relay.demo.wire import ResponseEvents, sse
from responses_relay.errors import HttpError
from responses_relay.service import ChatService
from responses_relay.settings import Settings, SettingsError, load_settings
from responses_relay.upstream import Upstream, http_client

from .conftest import RESUMABLE, serve
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
        self.dies_on_second_request = False  # a connection's second request is read whole, then it closes
        self.not_http = False  # answers with something that is not HTTP
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
        self.answered = getattr(self, "answered", 0) + 1
        if self.server.not_http:
            self.transport.write(b"NOT HTTP AT ALL\r\n\r\n")
            return
        if self.server.dies_on_second_request and self.answered == 2:
            self.transport.close()  # after the request was written, before any byte of the response
            return
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


@pytest.fixture(params=["aiohttp", "httpx"])
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


@asynccontextmanager
async def upstream_for(settings: Settings) -> AsyncIterator[tuple[Upstream, ChatRequest]]:
    """The upstream the relay builds from `settings`, and the question as its request; closed after."""
    assert settings.endpoint is not None
    upstream = Upstream(settings, settings.endpoint)
    try:
        yield upstream, parse_chat_request(orjson.dumps(QUESTION), settings)
    finally:
        await upstream.aclose()


async def read_chat(upstream: Upstream, request: ChatRequest) -> bytes:
    """One Responses stream through the SDK client the relay builds, read whole."""
    response = await upstream.open(request)
    try:
        return await response.aread()
    finally:
        await response.aclose()


async def one_chat(settings: Settings) -> bytes:
    async with upstream_for(settings) as (upstream, request):
        return await read_chat(upstream, request)


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


async def test_demo_mode_ignores_the_proxy_variables(
    transport: str, responses_server: ResponsesServer, proxy: ForwardProxy, environ: pytest.MonkeyPatch
) -> None:
    """The demo upstream is on this machine: no proxy is asked, whatever the environment says."""
    base_url = await responses_server.start()
    environ.setenv("ALL_PROXY", await proxy.start())
    demo = load_settings({"UPSTREAM_TRANSPORT": transport})
    async with http_client(demo, httpx2.Timeout(5)) as client:
        response = await client.post(base_url + "responses", content=orjson.dumps({"model": "m"}))
    assert response.status_code == 200
    assert proxy.seen == []
    assert responses_server.targets == ["/openai/v1/responses"]


@pytest.mark.parametrize("max_retries", ["0", "1", "2"])
async def test_a_background_request_is_sent_once_whatever_the_connection_does(
    transport: str, max_retries: str, responses_server: ResponsesServer, make_settings: Callable[..., Settings]
) -> None:
    """Its kept-alive connection dies after the request went out: the response may have started
    upstream, and a second request would start (and bill) a second one."""
    responses_server.dies_on_second_request = True
    settings = make_settings(
        OPENAI_ENDPOINT=await responses_server.start(),
        UPSTREAM_TRANSPORT=transport,
        **RESUMABLE,
        UPSTREAM_MAX_RETRIES=max_retries,
    )
    async with upstream_for(settings) as (upstream, request):
        assert answered(await read_chat(upstream, request))  # the connection's first request
        with pytest.raises(HttpError) as caught:
            await upstream.open(request)
    assert (caught.value.status, caught.value.code) == (502, "upstream_unreachable")
    assert len(responses_server.targets) == 2
    assert responses_server.connections == 1


async def test_an_answer_that_is_not_http_is_a_502(
    transport: str, responses_server: ResponsesServer, make_settings: Callable[..., Settings]
) -> None:
    responses_server.not_http = True
    with pytest.raises(HttpError) as caught:
        await one_chat(make_settings(OPENAI_ENDPOINT=await responses_server.start(), UPSTREAM_TRANSPORT=transport))
    assert (caught.value.status, caught.value.code) == (502, "upstream_unreachable")


@pytest.mark.parametrize(("max_retries", "posts"), [("0", 1), ("1", 2), ("2", 2)])
async def test_a_chat_whose_connection_died_before_any_answer_is_sent_again(
    transport: str,
    max_retries: str,
    posts: int,
    responses_server: ResponsesServer,
    make_settings: Callable[..., Settings],
) -> None:
    """Not in background mode: the SDK's own retries are off (max_retries=0), and the upstream
    sends it again on a new connection, UPSTREAM_MAX_RETRIES times at most (docs/api.md)."""
    responses_server.dies_on_second_request = True
    settings = make_settings(
        OPENAI_ENDPOINT=await responses_server.start(), UPSTREAM_TRANSPORT=transport, UPSTREAM_MAX_RETRIES=max_retries
    )
    async with upstream_for(settings) as (upstream, request):
        assert answered(await read_chat(upstream, request))
        if posts == 1:
            with pytest.raises(HttpError, match="could not be reached"):
                await upstream.open(request)
        else:
            assert answered(await read_chat(upstream, request))  # sent again, on a new connection
    assert len(responses_server.targets) == 1 + posts
    assert responses_server.connections == posts


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


class FloodServer(asyncio.Protocol):
    """A Responses upstream that answers with deltas of 16 KB as fast as its socket takes them,
    `total` bytes in all, and counts the bytes it wrote."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.written = 0
        self.paused = False  # its socket's buffer is full: the reader has stopped taking bytes
        self._stream: Iterator[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._stream is None and b"\r\n\r\n" in data:  # the request's body is small and ignored
            events = ResponseEvents({"model": "gpt-4o-mini"})
            deltas = (events.delta("x" * 16_000) for _ in itertools.count())
            self._stream = (
                b"%x\r\n%s\r\n" % (len(frame), frame) for frame in map(sse, itertools.chain(events.opening(), deltas))
            )
            self.transport.write(_SSE_HEAD)
            self.resume_writing()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        assert self._stream is not None
        while not self.paused and self.written < self.total:
            chunk = next(self._stream)
            self.transport.write(chunk)
            self.written += len(chunk)

    @property
    def sent(self) -> int:
        """What left this process: the bytes written less those still in its transport's buffer."""
        return self.written - self.transport.get_write_buffer_size()


def kernel_queued(port: int) -> int:
    """Bytes in the kernel's queues (sent or received, not yet read) of the TCP connections to
    or from `port` on 127.0.0.1, as /proc/net/tcp lists them."""
    queued = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
        ports = {int(local.split(":")[1], 16), int(remote.split(":")[1], 16)}
        if port in ports and state != "0A":  # 0A: a listening socket, whose queue is its backlog
            tx, rx = queues.split(":")
            queued += int(tx, 16) + int(rx, 16)
    return queued


async def test_a_caller_who_stops_reading_pauses_the_upstream(
    transport: str, make_settings: Callable[..., Settings]
) -> None:
    """The relay's bounded buffer stops reading the upstream client's body, whose own bounded
    buffer (aiohttp's flow control; httpx2 reads only when asked) stops reading the socket, so
    the upstream can send no more than the buffers between it and the caller hold. The kernel's
    socket buffers grow by themselves (to tcp_rmem's maximum): what they hold is read from
    /proc/net/tcp, and what the relay process holds must stay within its buffers' bounds."""
    buffer_bytes = 64 * 1024
    delta_event = 16 * 1024 + 512
    relay_holds = buffer_bytes + delta_event  # the relay's buffer, one read's events past its limit
    client_holds = 3 * 256 * 1024  # aiohttp: twice its read_bufsize (256 KiB), then one socket read past it
    server_holds = 64 * 1024 + relay_holds  # uvicorn's write buffer: its high-water mark, one body chunk past it
    bound = relay_holds + client_holds + server_holds
    loop = asyncio.get_running_loop()
    flood = FloodServer(total=64 * 1024 * 1024)
    listener = await loop.create_server(lambda: flood, "127.0.0.1", 0)
    upstream_port = listener.sockets[0].getsockname()[1]
    settings = make_settings(
        OPENAI_ENDPOINT=f"http://127.0.0.1:{upstream_port}/openai/v1/",
        UPSTREAM_TRANSPORT=transport,
        STREAM_BUFFER_BYTES=str(buffer_bytes),
    )
    try:
        async for relay in serve(ChatService(settings)):
            relay_port = int(urlsplit(relay.base_url).port or 0)
            with socket.socket() as caller:
                caller.setblocking(False)
                await loop.sock_connect(caller, ("127.0.0.1", relay_port))
                body = orjson.dumps(QUESTION)
                head = b"POST /api/chat HTTP/1.1\r\nhost: relay\r\ncontent-type: application/json\r\n"
                await loop.sock_sendall(caller, head + b"content-length: %d\r\n\r\n%s" % (len(body), body))
                received = await loop.sock_recv(caller, 1024)  # then it reads no more
                assert received.startswith(b"HTTP/1.1 200 ")
                async with asyncio.timeout(30):
                    await _settled(flood)
                # The relay's events are a little shorter than the upstream's, so this overstates what it holds.
                held = flood.sent - kernel_queued(upstream_port) - kernel_queued(relay_port) - len(received)
                assert held <= bound, f"the relay process holds {held} bytes; its buffers, {bound} at most"
    finally:
        listener.close()
        flood.transport.close()
        await listener.wait_closed()


async def _settled(flood: FloodServer) -> None:
    """Until the upstream wrote all it had, or its socket stayed full while the event loop, which
    runs the relay and this test alike, went round 100 times with nothing moving."""
    quiet = 0
    while flood.written < flood.total and quiet < 100:
        written = flood.written
        await asyncio.sleep(0)
        quiet = quiet + 1 if flood.paused and flood.written == written else 0


def completed(received: Received) -> bool:
    return received.text == "".join(DELTAS) and [event.event for event in received.terminals] == ["response.completed"]


def test_the_start_up_log_names_the_transport(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="responses_relay")
    ChatService(make_settings())
    ChatService(make_settings(UPSTREAM_TRANSPORT="httpx"))
    lines = [record.getMessage() for record in caplog.records if "transport" in record.getMessage()]
    assert [line.split("transport ")[1] for line in lines] == [
        "aiohttp (the openai SDK's DefaultAioHttpClient)",
        "httpx (httpx2's own)",
    ]


@pytest.mark.parametrize(
    ("transport", "name", "value", "says"),
    [
        ("aiohttp", "HTTPS_PROXY", "ftp://user:secret@proxy:21", "Unknown scheme for proxy URL"),
        ("httpx", "HTTPS_PROXY", "ftp://user:secret@proxy:21", "Unknown scheme for proxy URL"),
        ("aiohttp", "ALL_PROXY", "socks5://user:secret@proxy:1080", "ALL_PROXY is a SOCKS proxy"),
        ("httpx", "ALL_PROXY", "socks5://user:secret@proxy:1080", "the 'socksio' package is not installed"),
    ],
)
def test_an_unusable_proxy_stops_start_up_with_one_line(
    transport: str,
    name: str,
    value: str,
    says: str,
    environ: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> None:
    environ.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        ChatService(make_settings(UPSTREAM_TRANSPORT=transport))
    message = str(caught.value)
    assert message.startswith(("HTTP_PROXY, HTTPS_PROXY or ALL_PROXY cannot be used: ", "ALL_PROXY is a SOCKS"))
    assert says in message
    assert "\n" not in message
    assert "secret" not in message
