"""The events of one upstream response, in order and each once, across cut connections.

`UpstreamEvents` reads an upstream Responses stream (SSE over HTTP) and yields its
events parsed, one batch per network read. When the stream of a stored (background)
response breaks or ends without its terminal event, it heals itself: it continues the
stored stream `starting_after` the last sequence number it yielded (or the caller's
cursor, for a resume stream that yielded nothing yet), because the stored stream
replays the tail and the terminal event. Only when a continuation also ends cleanly
without bringing anything does the stored status decide (a cancelled response's
stream just stops). An event at or before the cursor is never yielded twice.

Heals are bounded: `HealBudget.attempts` consecutive heals that bring no event (one
that does resets the count) and `HealBudget.seconds` spent healing over the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import Any, Protocol

import httpx2

from .errors import (
    RESPONSE_NOT_FOUND,
    UPSTREAM_CONNECTION_LOST,
    UPSTREAM_INCOMPLETE,
    UPSTREAM_TIMEOUT,
    ErrorCode,
    HttpError,
)
from .events import TERMINAL_EVENTS, UpstreamProtocolError, parse_event
from .sse import Decoder, Event
from .telemetry.observer import NO_MODEL_CALL, ModelCallObserver

logger = logging.getLogger("responses_relay.upstream_events")

FINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})
_FINISH_BYTES = 64 * 1024  # what the upstream may still send after the terminal event, to keep its connection
_FINISH_SECONDS = 1.0

Payload = dict[str, Any]


class StoredResponses(Protocol):
    """What healing needs of the upstream (`Upstream` is one)."""

    async def resume(self, response_id: str, after: int | None) -> httpx2.Response: ...

    async def retrieve(self, response_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class HealBudget:
    attempts: int  # consecutive heals that bring no event
    seconds: float  # time spent healing, over the whole stream
    backoff_seconds: tuple[float, ...] = (0.0, 0.25, 1.0, 2.0)  # before the 1st, 2nd, ... such heal


class StreamBroken(Exception):
    """The stream ended early and could not go on: the error that ends the caller's stream."""

    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


