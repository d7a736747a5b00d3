"""HTTP requests passed on to the worker's own web server, as the Functions host does
for HTTP streaming: an `InvocationRequest` over gRPC, and the request itself proxied to
the worker's `HttpUri` with the invocation's id in `x-ms-invocation-id`. Both bodies
stream through; nothing is buffered. A caller who leaves closes the proxied connection,
which is how the function learns of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterable
from contextlib import suppress
from typing import Any

import httpx2
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ... import shutdown
from ...disconnect import until_disconnected
from ...errors import WORKER_UNAVAILABLE, ErrorCode, error_response
from ...invocation import INVOCATION_ID_HEADER
from ..app import Endpoint
from .channel import WorkerChannel, WorkerGone
from .console import Console

logger = logging.getLogger("responses_relay.local_host")
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer"}
    | {"transfer-encoding", "upgrade", "host", INVOCATION_ID_HEADER}
)
# The host's own server writes these.
_SERVER_WRITTEN = frozenset({"date", "server"})


class WorkerProxy:
    def __init__(self, channel: WorkerChannel, worker_uri: str, console: Console) -> None:
        self._channel = channel
        self._console = console
        # No pool limit: every open stream holds a connection, as it does through the Functions host.
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=64)
        timeout = httpx2.Timeout(connect=10.0, read=None, write=None, pool=None)
        self._client = httpx2.AsyncClient(base_url=worker_uri, limits=limits, timeout=timeout, trust_env=False)

    def endpoint(self, function_id: str, function: str, trigger_parameter: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            invocation_id = str(uuid.uuid4())
            self._invoke(request, function_id, function, trigger_parameter, invocation_id)
            forwarded = self._client.build_request(
                request.method,
                request.url.path,
                params=request.url.query,
                headers=[*_forwarded(request.headers.raw), (INVOCATION_ID_HEADER.encode(), invocation_id.encode())],
                content=request.stream(),
            )
            try:
                reply = await self._client.send(forwarded, stream=True)
            except httpx2.TransportError as error:
                logger.warning("the Functions worker did not answer: %s", type(error).__name__)
                self._channel.forget("invocation_response", invocation_id)
                return error_response(WORKER_UNAVAILABLE, "The Functions worker did not answer")
            return ProxiedResponse(reply)

        return endpoint

    def _invoke(self, request: Request, function_id: str, function: str, parameter: str, invocation_id: str) -> None:
        protos = self._channel.protos
        http = protos.RpcHttp(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params={key: str(value) for key, value in request.path_params.items()},
            query=dict(request.query_params),
        )
        invocation = protos.InvocationRequest(
            invocation_id=invocation_id,
            function_id=function_id,
            input_data=[protos.ParameterBinding(name=parameter, data=protos.TypedData(http=http))],
        )
        started = time.monotonic()
        reply = self._channel.expect("invocation_response", invocation_id)
        self._console.executing(function, invocation_id)
        self._channel.send("invocation_request", invocation)

        def executed(reply: asyncio.Future[Any]) -> None:
            duration = (time.monotonic() - started) * 1000
            if reply.cancelled():
                failure: str | None = "the worker's web server did not answer"
            elif isinstance(reply.exception(), WorkerGone):
                failure = "the worker went away"
            else:
                result = reply.result().result
                failure = None if result.status == protos.StatusResult.Success else result.exception.message
            self._console.executed(function, invocation_id, duration, failure)

        reply.add_done_callback(executed)

    async def aclose(self) -> None:
        await self._client.aclose()


class ProxiedResponse(Response):
    """The worker's response, streamed to the caller; the caller leaving closes it."""

    def __init__(self, reply: httpx2.Response) -> None:
        # Not Response.__init__: it would render a body of its own.
        self._reply = reply
        self.status_code = reply.status_code
        self.background = None
        self.raw_headers = [
            (name, value)
            for name, value in reply.headers.raw
            if name.lower().decode() not in _HOP_BY_HOP | _SERVER_WRITTEN
        ]
        self._forwarding: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        self._forwarding = loop.create_task(self._forward(send))
        watcher = loop.create_task(until_disconnected(receive))
        shutdown.started(self)
        try:
            await asyncio.wait({self._forwarding, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            shutdown.ended(self)
            for task in (self._forwarding, watcher):
                task.cancel()
            with suppress(asyncio.CancelledError, OSError, httpx2.TransportError):
                await self._forwarding
            with suppress(asyncio.CancelledError):
                await watcher
            await self._reply.aclose()

    async def _forward(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self._reply.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx2.TransportError as error:
            # The worker's side broke off: end the caller's connection without a clean end of body.
            logger.warning("the Functions worker's response broke off: %s", type(error).__name__)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def shut_down(self, error: ErrorCode, message: str) -> None:
        """The Functions host ends the connections still open, as a recycled instance does."""
        if self._forwarding is not None:
            self._forwarding.cancel()


def _forwarded(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value) for name, value in headers if name.lower().decode() not in _HOP_BY_HOP]
