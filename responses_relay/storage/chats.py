"""Each user's chats and the answer each is generating, in table `relaychats`
(PartitionKey: the owner hash; RowKey: the chat's id, the caller's or a conversation's).

A chat's `active_response_id` is set when an answer starts and cleared when it ends (only
if it still names that answer: a newer one may have started meanwhile), so that another
device or instance finds the answer to resume. Its end may be noted first (`active_ended_at`):
a caller cut near the end of an answer may not have it all, though the stream sent it.
Conditional writes (ETags) keep two instances from undoing each other. A conversation's index row is this same row, with
fields of its own beside these (merged, never replaced).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from .tables import Tables

TABLE = "relaychats"
ACTIVE = "active_response_id"
ACTIVE_MESSAGE = "active_message_id"  # the front end's message the answer is written into, where it has one
ENDED = "active_ended_at"  # when a stream ended the active answer (time.time()); 0: it has not


class ChatRecords:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def set_active(self, owner: str, chat_id: str, response_id: str, *, message_id: str | None = None) -> None:
        """The chat's answer being generated is now `response_id` (its first response), written into
        the front end's message `message_id` (None: one named after the response)."""
        table = await self._tables.ensure(TABLE)
        entity = {"PartitionKey": owner, "RowKey": chat_id, ACTIVE: response_id, ACTIVE_MESSAGE: message_id or "",
                  ENDED: 0.0}  # fmt: skip
        await table.upsert_entity(entity, mode=UpdateMode.MERGE)

    async def active(self, owner: str, chat_id: str) -> str | None:
        """The chat's answer being generated, if any (someone else's chat has none)."""
        entity = await self.get(owner, chat_id)
        value = entity.get(ACTIVE) if entity is not None else None
        return value if isinstance(value, str) and value else None

    async def clear_active(self, owner: str, chat_id: str, response_id: str) -> None:
        """The answer `response_id` ended: the chat has no active answer, unless a newer one started."""
        await self.update(owner, chat_id, lambda row: {ACTIVE: ""} if row.get(ACTIVE) == response_id else None)

    async def end_active(self, owner: str, chat_id: str, response_id: str) -> None:
        """A stream ended the answer `response_id`: noted once (when it ended first), if it is still active."""
        noted = time.time()
        await self.update(
            owner,
            chat_id,
            lambda row: {ENDED: noted} if row.get(ACTIVE) == response_id and not row.get(ENDED) else None,
        )

    async def update(
        self, owner: str, chat_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Merge into the chat's row the fields `change` makes of it (None: no change), read and
        written again if another writer changed the row meanwhile; the row as written, or None when
        there is no row (an update never makes one)."""
        table = await self._tables.ensure(TABLE)
        while True:
            try:
                entity = await table.get_entity(owner, chat_id)
            except ResourceNotFoundError:
                return None
            fields = change(dict(entity))
            if fields is None:
                return dict(entity)
            try:
                await table.update_entity(
                    {"PartitionKey": owner, "RowKey": chat_id, **fields},
                    mode=UpdateMode.MERGE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:  # changed meanwhile: look again
                continue
            except ResourceNotFoundError:  # deleted meanwhile
                return None
            return {**entity, **fields}

    async def get(self, owner: str, chat_id: str) -> dict[str, Any] | None:
        """The chat's row, or None."""
        table = await self._tables.ensure(TABLE)
        try:
            return dict(await table.get_entity(owner, chat_id))
        except ResourceNotFoundError:
            return None
