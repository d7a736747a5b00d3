"""An answer's state across instances, in table `relayanswers` (PartitionKey: the owner hash;
RowKey: the answer's id, which every round's response carries in `metadata.answer`).

An answer is one question's rounds: its first response and each response that continues it
after tool calls. One row per answer, written only when something needs it:

- **Continuing a round** (`claim`, then `opened`): the stream that reads a round's end asking
  for tools claims its continuation with a conditional write, runs the calls, and records the
  next round with the calls' results and the ended round's usage. Another reader of that round
  (a second tab, a resume on another instance) finds the claim and follows: it waits for the
  next round and passes on the recorded results, so each call runs once. A claim not followed
  by its round within `claim_seconds` (its instance died) may be taken over.
- **Stopping it** (`cancel`): a cancel of any of its responses marks the answer, on any
  instance; a stream checks the mark before it opens a round, and a round opened meanwhile is
  seen by the conditional write that records it (the stream then cancels that round).
- **Its usage**: every round that was continued keeps its usage here, so a stream that read only
  the last rounds (after a hand-off) still ends with the answer's whole usage.

Every write is conditional on the row's ETag and read again on a conflict, so two instances
never undo each other's write.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from ..answer import AnswerRow, Cancelled, Claim, Follow, Owned, RecordedResult
from .tables import Tables

TABLE = "relayanswers"
MAX_RESULTS_CHARS = 30_000  # a round's recorded results, in all (a table property holds 32K characters)
KEPT_RESULTS = 8  # the results of this many latest rounds are kept (an entity holds 1 MiB)
_POLL_SECONDS = (0.05, 0.1, 0.2, 0.5)  # between reads while another reader continues a round


class AnswerRecords:
    def __init__(self, tables: Tables, *, claim_seconds: float) -> None:
        self._tables = tables
        self._claim_seconds = claim_seconds

    async def get(self, owner: str, answer_id: str) -> AnswerRow:
        """The answer's row (an empty one when none was written yet)."""
        table = await self._tables.ensure(TABLE)
        try:
            entity = await table.get_entity(owner, answer_id)
        except ResourceNotFoundError:
            return AnswerRow()
        return _row(entity)

    async def claim(self, owner: str, answer_id: str, round_id: str, *, wait_seconds: float) -> Claim:
        """Claim the continuation of `round_id`, or follow the reader that has it: wait up to
        `wait_seconds` for its next round, then take the claim over."""
        deadline = time.monotonic() + wait_seconds
        polls = 0
        while True:
            row = await self.get(owner, answer_id)
            following = row.next_after(round_id)
            if row.cancelled:
                return Cancelled()
            if following is not None:
                return Follow(following, row.results.get(round_id, []))
            fresh = row.claimed == round_id and time.time() - row.claimed_at < self._claim_seconds
            if fresh and time.monotonic() < deadline:
                await asyncio.sleep(_POLL_SECONDS[min(polls, len(_POLL_SECONDS) - 1)])
                polls += 1
                continue
            claimed = replace(row, rounds=row.rounds or (round_id,), claimed=round_id, claimed_at=time.time())
            written = await self._write(owner, answer_id, claimed)
            if written is not None:
                return Owned(written)

    async def opened(
        self,
        owner: str,
        answer_id: str,
        claim: Owned,
        *,
        next_round: str,
        usage: dict[str, int] | None,
        results: list[RecordedResult],
    ) -> bool:
        """Record the round that continues the claimed one, with the calls' results and the
        ended round's usage; False when the answer was cancelled meanwhile (the caller then
        cancels `next_round`)."""
        row = claim.row
        ended = row.claimed
        assert ended is not None, "a claim names its round"
        while True:
            if row.cancelled:
                return False
            recorded = replace(
                row,
                rounds=tuple(dict.fromkeys([*row.rounds, ended, next_round])),
                usage={**row.usage, ended: usage} if usage is not None else row.usage,
                results={**row.results, ended: _bounded(results)},
            )
            if await self._write(owner, answer_id, recorded) is not None:
                return True
            row = await self.get(owner, answer_id)  # changed since: a cancel, most likely

    async def release(self, owner: str, answer_id: str, claim: Owned) -> None:
        """Give up a claim whose round was never opened (the stream ended first), so another reader
        continues the round at once; unless the row changed since."""
        await self._write(owner, answer_id, replace(claim.row, claimed=None, claimed_at=0.0))

    async def cancel(self, owner: str, answer_id: str) -> AnswerRow:
        """Mark the answer stopped; its row (its rounds say which to cancel upstream)."""
        table = await self._tables.ensure(TABLE)
        entity = {"PartitionKey": owner, "RowKey": answer_id, "cancelled": True}
        await table.upsert_entity(entity, mode=UpdateMode.MERGE)
        return await self.get(owner, answer_id)

    async def _write(self, owner: str, answer_id: str, row: AnswerRow) -> AnswerRow | None:
        """Write the row if it is still as read (created if there was none); the row with its new
        ETag, or None when another write came first."""
        table = await self._tables.ensure(TABLE)
        entity = {"PartitionKey": owner, "RowKey": answer_id, **_fields(row)}
        try:
            if row.etag is None:
                metadata = await table.create_entity(entity)
            else:
                metadata = await table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=row.etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError):
            return None
        return replace(row, etag=str(metadata["etag"]))


def _fields(row: AnswerRow) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "rounds": _json(list(row.rounds)),
        "usage": _json(row.usage),
        "claimed": row.claimed or "",
        "claimed_at": row.claimed_at,
        "cancelled": row.cancelled,
    }
    kept = [round_id for round_id in row.rounds if round_id in row.results][-KEPT_RESULTS:]
    for round_id in kept:  # a property each: one property holds 32K characters
        fields[f"results_{row.rounds.index(round_id)}"] = _json([vars(result) for result in row.results[round_id]])
    return fields


def _row(entity: Any) -> AnswerRow:
    rounds = tuple(str(item) for item in _loads(entity.get("rounds"), []))
    results = {
        round_id: [RecordedResult(**item) for item in _loads(entity.get(f"results_{index}"), [])]
        for index, round_id in enumerate(rounds)
        if f"results_{index}" in entity
    }
    return AnswerRow(
        rounds=rounds,
        usage=_loads(entity.get("usage"), {}),
        results=results,
        claimed=entity.get("claimed") or None,
        claimed_at=float(entity.get("claimed_at") or 0.0),
        cancelled=bool(entity.get("cancelled")),
        etag=entity.metadata["etag"],
    )


def _bounded(results: list[RecordedResult]) -> list[RecordedResult]:
    """The results, each output cut so that a round's fit one table property."""
    share = MAX_RESULTS_CHARS // max(1, len(results)) - 100
    return [replace(result, output=result.output[: max(0, share)]) for result in results]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(value: Any, default: Any) -> Any:
    if not isinstance(value, str) or not value:
        return default
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return default
