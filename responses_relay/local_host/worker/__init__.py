"""The real-worker back end: the app runs on the worker Azure runs it on for this
interpreter's version (see `program.py`), driven over gRPC as the Functions host drives it.

Start-up: the worker is spawned with the app as its script root, opens its stream
(`StartStream`), answers `WorkerInitRequest` (indexing the app and starting its own web
server, whose address is the `HttpUri` capability), `FunctionsMetadataRequest` (the
functions it found: routes, methods and auth levels come from here, not from importing
the app) and a `FunctionLoadRequest` per function. Then each HTTP request becomes an
invocation (see `proxy.py`). A worker that exits on its own is reported in one line
and stops the host.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..app import ALL_METHODS, HttpFunction
from ..backend import BackendError
from .channel import WorkerChannel, WorkerGone
from .console import Console
from .process import WorkerProcess
from .program import worker_program
from .proxy import WorkerProxy

_START_TIMEOUT = 60.0


class WorkerError(BackendError):
    """The worker could not serve the app; the message is one line saying why."""


class WorkerBackend:
    def __init__(self, app_dir: Path, *, on_crash: Callable[[str], None], verbose: bool = False) -> None:
        self._app_dir = app_dir
        self._on_crash = on_crash
        self._console = Console(verbose=verbose)
        self._program = worker_program()
        self.name = self._program.name
        self._process = WorkerProcess(app_dir, self._program)
        self._channel: WorkerChannel | None = None
        self._proxy: WorkerProxy | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def start(self) -> list[HttpFunction]:
        channel = self._channel = WorkerChannel(on_log=self._console.log)
        port = await channel.start()
        await self._process.start(port, worker_id=str(uuid.uuid4()), request_id=str(uuid.uuid4()))
        print(f"Functions worker started (pid {self._process.pid})", flush=True)
        exited = asyncio.get_running_loop().create_task(self._process.wait())
        try:
            return await asyncio.wait_for(self._handshake(channel, exited), _START_TIMEOUT)
        except TimeoutError:
            raise WorkerError(f"the Functions worker did not start within {_START_TIMEOUT:g} s") from None
        finally:
            if exited.done():
                self._stopping = True
            else:
                exited.cancel()
                self._watch = asyncio.get_running_loop().create_task(self._watch_exit())

    async def _handshake(self, channel: WorkerChannel, exited: asyncio.Task[int]) -> list[HttpFunction]:
        await _first(channel.connected, exited, "before it connected")
        protos = channel.protos
        app_dir = str(self._app_dir)
        init = channel.call(
            "worker_init_request",
            protos.WorkerInitRequest(host_version="4.0.0", function_app_directory=app_dir),
            "worker_init_response",
        )
        reply = await _first(init, exited, "while it started")
        _check(protos, reply.result, self._program.init_failure)
        listing = channel.call(
            "functions_metadata_request",
            protos.FunctionsMetadataRequest(function_app_directory=app_dir),
            "function_metadata_response",
        )
        # Indexing failures surface here, so this comes before looking for the worker's web server.
        metadata = await _first(listing, exited, "while it indexed the app")
        _check(protos, metadata.result, "could not index function_app.py")
        worker_uri = reply.capabilities.get("HttpUri")
        if not worker_uri:
            raise WorkerError(
                "the Functions worker serves no HTTP streaming (no HttpUri): does function_app.py use the"
                " azurefunctions-extensions-http-fastapi types?"
            )
        self._proxy = WorkerProxy(channel, worker_uri, self._console)
        functions = []
        for function in metadata.function_metadata_results:
            load = channel.call(
                "function_load_request",
                protos.FunctionLoadRequest(function_id=function.function_id, metadata=function),
                "function_load_response",
                key=function.function_id,
            )
            _check(protos, (await _first(load, exited, "while it loaded a function")).result,
                   f"could not load function '{function.name}'")  # fmt: skip
            http = self._http_function(function)
            if http is not None:
                functions.append(http)
        await _first(_until_listening(worker_uri), exited, "before its web server started")
        return functions

    def _http_function(self, metadata: Any) -> HttpFunction | None:
        bindings = [json.loads(raw) for raw in metadata.raw_bindings]
        trigger = next((binding for binding in bindings if binding.get("type") == "httpTrigger"), None)
        if trigger is None:
            return None
        assert self._proxy is not None
        methods = frozenset(str(method).upper() for method in trigger.get("methods") or ()) or ALL_METHODS
        auth_level = str(trigger.get("authLevel") or "function").lower()
        endpoint = self._proxy.endpoint(metadata.function_id, metadata.name, str(trigger["name"]))
        return HttpFunction(metadata.name, trigger.get("route") or metadata.name, methods, auth_level, endpoint)

    async def _watch_exit(self) -> None:
        code = await self._process.wait()
        if self._channel is not None:
            self._channel.fail_pending()
        if not self._stopping:
            self._on_crash(f"the Functions worker exited unexpectedly (exit code {code}); its log is above")

    async def aclose(self) -> None:
        self._stopping = True
        if self._proxy is not None:
            await self._proxy.aclose()
        await self._process.stop()
        if self._watch is not None:
            with suppress(asyncio.CancelledError):
                await self._watch
        if self._channel is not None:
            await self._channel.aclose()


async def _first(awaitable: Any, exited: asyncio.Task[int], when: str) -> Any:
    """`awaitable`'s result, unless the worker exits first."""
    waiting = asyncio.ensure_future(awaitable)
    await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
    if waiting.done() and not isinstance(waiting.exception(), WorkerGone):
        return waiting.result()
    waiting.cancel()
    code = await exited
    raise WorkerError(f"the Functions worker exited {when} (exit code {code}); its log is above")


def _check(protos: Any, result: Any, doing: str) -> None:
    if result.status != protos.StatusResult.Success:
        message = result.exception.message.strip().splitlines() or ["no reason given"]
        raise WorkerError(f"the Functions worker {doing}: {message[-1]}")


async def _until_listening(uri: str) -> None:
    """The worker picks its port, then starts its server in the background: wait for it."""
    parts = urlsplit(uri)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)  # polling a port: there is nothing to wait on instead
            continue
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()
        return
