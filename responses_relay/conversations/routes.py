"""What /api/conversations and /api/conversations/{id} answer, for the caller's owner hash, and
what a chat in a conversation needs of it.

Someone else's conversation is `conversation_not_found`, exactly as an unknown one: a user's
rows are in a partition of their own. A conversation lives as long as its row and its upstream
object; reading the list deletes those not updated for `retention_days` (after the answer).
A storage account that cannot be reached is 503 `conversations_unavailable`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable
from typing import Any

import orjson
from azure.core.exceptions import AzureError
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..chat_request import CONVERSATION_ID, check_content_type, check_conversation_id, read_body
from ..errors import (
    ANSWER_IN_PROGRESS,
    CONVERSATION_NOT_FOUND,
    CONVERSATIONS_DISABLED,
    INVALID_CURSOR,
    INVALID_JSON,
    INVALID_REQUEST,
    UPSTREAM_BAD_RESPONSE,
    UPSTREAM_NOT_FOUND,
    HttpError,
)
from ..settings import ConversationSettings
from ..storage.conversations import ConversationIndex, ConversationRow
from ..storage.tables import Tables
from ..upstream import Upstream
from .answer import ConversationChat
from .api import ConversationApi, bounded
from .messages import messages
from .regenerate import Regeneration, plan
from .unreachable import reaching_the_index

MAX_TITLE_CHARS = 200
DEFAULT_PAGE = 20
MAX_PAGE = 100
_CURSOR = re.compile(r"([0-9]{1,15})\.(" + CONVERSATION_ID.pattern + ")")  # `next`: a row's update time and id
_RENAME_BODY_BYTES = 4096
_DAY_MS = 86_400_000
_ENDED = frozenset({"completed", "incomplete", "failed", "cancelled"})

logger = logging.getLogger("responses_relay.conversations")


class Conversations:
    def __init__(self, settings: ConversationSettings, tables: Tables, *, resumable: bool) -> None:
        self._settings = settings
        self._index = ConversationIndex(tables)
        self._resumable = resumable  # background mode: an answer goes on after its reader left
        self.available = True  # auto: until the model service answers the first create with 404 or 405

    async def collection(self, request: Request, owner: str, upstream: Upstream) -> Response:
        """POST /api/conversations creates one; GET lists the caller's."""
        async with reaching_the_index():
            if request.method == "POST":
                return await self._create(owner, upstream)
            return await self._list(request, owner, upstream)

    async def item(self, request: Request, owner: str, conversation_id: str, upstream: Upstream) -> Response:
        """GET /api/conversations/{id} with its messages; PATCH renames; DELETE deletes it for good."""
        check_conversation_id(conversation_id)
        async with reaching_the_index():
            if request.method == "PATCH":
                title = await _title(request)
                return _summary(await self._owned(self._index.rename(owner, conversation_id, title)))
            row = await self._owned(self._index.get(owner, conversation_id))
            if request.method == "DELETE":
                await self._purge(owner, row, upstream)
                return Response(status_code=204, headers={"Cache-Control": "no-store"})
            return await self._conversation(owner, row, upstream)

    async def chat(self, owner: str, conversation_id: str) -> ConversationChat:
        """A chat in the conversation; 404 for an unknown one, or someone else's."""
        async with reaching_the_index():
            row = await self._owned(self._index.get(owner, conversation_id))
        return self._chat(owner, row)

    async def regeneration(self, owner: str, conversation_id: str, named: str, upstream: Upstream) -> Regeneration:
        """A regenerate of the conversation's last answer, which the caller names by its response
        `named` (see regenerate.py): 404 for an unknown conversation, or someone else's; 409 while
        an answer is being generated, or when `named` does not end the last answer. Nothing is
        changed yet."""
        async with reaching_the_index():
            row = await self._owned(self._index.get(owner, conversation_id))
            active = row.active_response_id
            if active is not None and await self._answering(owner, row, active, upstream):
                raise HttpError(ANSWER_IN_PROGRESS, "The conversation's answer is still being generated")
            items = await ConversationApi(upstream).last_exchange(row.id)
            first_outputs = await self._first_outputs(owner, row, upstream)
        exchange = plan(row.responses, named, items, first_outputs)
        return Regeneration(ConversationChat(self._index, owner, row.id, exchange.before), exchange, upstream)

    async def of_response(self, owner: str, response: dict[str, Any]) -> ConversationChat | None:
        """The chat a stored response of the owner's was part of, when it was in a conversation of theirs."""
        conversation = response.get("conversation")
        conversation_id = conversation.get("id") if isinstance(conversation, dict) else None
        if not isinstance(conversation_id, str) or not CONVERSATION_ID.fullmatch(conversation_id):
            return None
        async with reaching_the_index():
            row = await self._index.get(owner, conversation_id)
        return None if row is None else self._chat(owner, row)

    def _chat(self, owner: str, row: ConversationRow) -> ConversationChat:
        last = row.responses[-1].response_id if row.responses else None
        return ConversationChat(self._index, owner, row.id, last)

    async def _create(self, owner: str, upstream: Upstream) -> Response:
        api = ConversationApi(upstream)
        try:
            conversation_id = await api.create(owner)
        except HttpError as error:
            if error.code != CONVERSATIONS_DISABLED.code:
                raise
            if self._settings.required:
                raise HttpError(UPSTREAM_NOT_FOUND, "The model service has no Conversations API") from None
            self.available = False
            logger.warning("conversations off for this instance: the model service has no Conversations API")
            raise
        if not CONVERSATION_ID.fullmatch(conversation_id):
            raise HttpError(UPSTREAM_BAD_RESPONSE, "The model service sent a conversation id the relay cannot use")
        try:
            row = await self._index.create(owner, conversation_id, _now_ms())
        except AzureError:
            await _quietly(api.delete(conversation_id))  # nothing refers to it
            raise
        return JSONResponse(row.summary(), status_code=201, headers={"Cache-Control": "no-store"})

    async def _list(self, request: Request, owner: str, upstream: Upstream) -> Response:
        limit = _limit(request.query_params.get("limit"))
        after = _cursor(request.query_params.get("after"))
        rows = await self._index.all(owner)
        expired = [row for row in rows if self._expired(row)]
        ordered = sorted((row for row in rows if not self._expired(row)), key=_place, reverse=True)
        if after is not None:
            ordered = [row for row in ordered if _place(row) < after]
        page = ordered[:limit]
        has_more = len(ordered) > limit
        body = {
            "data": [row.summary() for row in page],
            "has_more": has_more,
            "next": _next(page[-1]) if has_more else None,
        }
        answer = JSONResponse(body, headers={"Cache-Control": "no-store"})
        if expired:
            answer.background = BackgroundTask(self._purge_expired, owner, [row.id for row in expired], upstream)
        return answer

    def _expired(self, row: ConversationRow) -> bool:
        days = self._settings.retention_days
        return days is not None and row.updated_ms < _now_ms() - days * _DAY_MS

    async def _conversation(self, owner: str, row: ConversationRow, upstream: Upstream) -> Response:
        api = ConversationApi(upstream)
        try:
            items = await api.items(row.id)
        except HttpError as error:
            if error.code == CONVERSATION_NOT_FOUND.code:  # gone upstream (its own retention): gone here too
                await self._purge(owner, row, upstream)
            raise
        active = row.active_response_id
        if active is not None:
            active, items = await self._with_active(owner, row, active, items, api, upstream)
        first_outputs = await self._first_outputs(owner, row, upstream)
        body = {**row.summary(), "active_response_id": active, "messages": messages(items, first_outputs)}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _with_active(
        self,
        owner: str,
        row: ConversationRow,
        active: str,
        items: list[dict[str, Any]],
        api: ConversationApi,
        upstream: Upstream,
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """The answer being generated, if it still is, and the items with its question. Items join a
        conversation when a response ends, so the question comes from the response's own input
        items; one that ended meanwhile is cleared, and its items read."""
        if not await self._answering(owner, row, active, upstream):
            last = items[-1].get("id") if items else None
            return None, items + await api.items(row.id, after=last if isinstance(last, str) else None)
        seen = {item.get("id") for item in items}
        return active, items + [item for item in await api.input_items(active) if item.get("id") not in seen]

    async def _answering(self, owner: str, row: ConversationRow, active: str, upstream: Upstream) -> bool:
        """Whether the conversation's active answer, `active`, is still being made; one that has
        ended is cleared from its row."""
        response = await _retrieved(upstream, active)
        if response is None or not self._goes_on(response):
            await self._index.end_response(owner, row.id, active)
            return False
        return True

    def _goes_on(self, response: dict[str, Any]) -> bool:
        """Whether the answer the response is part of is still being made: it is generating, or (in
        background mode) it completed asking for function calls its resume will run."""
        status = response.get("status")
        if status not in _ENDED:
            return True
        output = response.get("output")
        kinds = {item.get("type") for item in output if isinstance(item, dict)} if isinstance(output, list) else set()
        return (
            self._resumable
            and status == "completed"
            and "function_call" in kinds
            and "mcp_approval_request" not in kinds
        )

    async def _first_outputs(self, owner: str, row: ConversationRow, upstream: Upstream) -> dict[str, str]:
        """Response ids by their first output item's id; those not known yet are read (and kept
        once their response has ended)."""
        unknown = [entry.response_id for entry in row.responses if entry.first_output is None]
        found = dict(
            zip(unknown, await bounded(_first_output(upstream, response_id) for response_id in unknown), strict=True)
        )
        ended = {response_id: first for response_id, (first, done) in found.items() if done}
        if ended:
            await self._index.note_first_outputs(owner, row.id, ended)
        firsts = {entry.response_id: entry.first_output for entry in row.responses if entry.first_output is not None}
        firsts |= {response_id: first for response_id, (first, _) in found.items()}
        return {first: response_id for response_id, first in firsts.items() if first}

    async def _purge(self, owner: str, row: ConversationRow, upstream: Upstream) -> None:
        """Delete the conversation for good: its answer being generated stopped (background mode),
        every stored response of it (those of answers regenerated away too), the upstream
        conversation, then its row (last, so a failure leaves it to delete again)."""
        api = ConversationApi(upstream)
        if row.active_response_id is not None and self._resumable:
            await _quietly(upstream.cancel(row.active_response_id))
        responses = [*(entry.response_id for entry in row.responses), *row.dropped]
        await bounded(api.delete_response(response_id) for response_id in responses)
        await api.delete(row.id)
        await self._index.delete(owner, row.id)

    async def _purge_expired(self, owner: str, conversation_ids: list[str], upstream: Upstream) -> None:
        """After a list: delete the conversations past their retention. Never raises."""
        for conversation_id in conversation_ids:
            try:
                row = await self._index.get(owner, conversation_id)
                if row is not None and self._expired(row):
                    await self._purge(owner, row, upstream)
            except Exception as error:
                logger.warning("an expired conversation was not deleted: %s", type(error).__name__)

    @staticmethod
    async def _owned(finding: Awaitable[ConversationRow | None]) -> ConversationRow:
        """The row found; 404 when there is none (someone else's is not found either: it is not in their partition)."""
        row = await finding
        if row is None:
            raise HttpError(CONVERSATION_NOT_FOUND, "No conversation has that id")
        return row


async def _title(request: Request) -> str:
    check_content_type(request)
    try:
        document = orjson.loads(await read_body(request, _RENAME_BODY_BYTES))
    except orjson.JSONDecodeError:
        raise HttpError(INVALID_JSON, "The body is not valid UTF-8 JSON") from None
    if not isinstance(document, dict) or set(document) != {"title"}:
        raise HttpError(INVALID_REQUEST, 'The body must be {"title": "..."}', param="title")
    title = document["title"]
    if not isinstance(title, str) or not title.strip() or len(title.strip()) > MAX_TITLE_CHARS:
        raise HttpError(INVALID_REQUEST, f"'title' must be 1 to {MAX_TITLE_CHARS} characters", param="title")
    if not title.isprintable():
        raise HttpError(INVALID_REQUEST, "'title' must be one line, without control characters", param="title")
    return title.strip()


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise HttpError(INVALID_REQUEST, f"'limit' must be a whole number from 1 to {MAX_PAGE}", param="limit")
    return int(raw)


def _cursor(raw: str | None) -> tuple[int, str] | None:
    if raw is None:
        return None
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise HttpError(INVALID_CURSOR, "'after' must be the 'next' of a page of this list")
    return int(match[1]), match[2]


def _place(row: ConversationRow) -> tuple[int, str]:
    """Where a row is in the list: newest update first, then by id."""
    return row.updated_ms, row.id


def _next(row: ConversationRow) -> str:
    return f"{row.updated_ms}.{row.id}"


def _summary(row: ConversationRow) -> Response:
    return JSONResponse(row.summary(), headers={"Cache-Control": "no-store"})


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _retrieved(upstream: Upstream, response_id: str) -> dict[str, Any] | None:
    """A stored response; None when it is not (or no longer) stored."""
    try:
        return await upstream.retrieve(response_id)
    except HttpError as error:
        if error.status == 404:
            return None
        raise


async def _first_output(upstream: Upstream, response_id: str) -> tuple[str, bool]:
    """The id of a response's first output item ("" for none) and whether the response has ended
    (a response no longer stored has, with none)."""
    response = await _retrieved(upstream, response_id)
    if response is None:
        return "", True
    output = response.get("output")
    first = output[0].get("id") if isinstance(output, list) and output and isinstance(output[0], dict) else None
    return (first if isinstance(first, str) else ""), response.get("status") in _ENDED


async def _quietly(call: Awaitable[object]) -> None:
    """A call whose failure changes nothing for the caller (it is logged)."""
    try:
        await call
    except Exception as error:
        logger.info("a clean-up call failed: %s", type(error).__name__)
