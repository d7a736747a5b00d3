"""A daily token budget per user (USER_DAILY_TOKENS) that caps, kept in Azure Table Storage: the
Function App's own storage account (table `relaybudgets`, one partition per owner hash).

Before anything is sent upstream, an answer **reserves** an upper bound of what it can cost (a
hold); before each further round it grows the hold to what that round can cost. A hold is
written in one transaction with the owner's count for the day, on the count's ETag, so any
number of concurrent chats on any number of instances cannot together pass the budget: one
that does not fit is refused (429 `budget_exceeded`).

When the answer ends, the hold is **settled** to what it really cost: the final usage of all
its rounds, or, where that can never be known, an estimate that is at least the real cost. A
hold whose response goes on upstream without a reader (background mode) is **deferred**: it
names that round, and the owner's next chat settles it from the stored response once it has
ended. A hold still open after `EXPIRY_SECONDS` is settled from its stored response, or kept as
charged. Settling twice never counts twice: a later, larger total adds only the difference.

Rows (PartitionKey: the owner hash):
- `day-YYYY-MM-DD`: `charged`, the sum of the day's holds: each open one's reservation, each
  settled one's cost.
- `hold-<answer id>`: its `day`, `state` (open or settled), `tokens` (reserved, while open),
  `counted` (its cost, once settled), and while deferred `spent` (the cost of its ended rounds),
  `pending` (the round running upstream) and `unknown` (that round's cost, estimated, for when
  its stored response tells none).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError
from azure.data.tables import EdmType, EntityProperty

from ..errors import BUDGET_EXCEEDED, BUDGET_UNAVAILABLE, HttpError
from ..storage.batches import PartitionWriter, Rows
from ..storage.tables import Tables

TABLE = "relaybudgets"
EXPIRY_SECONDS = 15 * 60  # a hold still open after this long is settled from its stored response, or as charged
_SWEPT_PER_CHAT = 20  # deferred or expired holds settled before a chat, at most
_FINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})

logger = logging.getLogger("responses_relay.budget")

# A stored response by its id (its status and usage), or None when it cannot be read.
StoredResponse = Callable[[str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Hold:
    """What one answer reserved of its owner's budget."""

    owner: str
    answer_id: str


