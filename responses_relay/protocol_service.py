"""What the routes of the other protocols call: the AI SDK's UI message stream
(`/api/ai-sdk/chat`) and AG-UI (`/api/ag-ui`). Each decodes its protocol's request into the
relay's chat request and answers through the one core (`ChatService.answer`,
`ChatService.resume_answer`) with its protocol's encoder.

A chat's active answer (the AI SDK's resume) is kept in the Function App's storage account
(`storage/chats.py`): recorded before the caller learns the answer started, and replayed to a
resume until ENDED_GRACE_SECONDS after a stream of it ended it (a caller cut near the end may
not have it all, though the stream sent it); only with resumable streams, which any instance
can continue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from .chat_request import invalid, read_json
from .errors import INVALID_CURSOR, RESPONSE_NOT_FOUND, HttpError
from .events import Translator
from .protocols.ag_ui import AgUiEncoder, check_run_id, decode_run, parse_cursor
from .protocols.ai_sdk import CHAT_ID, AiSdkEncoder, decode_chat
from .round_views import AnswerStart, SplitAt
from .service import ChatService
from .telemetry.observer import RequestObserver

if TYPE_CHECKING:
    from .storage.chats import ChatRecords

logger = logging.getLogger("responses_relay.protocols")

RECORD_SECONDS = 5.0  # the longest a chat's record may hold up its answer's first event
ENDED_GRACE_SECONDS = 60.0  # how long an answer that ended is still replayed to a resume


def no_content() -> Response:
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


class ActiveAnswer:
    """One chat's answer as its record sees it: set when its first response is known, its end
    noted when a stream of it ends it (not when the caller left or was handed off: it goes on)."""

    def __init__(self, chats: ChatRecords, owner: str, chat_id: str, message_id: str | None) -> None:
        self._chats = chats
        self._owner = owner
        self._chat_id = chat_id
        self._message_id = message_id
        self.response_id: str | None = None

    async def started(self, response_id: str) -> None:
        self.response_id = response_id
        try:
            async with asyncio.timeout(RECORD_SECONDS):  # the caller's first event waits for it
                await self._chats.set_active(self._owner, self._chat_id, response_id, message_id=self._message_id)
        except Exception as error:  # the answer goes on; only a later resume of the chat will not find it
            logger.warning("chat record not written: %s", type(error).__name__)

    async def ended(self, translator: Translator) -> None:
        if self.response_id is None or not translator.finished or translator.outcome == "handed_off":
            return
        try:
            await self._chats.end_active(self._owner, self._chat_id, self.response_id)
        except Exception as error:
            logger.warning("chat record not updated: %s", type(error).__name__)


class ProtocolService:
    def __init__(self, service: ChatService) -> None:
        self._service = service
        self.settings = service.settings
        self._chats: ChatRecords | None = None
        if self.settings.resumable and service.tables is not None:
            from .storage.chats import ChatRecords

            self._chats = ChatRecords(service.tables)

    async def ai_sdk_chat(self, request: Request) -> Response:
        """POST /api/ai-sdk/chat: the answer as a UI message stream."""
        return await self._service.respond("chat", request, partial(self._ai_sdk_chat, request))

    async def ai_sdk_resume(self, request: Request, chat_id: str) -> Response:
        """GET /api/ai-sdk/chat/{id}/stream: the chat's active answer, replayed from its start; 204
        when it has none (or answers cannot be resumed here)."""
        return await self._service.respond("resume", request, partial(self._ai_sdk_resume, request, chat_id))

    async def ag_ui_run(self, request: Request) -> Response:
        """POST /api/ag-ui: the run's AG-UI events."""
        return await self._service.respond("chat", request, partial(self._ag_ui_run, request))

    async def ag_ui_resume(self, request: Request, thread_id: str, run_id: str) -> Response:
        """GET /api/ag-ui/{threadId}/runs/{runId}: the run after its event `Last-Event-ID`."""
        return await self._service.respond("resume", request, partial(self._ag_ui_resume, request, thread_id, run_id))

    async def _ag_ui_run(self, request: Request, observed: RequestObserver) -> Response:
        owner = await self._service.owner(request)
        document = await read_json(request, self.settings.max_body_bytes)
        run = decode_run(document, self.settings, self._service.tool_names)
        encoder = AgUiEncoder(run.thread_id, run.run_id)
        return await self._service.answer(request, run.request, owner, observed, encoder=encoder)

    async def _ag_ui_resume(self, request: Request, thread_id: str, run_id: str, observed: RequestObserver) -> Response:
        owner = await self._service.owner(request)
        check_run_id(thread_id, "threadId")
        check_run_id(run_id, "runId")
        last_event_id = request.headers.get("last-event-id")
        if not last_event_id:
            raise HttpError(INVALID_CURSOR, "Last-Event-ID must be the id of the last event received")
        after = parse_cursor(last_event_id)
        # The round is read again from its start (the events before the cursor set the encoder's
        # state), its batches cut at the cursor so that no merged delta spans it.
        around = partial(SplitAt, sequence=after.position) if after.position >= 0 else None
        encoder = AgUiEncoder(thread_id, run_id, after=after)
        return await self._service.resume_answer(
            request, after.round, None, owner, observed, encoder=encoder, around=around
        )

    async def _ai_sdk_chat(self, request: Request, observed: RequestObserver) -> Response:
        owner = await self._service.owner(request)
        chat = decode_chat(await read_json(request, self.settings.max_body_bytes), self.settings)
        encoder = AiSdkEncoder(chat.message_id, chat.approvals)
        if self._chats is None or owner is None:
            return await self._service.answer(request, chat.request, owner, observed, encoder=encoder)
        active = ActiveAnswer(self._chats, owner, chat.chat_id, chat.message_id)
        around = partial(AnswerStart, started=active.started)
        return await self._service.answer(
            request, chat.request, owner, observed, encoder=encoder, around=around, ended=active.ended
        )

    async def _ai_sdk_resume(self, request: Request, chat_id: str, observed: RequestObserver) -> Response:
        owner = await self._service.owner(request)
        if not CHAT_ID.fullmatch(chat_id):
            raise invalid("The chat id must be 1 to 128 letters, digits, '_' or '-'", "id")
        if self._chats is None or owner is None:
            return no_content()
        row = await self._chats.get(owner, chat_id) or {}
        response_id, message_id = row.get("active_response_id"), row.get("active_message_id")
        if not isinstance(response_id, str) or not response_id:
            return no_content()
        ended_at = row.get("active_ended_at")
        if isinstance(ended_at, float) and ended_at and time.time() - ended_at > ENDED_GRACE_SECONDS:
            await self._chats.clear_active(owner, chat_id, response_id)
            return no_content()
        message_id = message_id if isinstance(message_id, str) and message_id else None
        active = ActiveAnswer(self._chats, owner, chat_id, message_id)
        active.response_id = response_id
        try:
            return await self._service.resume_answer(
                request, response_id, None, owner, observed, encoder=AiSdkEncoder(message_id), ended=active.ended
            )
        except HttpError as error:
            if error.code != RESPONSE_NOT_FOUND.code:
                raise
            await self._chats.clear_active(owner, chat_id, response_id)  # gone upstream: nothing to resume
            return no_content()
