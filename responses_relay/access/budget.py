"""A daily token budget per user (USER_DAILY_TOKENS), kept in Azure Table Storage: the
Function App's own storage account, reached with its managed identity (locally and in the
tests, the Azurite emulator through a connection string).

One entity per user and UTC day (PartitionKey: the day, RowKey: the owner hash) counts the
tokens of the user's finished responses, each once (a mark per response: PartitionKey the
owner hash, RowKey the response id), however often its stream is resumed or replayed. Each
stream's final usage is added with optimistic concurrency (read, then replace only if the
ETag is unchanged, else read again), so instances adding at once never lose a count. A chat
is refused with 429 `budget_exceeded` while the day's count is at or over the budget, until
the next UTC midnight.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import EdmType, EntityProperty, UpdateMode

from ..errors import BUDGET_EXCEEDED, BUDGET_UNAVAILABLE, HttpError
from ..events import Translator
from ..storage.tables import Tables

TABLE = "relaybudgets"
_ADD_SECONDS = 30.0  # how long an addition keeps retrying under contention before it is logged as lost
_MAX_BACKOFF_SECONDS = 0.2

logger = logging.getLogger("responses_relay.budget")


class Budget:
    def __init__(self, daily_tokens: int, tables: Tables) -> None:
        self.daily_tokens = daily_tokens
        self._tables = tables
        self._table = tables.client(TABLE)
        self._unsaved: dict[tuple[str, str], int] = {}  # tokens not yet written, by (day, owner)
        self._saving: set[tuple[str, str]] = set()  # (day, owner) being written by a call of _add

    async def check(self, owner: str) -> None:
        """429 `budget_exceeded` when the owner has used today's budget (503 when the table is unreachable)."""
        now = datetime.now(UTC)
        try:
            used = await self._used(_day(now), owner)
        except AzureError as error:
            logger.warning("budget table unreachable: %s", type(error).__name__)
            raise HttpError(BUDGET_UNAVAILABLE, "The token budget cannot be checked right now; retry later") from None
        if used >= self.daily_tokens:
            raise HttpError(
                BUDGET_EXCEEDED,
                f"Today's budget of {self.daily_tokens} tokens is used up; it renews at midnight UTC",
                retry_after=_seconds_to_midnight(now),
            )

    async def spend(self, owner: str, translator: Translator) -> None:
        """After a stream: add its final usage to the owner's count for today. Never raises."""
        tokens = (translator.usage or {}).get("total_tokens", 0)
        if tokens <= 0 or translator.response_id is None:
            return
        try:
            if await self._counted_before(owner, translator.response_id):
                return
        except Exception as error:
            logger.error("budget: %d tokens not counted: %s", tokens, type(error).__name__)
            return
        await self._add(_day(datetime.now(UTC)), owner, tokens)

    async def _counted_before(self, owner: str, response_id: str) -> bool:
        """Mark the response as counted; True if it was already (a resumed or replayed stream of it
        ends with the same usage). The marks live in the owner's own partition of the table."""
        await self._ensure_table()
        try:
            await self._table.create_entity({"PartitionKey": owner, "RowKey": response_id})
        except ResourceExistsError:
            return True
        return False

    async def _used(self, day: str, owner: str) -> int:
        await self._ensure_table()
        try:
            entity = await self._table.get_entity(day, owner)
        except ResourceNotFoundError:
            return 0
        return _tokens(entity)

    async def _add(self, day: str, owner: str, tokens: int) -> None:
        """Add to the count. This instance writes one user's count one call at a time: tokens
        that arrive meanwhile are added by the call already writing, in its next round, so
        the instance's own streams never contend for the entity, only other instances do."""
        key = (day, owner)
        self._unsaved[key] = self._unsaved.get(key, 0) + tokens
        if key in self._saving:
            return
        self._saving.add(key)
        try:
            while (batch := self._unsaved.pop(key, 0)) > 0:
                try:
                    await self._add_with_retries(day, owner, batch)
                except Exception as error:
                    logger.error("budget: %d tokens not counted: %s", batch, type(error).__name__)
        finally:
            self._saving.discard(key)

    async def _add_with_retries(self, day: str, owner: str, tokens: int) -> None:
        await self._ensure_table()
        deadline = time.monotonic() + _ADD_SECONDS
        attempt = 0
        while True:
            try:
                await self._add_once(day, owner, tokens)
                return
            except (ResourceModifiedError, ResourceExistsError):  # another instance counted first
                if time.monotonic() > deadline:
                    raise
            attempt += 1
            # Jittered backoff spreads the contenders out; a retry reads the new count and ETag.
            await asyncio.sleep(random.uniform(0, min(_MAX_BACKOFF_SECONDS, 0.005 * 2**attempt)))

    async def _add_once(self, day: str, owner: str, tokens: int) -> None:
        try:
            entity = await self._table.get_entity(day, owner)
        except ResourceNotFoundError:
            await self._table.create_entity(_entity(day, owner, tokens))  # ResourceExistsError when raced
            return
        await self._table.update_entity(
            _entity(day, owner, _tokens(entity) + tokens),
            mode=UpdateMode.REPLACE,
            etag=entity.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )

    async def _ensure_table(self) -> None:
        await self._tables.ensure(TABLE)


def _entity(day: str, owner: str, tokens: int) -> dict[str, Any]:
    return {"PartitionKey": day, "RowKey": owner, "tokens": EntityProperty(tokens, EdmType.INT64)}


def _tokens(entity: dict[str, Any]) -> int:
    value = entity.get("tokens", 0)
    value = value.value if isinstance(value, EntityProperty) else value
    return value if isinstance(value, int) else 0


def _day(now: datetime) -> str:
    return now.strftime("%Y-%m-%d")


def _seconds_to_midnight(now: datetime) -> int:
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))