class UpstreamEvents:
    def __init__(
        self,
        response: httpx2.Response,
        *,
        response_id: str | None = None,
        after: int | None = None,
        stored: StoredResponses | None = None,
        budget: HealBudget = HealBudget(3, 30.0),
        call: ModelCallObserver = NO_MODEL_CALL,
    ) -> None:
        self._response = response
        self._call = call  # telemetry's view of this response
        self._stored = stored  # None: not a stored response, so a cut ends the stream
        self._budget = budget
        self.response_id = response_id
        self.cursor = after  # the last sequence number yielded, else the caller's
        self.ended = False  # the terminal event was yielded
        self.final_response: dict[str, Any] | None = None  # the stored response that ended it, without an event
        self.heals = 0
        self.between_rounds = False  # one response: an answer's rounds are ToolRounds'
        self._unnumbered = False  # an event without a sequence number was yielded: no heal can place it
        self._fruitless = 0  # heals in a row that brought no event
        self._healing_seconds = 0.0

    async def batches(self) -> AsyncGenerator[list[Payload]]:
        """The events of each network read; ends after the terminal event, or when the stored
        status ended the response (`final_response`). Raises StreamBroken when it cannot go on."""
        continuation = False
        while True:
            brought = False
            clean = False
            try:
                async with aclosing(self._read()) as reads:
                    async for batch in reads:
                        brought = True
                        yield batch
                if self.ended:
                    return
                clean = True
                problem = (UPSTREAM_INCOMPLETE, "The model service ended the stream before it finished")
            except httpx2.TimeoutException:
                logger.warning("upstream stalled longer than the read timeout")
                problem = (UPSTREAM_TIMEOUT, "The model service stopped sending")
            except httpx2.TransportError as error:
                logger.warning("upstream connection lost mid-stream: %s", type(error).__name__)
                problem = (UPSTREAM_CONNECTION_LOST, "The connection to the model service was lost")
            finally:
                await self._response.aclose()
            if brought:
                self._fruitless = 0
            elif continuation and clean and await self._ended_in_store():
                return
            await self._heal(problem)
            continuation = True

    async def _read(self) -> AsyncGenerator[list[Payload]]:
        decoder = Decoder()
        response = self._response
        # Raw bytes skip a decoder layer; a compressed body still goes through httpx2's.
        chunks = response.aiter_bytes() if "content-encoding" in response.headers else response.aiter_raw()
        async with aclosing(chunks):
            async for chunk in chunks:
                batch, bad = self._take(decoder.feed(chunk))
                if batch:
                    yield batch
                if bad is not None:
                    raise bad  # after the good events before it
                if self.ended:
                    await _finish_body(chunks)
                    return
        batch, bad = self._take(decoder.close())
        if batch:
            yield batch
        if bad is not None:
            raise bad

    def _take(self, events: list[Event]) -> tuple[list[Payload], UpstreamProtocolError | None]:
        """The events not seen before, parsed, up to the terminal event or the first that is not
        an event of the API; the cursor moves past them."""
        taken: list[Payload] = []
        for event in events:
            if self.ended:
                break
            try:
                payload = parse_event(event)
            except UpstreamProtocolError as bad:
                return taken, bad
            if payload is None:
                continue
            sequence = payload.get("sequence_number")
            if type(sequence) is int:
                if self.cursor is not None and sequence <= self.cursor:
                    continue  # yielded already, or before the caller's cursor
                self.cursor = sequence
            else:
                self._unnumbered = True
            kind = payload.get("type")
            if kind == "response.created":
                response = payload.get("response")
                response_id = response.get("id") if isinstance(response, dict) else None
                self.response_id = response_id if isinstance(response_id, str) else self.response_id
                self._call.created(response if isinstance(response, dict) else {})
            self.ended = kind in TERMINAL_EVENTS
            if self.ended:
                self._call.ended(payload)
            taken.append(payload)
        return taken, None

    async def _heal(self, problem: tuple[ErrorCode, str]) -> None:
        """Open the stored stream after the cursor, within the budget; else StreamBroken."""
        stored, response_id = self._stored, self.response_id
        if stored is None or response_id is None or self._unnumbered:
            raise StreamBroken(*problem)
        started = time.monotonic()
        try:
            while True:
                self._fruitless += 1
                spent = self._healing_seconds + time.monotonic() - started
                if self._fruitless > self._budget.attempts or spent > self._budget.seconds:
                    logger.warning("gave up healing the upstream stream after %d heals", self.heals)
                    raise StreamBroken(*problem)
                backoff = self._budget.backoff_seconds
                await asyncio.sleep(backoff[min(self._fruitless, len(backoff)) - 1])
                self.heals += 1
                self._call.healed(problem[0].code, self.cursor)
                logger.info("upstream stream ended early (%s); continuing after %s", problem[0].code, self.cursor)
                try:
                    self._response = await stored.resume(response_id, self.cursor)
                    return
                except HttpError as error:
                    logger.warning("could not continue the upstream stream: %d %s", error.status, error.code)
                    if error.code == RESPONSE_NOT_FOUND.code:
                        raise StreamBroken(*problem) from None
        finally:
            self._healing_seconds += time.monotonic() - started

    async def _ended_in_store(self) -> bool:
        """After a continuation that ended cleanly with nothing after the cursor: True when the
        stored response is final (its stream stops so after a cancel), which then ends it."""
        assert self._stored is not None
        assert self.response_id is not None
        try:
            response = await self._stored.retrieve(self.response_id)
        except HttpError as error:
            logger.warning("could not retrieve the upstream response: %d %s", error.status, error.code)
            return False
        if response.get("status") not in FINAL_STATUSES:
            return False
        self.final_response = response
        self._call.ended({"response": response})
        return True

    async def aclose(self) -> None:
        await self._response.aclose()


async def _finish_body(chunks: AsyncIterator[bytes]) -> None:
    """After the terminal event, read what is left of the upstream body (usually just the
    chunked terminator, often a read behind) so its connection goes back to the pool;
    bounded in bytes and time, past which the connection is closed instead."""
    left = _FINISH_BYTES
    with suppress(httpx2.HTTPError, TimeoutError):
        async with asyncio.timeout(_FINISH_SECONDS):
            async for chunk in chunks:
                left -= len(chunk)
                if left < 0:
                    return
