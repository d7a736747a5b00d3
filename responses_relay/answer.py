"""One answer as a stream of it sees it: the answer's id (in every round's `metadata.answer`),
its owner, and, where the Function App's storage keeps it, its record across instances
(`storage/answers.py`): who continues each round, whether it was stopped, each round's usage.

Without that record (no storage, or no owners) an answer lives only in the stream reading it:
each round is continued by that stream, a stop reaches it only on its own instance, and the
usage is what it read itself. So does an answer whose record cannot be reached (the storage
account is down): the answer goes on, as it would on one instance, and the failure is logged.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .tools import ToolResult

if TYPE_CHECKING:  # azure-data-tables is imported only where answers are recorded
    from .storage.answers import AnswerRecords


@dataclass(frozen=True)
class RecordedResult:
    """A tool call's result as the reader that ran it recorded it, for the others."""

    call_id: str
    name: str
    output: str


@dataclass(frozen=True)
class AnswerRow:
    rounds: tuple[str, ...] = ()  # the answer's response ids, in order, from its first continued round
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # by the id of each continued round
    results: dict[str, list[RecordedResult]] = field(default_factory=dict)  # by the id of each continued round
    claimed: str | None = None  # the round whose continuation is claimed
    claimed_at: float = 0.0  # time.time() of the claim
    cancelled: bool = False
    etag: str | None = None  # None: no row yet

    def next_after(self, round_id: str) -> str | None:
        """The round that continues `round_id`, once recorded."""
        if round_id in self.rounds[:-1]:
            return self.rounds[self.rounds.index(round_id) + 1]
        return None


@dataclass(frozen=True)
class Owned:
    """This stream continues the round: it runs the calls and opens the next round."""

    row: AnswerRow  # as the claim left it


@dataclass(frozen=True)
class Follow:
    """Another reader continued the round: the round that follows it, and the calls' results."""

    next_round: str
    results: list[RecordedResult]


@dataclass(frozen=True)
class Cancelled:
    """The answer was stopped: no round starts."""


Claim = Owned | Follow | Cancelled


logger = logging.getLogger("responses_relay.answer")

_Result = TypeVar("_Result")


def new_answer_id() -> str:
    return "ans_" + secrets.token_hex(12)


class Answer:
    def __init__(
        self,
        answer_id: str | None,
        owner: str | None,
        records: AnswerRecords | None = None,
        *,
        follow_seconds: float = 0.0,
    ) -> None:
        """`answer_id` None: a response made before answers were recorded. `follow_seconds`: how
        long a reader waits for another to continue a round before it takes the round over."""
        self.answer_id = answer_id
        self.owner = owner
        self._follow_seconds = follow_seconds
        self._recorded: set[str] = set()  # the rounds this stream recorded as continuing the answer
        self._record: tuple[AnswerRecords, str, str] | None = None
        if records is not None and owner is not None and answer_id is not None:
            self._record = (records, owner, answer_id)

    async def continuation(self, round_id: str) -> Claim:
        """Who continues `round_id`: this stream (Owned), another reader (Follow), or nobody (Cancelled)."""
        if self._record is None:
            return Owned(AnswerRow())
        records, owner, answer_id = self._record
        claimed = await _unless_unreachable(
            records.claim(owner, answer_id, round_id, wait_seconds=self._follow_seconds)
        )
        return Owned(AnswerRow()) if claimed is None else claimed

    async def cancelled(self) -> bool:
        """Whether the answer was stopped (checked before a round is opened)."""
        if self._record is None:
            return False
        records, owner, answer_id = self._record
        row = await _unless_unreachable(records.get(owner, answer_id))
        return row is not None and row.cancelled

    async def opened(
        self, claim: Owned, next_round: str, usage: dict[str, int] | None, results: list[ToolResult]
    ) -> bool:
        """Record the round that continues the claimed one; False when the answer was stopped meanwhile."""
        if self._record is None or claim.row.etag is None:  # no record: nothing to record it on
            return True
        records, owner, answer_id = self._record
        recorded = [RecordedResult(result.call_id, result.name, result.output) for result in results]
        going_on = await _unless_unreachable(
            records.opened(owner, answer_id, claim, next_round=next_round, usage=usage, results=recorded)
        )
        if going_on:
            self._recorded.add(next_round)
        return going_on is not False

    def recorded(self, round_id: str) -> bool:
        """Whether this stream recorded `round_id` as continuing the answer: a resume of any
        earlier round of the answer then reaches it."""
        return round_id in self._recorded

    async def release(self, claim: Owned) -> None:
        """The stream ends holding a claim whose round it never opened: another reader may continue it."""
        if self._record is not None and claim.row.etag is not None:
            records, owner, answer_id = self._record
            await _unless_unreachable(records.release(owner, answer_id, claim))

    async def usage_of_rounds(self) -> dict[str, dict[str, int]]:
        """The recorded usage of each continued round, by its id."""
        if self._record is None:
            return {}
        records, owner, answer_id = self._record
        row = await _unless_unreachable(records.get(owner, answer_id))
        return {} if row is None else row.usage


async def _unless_unreachable(reading: Awaitable[_Result]) -> _Result | None:
    """The record's answer; None, logged, when the storage account cannot be reached."""
    try:
        return await reading
    except Exception as error:  # azure-core's errors (not imported here: only where answers are recorded)
        logger.warning("the answer's record could not be reached: %s", type(error).__name__)
        return None


def answer_of(response: dict[str, Any]) -> str | None:
    """The answer a stored response belongs to (its `metadata.answer`); None for one made before."""
    metadata = response.get("metadata")
    value = metadata.get("answer") if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value.startswith("ans_") else None
