"""The lean HTTP/1.1 transport under the SDK: framing, keep-alive, timeouts, backpressure, TLS.

The server here is a few lines of asyncio speaking HTTP/1.1 on 127.0.0.1, so each
case (a kept-alive connection the server drops, a body ending at close, headers
that never come) can be produced exactly.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from responses_relay.transport import StreamingTransport

BIG = 2 * 1024 * 1024


class Server(asyncio.Protocol):
    connections = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        Server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.answer(head.split(b" ")[1].decode())

    def answer(self, path: str) -> None:
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
        # "/silent": never answers


@pytest.fixture
async def server() -> AsyncIterator[str]:
    Server.connections = 0
    listener = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    listener.close()
    await listener.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=StreamingTransport(buffer_bytes=64 * 1024), timeout=5) as client:
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


async def test_no_headers_in_time_is_a_read_timeout_and_closes(server: str) -> None:
    async with httpx2.AsyncClient(transport=StreamingTransport(), timeout=httpx2.Timeout(5, read=0.2)) as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(server + "/silent")
        assert (await client.get(server + "/length")).content == b"hello"
    assert Server.connections == 2  # the timed-out connection was not reused


async def test_invalid_http_is_a_remote_protocol_error(server: str, client: httpx2.AsyncClient) -> None:
    with pytest.raises(httpx2.RemoteProtocolError, match="invalid HTTP"):
        await client.get(server + "/garbage")


async def test_refused_connection_is_a_connect_error(client: httpx2.AsyncClient) -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]  # nothing listens there once it is closed
    with pytest.raises(httpx2.ConnectError):
        await client.get(f"http://127.0.0.1:{port}/")


async def test_an_unread_body_stops_reading_the_socket(server: str, client: httpx2.AsyncClient) -> None:
    async with client.stream("GET", server + "/big") as response:
        connection = response.stream._stream._connection  # type: ignore[union-attr]
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
    assert received == BIG


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    listener = await asyncio.get_running_loop().create_server(Server, "127.0.0.1", 0, ssl=server_context)
    port = listener.sockets[0].getsockname()[1]
    client_context = ssl.create_default_context(cafile=str(cert))
    try:
        async with httpx2.AsyncClient(transport=StreamingTransport(ssl_context=client_context)) as client:
            assert (await client.get(f"https://localhost:{port}/chunked")).text == "abc滋賀"
        async with httpx2.AsyncClient(transport=StreamingTransport()) as untrusting:
            with pytest.raises(httpx2.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"https://localhost:{port}/length")
    finally:
        listener.close()
        await listener.wait_closed()
