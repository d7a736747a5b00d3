"""The host's end of the gRPC stream with one Functions worker.

The worker connects to the host's `FunctionRpc.EventStream` and both sides send
`StreamingMessage`s. The host sends requests (init, metadata, load, invocation) and
waits for the matching responses; the worker also sends `rpc_log` messages at any
time, which go to `on_log`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from .protos import load_protos

# What identifies a response among others of its kind.
_REPLY_KEYS: dict[str, Callable[[Any], str]] = {
    "worker_init_response": lambda reply: "",
    "function_metadata_response": lambda reply: "",
    "function_load_response": lambda reply: str(reply.function_id),
    "invocation_response": lambda reply: str(reply.invocation_id),
}


class WorkerGone(Exception):
    """The worker's stream ended, so a response it owed will never come."""


class WorkerChannel:
    def __init__(self, on_log: Callable[[Any], None]) -> None:
        self.protos = load_protos()
        self._on_log = on_log
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._gone = False
        self._server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        )
        servicer = self.protos.FunctionRpcServicer()
        servicer.EventStream = self._event_stream
        self.protos.add_FunctionRpcServicer_to_server(servicer, self._server)

    async def start(self) -> int:
        """Listen on a free port of 127.0.0.1; returns the port."""
        port = int(self._server.add_insecure_port("127.0.0.1:0"))
        await self._server.start()
        return port

    @property
    def connected(self) -> asyncio.Future[None]:
        """Resolved when the worker has opened its stream (its `StartStream` arrived)."""
        return self._connected

    async def call(self, field: str, request: Any, reply_field: str, key: str = "") -> Any:
        """Send a request and wait for its response: the one of kind `reply_field` with `key`."""
        reply = self.expect(reply_field, key)
        self.send(field, request)
        return await reply

    def expect(self, reply_field: str, key: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._gone:
            future.set_exception(WorkerGone())
        else:
            self._pending[(reply_field, key)] = future
        return future

    def forget(self, reply_field: str, key: str) -> None:
        """Stop waiting for a response that will never come (its request went nowhere)."""
        future = self._pending.pop((reply_field, key), None)
        if future is not None:
            future.cancel()

    def send(self, field: str, message: Any) -> None:
        self._outbox.put_nowait(self.protos.StreamingMessage(request_id=str(uuid.uuid4()), **{field: message}))

    def fail_pending(self) -> None:
        """The worker is gone: every response still awaited, or awaited later, fails."""
        self._gone = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerGone())
        self._pending.clear()

    async def aclose(self) -> None:
        self._outbox.put_nowait(None)
        self.fail_pending()
        await self._server.stop(grace=None)

    async def _event_stream(self, messages: AsyncIterator[Any], context: object) -> AsyncIterator[Any]:
        reader = asyncio.get_running_loop().create_task(self._read(messages))
        try:
            while (message := await self._outbox.get()) is not None:
                yield message
        finally:
            reader.cancel()

    async def _read(self, messages: AsyncIterator[Any]) -> None:
        try:
            async for message in messages:
                self._receive(message)
        finally:
            self.fail_pending()

    def _receive(self, message: Any) -> None:
        field = message.WhichOneof("content")
        if field == "rpc_log":
            self._on_log(message.rpc_log)
        elif field == "start_stream":
            if not self._connected.done():
                self._connected.set_result(None)
        elif field in _REPLY_KEYS:
            reply = getattr(message, field)
            future = self._pending.pop((field, _REPLY_KEYS[field](reply)), None)
            if future is not None and not future.done():
                future.set_result(reply)
