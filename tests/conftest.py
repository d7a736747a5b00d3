"""Shared fixtures: a fault-injecting upstream and the relay served over real sockets.

The upstream is the project's demo upstream (uvicorn in its own thread); the relay
is the real Functions app, mounted by the local host under uvicorn in the test's
event loop. Only Azure itself is absent: the upstream speaks its wire format.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx2
import pytest
import uvicorn
from starlette.types import ASGIApp

import function_app
from responses_relay.local_host import build_asgi_app, http_functions
from responses_relay.service import ChatService
from responses_relay.settings import Settings, load_settings

from .azurite import Azurite
from .faulty_upstream import FaultyUpstream, Scenario
from .ingestion import Ingestion
from .scripted_upstream import ScriptedUpstream

FAKE_KEY = "sk-test-FAKEKEY0123456789abcdef"
OWNER_SECRET = "test-owner-hash-secret-0123456789abcdef"  # OWNER_HASH_SECRET, where owners are kept
RESUMABLE = {"RESUMABLE_STREAMS": "true", "OWNER_HASH_SECRET": OWNER_SECRET}  # background mode, and its owners
ATTACHMENT_LIMITS = {"max_attachments": 4, "max_attachment_bytes": 10 * 1024 * 1024, "max_image_pixels": 7680 * 4320}
# Health's limits by default: MAX_BODY_BYTES grows by the room for a message's attachments (base64 data: URLs).
DEFAULT_LIMITS = {
    "max_body_bytes": 256 * 1024 + 4 * (4 * -(-10 * 1024 * 1024 // 3) + 64),
    "max_messages": 64,
    "max_message_chars": 32000,
    **ATTACHMENT_LIMITS,
}


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[FaultyUpstream]:
    server = FaultyUpstream(delta_seconds=0.002)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: FaultyUpstream) -> Iterator[FaultyUpstream]:
    upstream_server.set_scenario(Scenario())
    upstream_server.records.clear()
    yield upstream_server
    upstream_server.release()  # nothing stays held for the next test
    upstream_server.set_scenario(Scenario())


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """The storage emulator, started once for the session that needs it and stopped after it."""
    emulator = Azurite(tmp_path_factory.mktemp("azurite"))
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def make_settings(upstream_server: FaultyUpstream, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings for the relay in front of the test upstream; with resumable streams, and no storage
    account named, the storage emulator's (started then, once for the session)."""

    def make(**overrides: str) -> Settings:
        environ = {"OPENAI_ENDPOINT": upstream_server.base_url, "OPENAI_API_KEY": FAKE_KEY, **overrides}
        if environ.get("RESUMABLE_STREAMS") == "true" and "AzureWebJobsStorage" not in environ:
            environ["AzureWebJobsStorage"] = request.getfixturevalue("azurite").connection_string
        return load_settings({key: value for key, value in environ.items() if value is not None})

    return make


@pytest.fixture
def kept(azurite: Azurite, make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """Settings that keep conversations: the owner secret, and Azurite as the storage account."""

    def make(**overrides: str) -> Settings:
        return make_settings(OWNER_HASH_SECRET=OWNER_SECRET, AzureWebJobsStorage=azurite.connection_string, **overrides)

    return make


class RelayServer:
    """The relay on a real socket, and a client for it."""

    def __init__(self, base_url: str, client: httpx2.AsyncClient, service: ChatService) -> None:
        self.base_url = base_url
        self.client = client
        self.service = service


async def serve(
    service: ChatService, *, wrap: Callable[[ASGIApp], ASGIApp] | None = None, **host_options: object
) -> AsyncIterator[RelayServer]:
    """The relay on a socket of 127.0.0.1, its app wrapped in `wrap` (a test's middleware) if given."""
    already_running = asyncio.all_tasks()  # such as another instance's server
    app: ASGIApp = build_asgi_app(http_functions(function_app.create_app(service)), **host_options)  # type: ignore[arg-type]
    if wrap is not None:
        app = wrap(app)
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    # The socket listens already: a client that connects first waits in the backlog.
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(base_url=base_url, timeout=10) as client:
            yield RelayServer(base_url, client, service)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await service.aclose()
        sock.close()
    # uvicorn cancels the requests still running after its graceful shutdown and does not wait
    # for them: each may take a moment to unwind; a task still there after that was left behind.
    ending = [task for task in asyncio.all_tasks() - already_running if task is not asyncio.current_task()]
    _, leaked = await asyncio.wait(ending, timeout=1) if ending else (set(), set())
    assert not leaked, f"leaked tasks: {leaked}"


@pytest.fixture
async def relay(upstream: FaultyUpstream, make_settings: Callable[..., Settings]) -> AsyncIterator[RelayServer]:
    async for server in serve(ChatService(make_settings(HEARTBEAT_SECONDS="5"))):
        yield server


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedUpstream]:
    """The second, independent test upstream: each reply scripted by the test, each request kept."""
    server = ScriptedUpstream()
    await server.start()
    yield server
    await server.aclose()


@pytest.fixture
async def ingestion() -> AsyncIterator[Ingestion]:
    """An Application Insights ingestion endpoint on 127.0.0.1 that keeps what it receives."""
    server = Ingestion()
    await server.start()
    yield server
    await server.aclose()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (cert.pem, key.pem), made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key
