"""An answer's rounds that tell someone the first response's id as soon as it is known, before
the caller receives it (so a record of the answer is there before anyone can look for it)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing
from typing import Any

from .relay import Upstream
from .tools import ToolResult
from .upstream_events import Payload

# Told the answer's first response id.
Started = Callable[[str], Awaitable[None]]


class AnswerStart:
    def __init__(self, rounds: Upstream, started: Started) -> None:
        self._rounds = rounds
        self._started: Started | None = started

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

    async def batches(self) -> AsyncGenerator[Sequence[Payload | ToolResult]]:
        async with aclosing(self._rounds.batches()) as batches:
            async for batch in batches:
                response_id = self._rounds.response_id
                if self._started is not None and response_id is not None:
                    started, self._started = self._started, None
                    await started(response_id)
                yield batch

    async def aclose(self) -> None:
        await self._rounds.aclose()
