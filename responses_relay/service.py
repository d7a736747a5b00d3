"""What the routes call: request handling for /api/chat and /api/health."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .chat_request import check_content_type, parse_chat_request, read_body
from .errors import HttpError, error_response
from .events import Translator
from .invocation import INVOCATION_ID_HEADER
from .relay import RelayStream, SSEResponse
from .settings import Settings
from .upstream import Upstream, check_proxy_environment

if TYPE_CHECKING:  # imported when used: a configuration with an endpoint never needs the demo upstream
    from azure.core.credentials_async import AsyncTokenCredential

    from .demo import DemoUpstream

logger = logging.getLogger("responses_relay")

_shared_demo: DemoUpstream | None = None


class ChatService:
    def __init__(
        self,
        settings: Settings,
        *,
        demo: DemoUpstream | None = None,
        credential: AsyncTokenCredential | None = None,
    ) -> None:
        self.settings = settings
        self._demo = demo
        self._credential = credential
        self._upstream: Upstream | None = None
        self._lock = asyncio.Lock()
        check_proxy_environment(settings)
        transport = "lean (httptools)" if settings.transport == "lean" else "httpx (httpx2's own)"
        logger.info("upstream: %s, model %s, transport %s", settings.upstream_kind, settings.model, transport)
        if settings.endpoint is None:
            logger.warning("DEMO MODE: OPENAI_ENDPOINT is not set, answers come from the built-in demo upstream")

    async def chat(self, request: Request) -> Response:
        try:
            check_content_type(request)
            body = await read_body(request, self.settings.max_body_bytes)
            chat_request = parse_chat_request(body, self.settings)
            upstream = await self.upstream()
            response = await upstream.open(chat_request)
        except HttpError as error:
            logger.info("chat refused: %d %s", error.status, error.code)
            return error.to_response()
        except Exception:
            logger.exception("chat failed before the stream started")
            return error_response(500, "internal_error", "The relay failed; the failure is logged")
        stream = RelayStream(
            response,
            Translator(redact=upstream.redact),
            heartbeat_seconds=self.settings.heartbeat_seconds,
            buffer_bytes=self.settings.buffer_bytes,
            invocation_id=request.headers.get(INVOCATION_ID_HEADER),
        )
        return SSEResponse(stream)

    def health(self) -> Response:
        settings = self.settings
        return JSONResponse({"status": "ok", "upstream": settings.upstream_kind, "model": settings.model})

    async def upstream(self) -> Upstream:
        """The upstream client, made on first use inside the serving event loop."""
        if self._upstream is not None:
            return self._upstream
        async with self._lock:
            if self._upstream is None:
                if self.settings.endpoint is not None:
                    base_url = self.settings.endpoint
                else:
                    base_url = await asyncio.to_thread(self._demo_upstream().start)
                self._upstream = Upstream(self.settings, base_url, credential=self._credential)
            return self._upstream

    def _demo_upstream(self) -> DemoUpstream:
        global _shared_demo
        if self._demo is None:
            if _shared_demo is None:
                from .demo import DemoUpstream

                _shared_demo = DemoUpstream(self.settings.demo_delta_seconds)
            self._demo = _shared_demo
        return self._demo

    async def aclose(self) -> None:
        if self._upstream is not None:
            await self._upstream.aclose()
            self._upstream = None
