"""Views of what a relay stream reads (an answer's rounds, `relay.Upstream`) that act on its
batches on their way to the stream: `AnswerStart` tells someone the answer's first response id
before the caller receives it (so a record of the answer is there before anyone looks for it);
`SplitAt` ends a batch at a sequence number of the first round (so no merged delta spans it)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any

from .relay import Upstream
from .tools import ToolResult
from .upstream_events import Payload

# Wraps the rounds a stream reads.
Around = Callable[[Upstream], Upstream]
# Told the answer's first response id.
Started = Callable[[str], Awaitable[None]]


class RoundsView:
    """What a stream reads, passed through as it is; a view overrides what it changes."""

    def __init__(self, rounds: Upstream) -> None:
        self._rounds = rounds

    @property
    def response_id(self) -> str | None:
        return self._rounds.response_id

    @property
    def cursor(self) -> int | None:
        return self._rounds.cursor

    @property
    def final_response(self) -> dict[str, Any] | None:
        return self._rounds.final_response

    @property
    def between_rounds(self) -> bool:
        return self._rounds.between_rounds

    def batches(self) -> AsyncGenerator[Sequence[Payload | ToolResult]]:
        return self._rounds.batches()

    async def aclose(self) -> None:
        await self._rounds.aclose()


class AnswerStart(RoundsView):
    def __init__(self, rounds: Upstream, started: Started) -> None:
        super().__init__(rounds)
        self._started: Started | None = started

    async def batches(self) -> AsyncGenerator[Sequence[Payload | ToolResult]]:
        async with aclosing(self._rounds.batches()) as batches:
            async for batch in batches:
                response_id = self._rounds.response_id
                if self._started is not None and response_id is not None:
                    started, self._started = self._started, None
                    await started(response_id)
                yield batch


class SplitAt(RoundsView):
    def __init__(self, rounds: Upstream, sequence: int) -> None:
        super().__init__(rounds)
        self._sequence: int | None = sequence  # None once passed

    async def batches(self) -> AsyncGenerator[Sequence[Payload | ToolResult]]:
        async with aclosing(self._rounds.batches()) as batches:
            async for batch in batches:
                split = self._split(batch)
                if 0 < split < len(batch):
                    yield batch[:split]
                    yield batch[split:]
                else:
                    yield batch

    def _split(self, batch: Sequence[Payload | ToolResult]) -> int:
        """Where the batch is cut: after the event with the sequence number (which the first round,
        read from its start, has), once."""
        if self._sequence is not None:
            for index, payload in enumerate(batch):
                if isinstance(payload, dict) and payload.get("sequence_number") == self._sequence:
                    self._sequence = None
                    return index + 1
        return 0
