"""What the routes call: request handling for /api/chat (and resuming and cancelling a
response) and /api/health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .chat_request import check_content_type, check_response_id, cursor, parse_chat_request, read_body
from .errors import INTERNAL_ERROR, NOT_RESUMABLE, RESPONSE_NOT_FOUND, UPSTREAM_REJECTED, HttpError, error_response
from .events import Translator
from .invocation import invocation_id
from .live_streams import LiveStreams
from .relay import Recover, RelayStream
from .settings import Settings
from .sse_response import SSEResponse
from .upstream import TRANSPORT_NAMES, Upstream, check_proxy_environment

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
        self._live = LiveStreams()  # this instance's streams, for a cancel
        check_proxy_environment(settings)
        transport = TRANSPORT_NAMES[settings.transport]
        logger.info("upstream: %s, model %s, transport %s", settings.upstream_kind, settings.model, transport)
        if settings.endpoint is None:
            logger.warning("DEMO MODE: OPENAI_ENDPOINT is not set, answers come from the built-in demo upstream")

    async def chat(self, request: Request) -> Response:
        """POST /api/chat: the answer's stream."""
        return await self._answer("chat", self._chat(request))

    async def resume(self, request: Request, response_id: str) -> Response:
        """GET /api/chat/{response_id}: the response's stream after the caller's last event id."""
        return await self._answer("resume", self._resume(request, response_id))

    async def cancel(self, response_id: str) -> Response:
        """POST /api/chat/{response_id}/cancel: stop generating. In background mode the response is
        cancelled upstream (streams of it on other instances then end too); otherwise the
        response's live stream on this instance is ended, which closes its upstream call."""
        return await self._answer("cancel", self._cancel(response_id))

    async def _chat(self, request: Request) -> Response:
        check_content_type(request)
        body = await read_body(request, self.settings.max_body_bytes)
        chat_request = parse_chat_request(body, self.settings)
        upstream = await self.upstream()
        response = await upstream.open(chat_request)
        return self._relay(request, upstream, response, Translator(redact=upstream.redact))

    async def _resume(self, request: Request, response_id: str) -> Response:
        check_response_id(response_id)
        after = cursor(request)
        self._check_resumable()
        upstream = await self.upstream()
        response = await upstream.resume(response_id, after)
        return self._relay(request, upstream, response, Translator(redact=upstream.redact, response_id=response_id))

    async def _cancel(self, response_id: str) -> Response:
        check_response_id(response_id)
        live = self._live.of_response(response_id)
        if not self.settings.resumable and not live:
            raise HttpError(RESPONSE_NOT_FOUND, "No stream of that response is live on this instance")
        try:
            status = await self._cancel_upstream(response_id) if self.settings.resumable else "cancelled"
        finally:
            # The caller asked to stop: this instance's streams of it end even if the upstream failed to say so.
            for stream in live:
                stream.cancel()
        return JSONResponse({"id": response_id, "status": status}, headers={"Cache-Control": "no-store"})

    async def _cancel_upstream(self, response_id: str) -> str:
        """Cancel a background response upstream; its status after that."""
        upstream = await self.upstream()
        try:
            response = await upstream.cancel(response_id)
        except HttpError as error:
            if error.code != UPSTREAM_REJECTED.code:
                raise
            response = await upstream.retrieve(response_id)  # refused: it had finished already, probably
        return _text(response, "status") or "cancelled"

    async def _answer(self, action: str, answering: Awaitable[Response]) -> Response:
        """The response, or the error known before any byte of it went out, as plain HTTP."""
        try:
            return await answering
        except HttpError as error:
            logger.info("%s refused: %d %s", action, error.status, error.code)
            return error.to_response()
        except Exception:
            logger.exception("%s failed before the stream started", action)
            return error_response(INTERNAL_ERROR, "The relay failed; the failure is logged")

    def _relay(
        self, request: Request, upstream: Upstream, response: httpx2.Response, translator: Translator
    ) -> Response:
        stream = RelayStream(
            response,
            translator,
            heartbeat_seconds=self.settings.heartbeat_seconds,
            buffer_bytes=self.settings.buffer_bytes,
            invocation_id=invocation_id(request),
            recover=_recovery(upstream) if self.settings.resumable else None,
            live=self._live,
        )
        return SSEResponse(stream)

    def _check_resumable(self) -> None:
        if not self.settings.resumable:
            raise HttpError(
                NOT_RESUMABLE, "Responses are not resumable here: the relay runs with RESUMABLE_STREAMS off"
            )

    def health(self) -> Response:
        settings = self.settings
        return JSONResponse(
            {
                "status": "ok",
                "upstream": settings.upstream_kind,
                "model": settings.model,
                "resumable": settings.resumable,
                # Azure OpenAI keeps responses by default (the relay never sends `store: false`; in
                # background mode it sends `store: true`), and the demo answers a follow-up from its
                # question alone: callers continue with `previous_response_id`. An OpenAI-compatible
                # server may keep none (vLLM and Ollama do not by default): callers send the history.
                "stores_responses": settings.resumable or settings.upstream_kind != "openai-compatible",
                "limits": {
                    "max_body_bytes": settings.max_body_bytes,
                    "max_messages": settings.max_messages,
                    "max_message_chars": settings.max_message_chars,
                },
            }
        )

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


def _recovery(upstream: Upstream) -> Recover:
    async def recover(response_id: str, after: int | None) -> httpx2.Response | dict[str, Any]:
        response = await upstream.retrieve(response_id)
        if response.get("status") in ("queued", "in_progress"):
            return await upstream.resume(response_id, after)
        return response

    return recover


def _text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) else None
