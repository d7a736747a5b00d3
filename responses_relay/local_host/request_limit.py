"""Azure's front-end cut, played by the local host (`--request-limit SECONDS`).

In Azure, the front end in front of a Function App ends any HTTP request that has not
finished after 230 seconds: with a 502 when no response has started, by closing the
connection when one is streaming. This middleware does the same after the given time,
so that tests and `scripts/run` can show what a stream does before (and without) it.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import FRONT_END_TIMEOUT, error_response

logger = logging.getLogger("responses_relay.local_host")


class FrontEndCut(Exception):
    """Raised to make uvicorn drop a connection whose response had started."""


class _QuietCut(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], FrontEndCut))


logging.getLogger("uvicorn.error").addFilter(_QuietCut())


class RequestLimit:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, watched)
                return
        except TimeoutError:
            logger.warning("the front end cut %s %s after %g s", scope["method"], scope["path"], self.seconds)
        if started:
            raise FrontEndCut
        message = f"The request did not finish within {self.seconds:g} seconds"
        await error_response(FRONT_END_TIMEOUT, message)(scope, receive, send)
