"""The HTTP response that sends a relayed stream as Server-Sent Events, and notices the
caller leaving even while nothing is being sent."""

from __future__ import annotations

import asyncio
from contextlib import aclosing, suppress

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .disconnect import until_disconnected
from .relay import RelayStream

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


class SSEResponse(Response):
    """Streams a RelayStream, watching for the client to leave while upstream is quiet; then runs
    its `background` task, if any, as Starlette's responses do."""

    def __init__(self, stream: RelayStream) -> None:
        # Not Response.__init__: it would render an empty body with Content-Length: 0.
        self.stream = stream
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **stream.encoder.headers})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.get_running_loop().create_task(self._watch(receive))
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async with aclosing(self.stream.body()) as body:
                async for chunk in body:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # uvicorn's ClientDisconnected: the client left while we wrote
            self.stream.client_left()
        finally:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
            await self.stream.aclose()
            if self.background is not None:  # what needs the ended stream, such as its usage
                await self.background()

    async def _watch(self, receive: Receive) -> None:
        await until_disconnected(receive)
        self.stream.client_left()