class Budget:
    def __init__(self, daily_tokens: int, tables: Tables, *, stored_response: StoredResponse) -> None:
        self.daily_tokens = daily_tokens
        self._tables = tables
        self._stored_response = stored_response
        self._writers: dict[str, PartitionWriter] = {}  # by owner, while this instance writes its rows

    def hold(self, owner: str, answer_id: str) -> Hold:
        """The hold of an answer begun earlier (a resume of it)."""
        return Hold(owner, answer_id)

    async def reserve(self, owner: str, answer_id: str, tokens: int) -> Hold:
        """Reserve `tokens` for a new answer; 429 `budget_exceeded` when they do not fit in what is
        left of today's budget, 503 `budget_unavailable` when the table cannot be reached."""
        now = datetime.now(UTC)
        try:
            await self.sweep(owner)
            await self._write(owner, lambda rows: self._reserve(rows, answer_id, tokens, now))
        except AzureError as error:
            logger.warning("budget table unreachable: %s", type(error).__name__)
            raise HttpError(BUDGET_UNAVAILABLE, "The token budget cannot be checked right now; retry later") from None
        return Hold(owner, answer_id)

    async def grow(self, hold: Hold, tokens: int) -> None:
        """Reserve `tokens` more for the answer's next round; HttpError `budget_exceeded` when they
        do not fit (the round is then not opened), `budget_unavailable` when the table cannot be reached."""
        try:
            await self._write(hold.owner, lambda rows: self._grow(rows, hold.answer_id, tokens))
        except AzureError as error:
            logger.warning("budget table unreachable: %s", type(error).__name__)
            raise HttpError(BUDGET_UNAVAILABLE, "The token budget cannot be checked right now") from None

    async def settle(self, hold: Hold, tokens: int) -> None:
        """The answer cost `tokens` in all (so far): its hold is replaced by that. Never raises."""
        try:
            await self._write(hold.owner, lambda rows: self._settle(rows, hold.answer_id, tokens))
        except Exception as error:
            logger.error("budget: an answer's %d tokens were not settled: %s", tokens, type(error).__name__)

    async def account(self, hold: Hold, *, total: int | None, spent: int, running: str | None, unknown: int) -> None:
        """After a stream of the answer, by what it knows of the cost: `total`, the answer's whole usage
        from its final event; `spent`, that of the rounds that ended; `running`, a round still going
        upstream without a reader (background mode); `unknown`, the round it stopped reading, estimated
        (its input, and the output seen). The hold settles to `total`; or, while a round runs, waits for
        that round's stored usage; or else settles to `spent` plus `unknown`. Never raises."""
        if total is not None:
            await self.settle(hold, total)
        elif running is not None:
            await self.defer(hold, spent=spent, pending=running, unknown=unknown)
        else:
            await self.settle(hold, spent + unknown)

    async def defer(self, hold: Hold, *, spent: int, pending: str, unknown: int) -> None:
        """The answer goes on upstream without a reader: its hold stays, naming the round `pending`
        (settled later from its stored response: `spent` plus its usage, or `unknown` without one). Never raises."""
        fields = {"spent": _int64(spent), "pending": pending, "unknown": _int64(unknown)}
        try:
            await self._write(hold.owner, lambda rows: self._mark(rows, hold.answer_id, fields))
        except Exception as error:
            logger.error("budget: a deferred answer's hold was not marked: %s", type(error).__name__)

    async def sweep(self, owner: str) -> None:
        """Settle the owner's deferred holds whose round has ended upstream, and the holds open for
        longer than EXPIRY_SECONDS (from their stored response, else as charged)."""
        table = await self._tables.ensure(TABLE)
        cutoff = time.time() - EXPIRY_SECONDS
        # (The SDK finds a parameter's name up to the next space.)
        query = "PartitionKey eq @owner and state eq 'open' and (pending gt '' or created lt @cutoff )"
        fields = ["RowKey", "created", "pending", "spent", "unknown", "tokens"]
        holds = table.query_entities(query, parameters={"owner": owner, "cutoff": cutoff}, select=fields)
        swept = 0
        async for entity in holds:
            if swept >= _SWEPT_PER_CHAT:
                break
            total = await self._settled_total(entity)
            if total is not None:
                swept += 1
                await self.settle(Hold(owner, str(entity["RowKey"]).removeprefix("hold-")), total)

    async def _settled_total(self, hold: dict[str, Any]) -> int | None:
        """What a hold found by the sweep settles to now, or None while it must stay open."""
        expired = time.time() - float(hold.get("created") or 0.0) > EXPIRY_SECONDS
        pending = hold.get("pending") or None
        if pending is not None:
            response = await self._stored_response(str(pending))
            if response is not None and response.get("status") in _FINAL:
                usage = response.get("usage")
                used = usage.get("total_tokens") if isinstance(usage, dict) else None
                return _value(hold, "spent") + (used if type(used) is int else _value(hold, "unknown"))
        return _value(hold, "tokens") if expired else None

    async def _reserve(self, rows: Rows, answer_id: str, tokens: int, now: datetime) -> None:
        day = _day(now)
        charged = _value(await rows.get(_day_key(day)), "charged")
        if charged + tokens > self.daily_tokens:
            raise _exceeded(self.daily_tokens, charged, tokens, now)
        rows.set(_day_key(day), {"charged": _int64(charged + tokens)})
        hold = {"day": day, "state": "open", "tokens": _int64(tokens), "counted": _int64(0), "created": time.time()}
        rows.set(_hold_key(answer_id), hold)

    async def _grow(self, rows: Rows, answer_id: str, tokens: int) -> None:
        held = await rows.get(_hold_key(answer_id))
        if held is None:  # an answer begun before budgets were kept: it reserves now
            await self._reserve(rows, answer_id, tokens, datetime.now(UTC))
            return
        day = str(held["day"])
        charged = _value(await rows.get(_day_key(day)), "charged")
        if charged + tokens > self.daily_tokens:
            raise _exceeded(self.daily_tokens, charged, tokens, datetime.now(UTC))
        rows.set(_day_key(day), {"charged": _int64(charged + tokens)})
        rows.set(_hold_key(answer_id), {"state": "open", "tokens": _int64(_charge(held) + tokens)})

    async def _settle(self, rows: Rows, answer_id: str, tokens: int) -> None:
        held = await rows.get(_hold_key(answer_id))
        if held is None:
            logger.warning("budget: no reservation to settle for an answer")
            return
        opened = held.get("state") == "open"
        cost = tokens if opened else max(_value(held, "counted"), tokens)
        change = cost - _charge(held)
        if change == 0 and not opened:
            return
        day = str(held["day"])
        rows.set(_day_key(day), {"charged": _int64(_value(await rows.get(_day_key(day)), "charged") + change)})
        rows.set(_hold_key(answer_id), {"state": "settled", "counted": _int64(cost), "pending": ""})

    async def _mark(self, rows: Rows, answer_id: str, fields: dict[str, Any]) -> None:
        if await rows.get(_hold_key(answer_id)) is None:
            logger.warning("budget: no reservation to mark for an answer")
            return
        rows.set(_hold_key(answer_id), fields)

    async def _write(self, owner: str, operation: Callable[[Rows], Awaitable[None]]) -> None:
        """Run `operation` on the owner's rows, in a batch with this instance's others (see batches.py)."""
        writer = self._writers.get(owner)
        if writer is None:
            writer = self._writers[owner] = PartitionWriter(await self._tables.ensure(TABLE), owner)
        try:
            await writer.run(operation)
        finally:
            if not writer.busy and self._writers.get(owner) is writer:
                del self._writers[owner]


def _charge(hold: dict[str, Any]) -> int:
    """What a hold adds to the day's count: its reservation while open, its cost once settled."""
    return _value(hold, "tokens") if hold.get("state") == "open" else _value(hold, "counted")


def _value(fields: dict[str, Any] | None, name: str) -> int:
    value = fields.get(name, 0) if fields is not None else 0
    value = value.value if isinstance(value, EntityProperty) else value
    return value if isinstance(value, int) else 0


def _int64(value: int) -> EntityProperty:
    return EntityProperty(value, EdmType.INT64)


def _exceeded(daily: int, charged: int, tokens: int, now: datetime) -> HttpError:
    left = max(0, daily - charged)
    return HttpError(
        BUDGET_EXCEEDED,
        f"Today's budget of {daily} tokens has {left} left, and this answer may need {tokens};"
        " it renews at midnight UTC",
        retry_after=_seconds_to_midnight(now),
    )


def _day_key(day: str) -> str:
    return f"day-{day}"


def _hold_key(answer_id: str) -> str:
    return f"hold-{answer_id}"


def _day(now: datetime) -> str:
    return now.strftime("%Y-%m-%d")


def _seconds_to_midnight(now: datetime) -> int:
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))
