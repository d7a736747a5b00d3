"""One relayed stream: a producer task reads the upstream stream into a bounded buffer,
and the response body drains that buffer, as the origin planned it.

The body starts with a comment (so headers and first bytes reach the client at
once), sends a heartbeat comment whenever nothing was sent for a while, and ends
after exactly one terminal event. When the client leaves, the producer is
cancelled and the upstream HTTP response is closed. A stored (background) response's
upstream stream that ends or breaks early is healed: ended from the response's real
status, or continued after the last event seen (`Recover`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, suppress
from typing import Any

import httpx2

from . import shutdown
from .errors import (
    INTERNAL_ERROR,
    UPSTREAM_BAD_RESPONSE,
    UPSTREAM_CONNECTION_LOST,
    UPSTREAM_INCOMPLETE,
    UPSTREAM_TIMEOUT,
    ErrorCode,
    HttpError,
)
from .events import Translator, UpstreamProtocolError
from .live_streams import LiveStreams
from .sse import Decoder, encode_comment

OPENING = encode_comment("stream open")
PING = encode_comment("ping")

# After the upstream stream of a stored (background) response ended early: given its id and the
# last sequence number seen, its retrieved response object when that is final, or a
# stream that continues after that sequence number. Raises HttpError when neither is possible.
Recover = Callable[[str, int | None], Awaitable["httpx2.Response | dict[str, Any]"]]
MAX_HEALS = 3  # recoveries per stream

logger = logging.getLogger("responses_relay.relay")
_FINISH_BYTES = 64 * 1024  # what the upstream may still send after the terminal event, to keep its connection
_FINISH_SECONDS = 1.0


class RelayStream:
    def __init__(
        self,
        upstream: httpx2.Response,
        translator: Translator,
        *,
        heartbeat_seconds: float,
        buffer_bytes: int,
        invocation_id: str | None = None,
        recover: Recover | None = None,
        live: LiveStreams | None = None,
        owner: str | None = None,
    ) -> None:
        self.owner = owner  # who may cancel it
        self._upstream = upstream
        self._invocation_id = invocation_id
        self._recover = recover
        self._live = live
        self._listed_as: str | None = None  # the response id this stream is listed under in live_streams
        self._translator = translator
        self._heartbeat = heartbeat_seconds
        self._limit = buffer_bytes
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._data_ready: asyncio.Future[None] | None = None
        self._space_ready: asyncio.Future[None] | None = None
        self._producer: asyncio.Task[None] | None = None
        self._done = False  # the producer has pushed its last bytes
        self._draining = False  # after the terminal event: reading the rest of the upstream body
        self._left = False  # the client went away
        self._ping_due = False
        self._last_sent = 0.0
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._started = time.monotonic()
        self.first_text_at: float | None = None
        self.sent_bytes = 0
        self.outcome: str | None = None

    async def body(self) -> AsyncGenerator[bytes]:
        """The response body: the opening comment, then whatever the producer pushes."""
        yield OPENING
        loop = asyncio.get_running_loop()
        self._producer = loop.create_task(self._produce())
        self._last_sent = loop.time()
        self._heartbeat_timer = loop.call_later(self._heartbeat, self._check_heartbeat)
        shutdown.started(self)
        try:
            while not self._left:
                if self._buffer:
                    chunk = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
                    self._buffer.clear()
                    self._buffered = 0
                    _resolve(self._space_ready)
                elif self._done:
                    return
                elif self._ping_due:
                    chunk = PING
                else:
                    await self._wait_for_data()
                    continue
                self._ping_due = False
                self._last_sent = loop.time()
                self.sent_bytes += len(chunk)
                yield chunk
        finally:
            shutdown.ended(self)
            if self._heartbeat_timer is not None:
                self._heartbeat_timer.cancel()

    async def _wait_for_data(self) -> None:
        """Wait until the producer pushes bytes or finishes, or a heartbeat is due."""
        waiter = self._data_ready = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._data_ready = None

    def _check_heartbeat(self) -> None:
        # One timer per stream, re-armed, rather than a timer per wait: waits are per delta.
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._last_sent
        if idle >= self._heartbeat:
            self._ping_due = True
            _resolve(self._data_ready)
            idle = 0.0
        self._heartbeat_timer = loop.call_later(self._heartbeat - idle, self._check_heartbeat)

    async def _produce(self) -> None:
        translator = self._translator
        try:
            heals = 0
            while (ended_early := await self._relay_upstream()) is not None:
                if not await self._heal(ended_early, heals):
                    translator.fail(*ended_early)
                    return
                if translator.finished:  # its retrieved status ended it
                    return
                heals += 1
        except UpstreamProtocolError as error:
            logger.warning("upstream sent a bad event: %s", error)
            translator.fail(UPSTREAM_BAD_RESPONSE, "The model service sent an invalid event")
        except Exception:
            # The host considers the invocation finished already: log it here or nobody will.
            logger.exception("relay failed mid-stream")
            translator.fail(INTERNAL_ERROR, "The relay failed")
        finally:
            self._push(translator.take())
            self._done = True
            _resolve(self._data_ready)
            self._unlist()
            await self._upstream.aclose()

    async def _relay_upstream(self) -> tuple[ErrorCode, str] | None:
        """Relay the current upstream response: None once the terminal event is out, or the
        error (code, message) that ends the stream if it cannot go on elsewhere."""
        translator = self._translator
        decoder = Decoder()
        upstream = self._upstream
        try:
            # Raw bytes skip a decoder layer; a compressed body still goes through httpx2's.
            encoded = "content-encoding" in upstream.headers
            async with aclosing(upstream.aiter_bytes() if encoded else upstream.aiter_raw()) as chunks:
                async for chunk in chunks:
                    for event in decoder.feed(chunk):
                        translator.feed(event)
                    if translator.deltas and self.first_text_at is None:
                        self.first_text_at = time.monotonic()
                    self._list()
                    self._push(translator.take())
                    if translator.finished:
                        self._draining = True
                        self._done = True  # the body ends now; the upstream's may take a moment more
                        _resolve(self._data_ready)
                        await _finish_upstream_body(chunks)
                        return None
                    if self._buffered >= self._limit:
                        await self._wait_for_space()
            for event in decoder.close():
                translator.feed(event)
            if translator.finished:
                return None
            return (UPSTREAM_INCOMPLETE, "The model service ended the stream before it finished")
        except httpx2.TimeoutException:
            logger.warning("upstream stalled longer than the read timeout")
            return (UPSTREAM_TIMEOUT, "The model service stopped sending")
        except httpx2.TransportError as error:
            logger.warning("upstream connection lost mid-stream: %s", type(error).__name__)
            return (UPSTREAM_CONNECTION_LOST, "The connection to the model service was lost")
        finally:
            await upstream.aclose()

    async def _heal(self, ended_early: tuple[ErrorCode, str], heals: int) -> bool:
        """A stored response's stream ended early: end it from its real status, or continue it
        after the last event relayed. False when neither was possible."""
        translator = self._translator
        response_id = translator.response_id
        if self._recover is None or response_id is None or heals >= MAX_HEALS:
            return False
        if translator.last_sequence is None:  # no sequence numbers: a resume would send it all again
            return False
        logger.info(
            "upstream stream ended early (%s); recovering after %s", ended_early[0].code, translator.last_sequence
        )
        try:
            recovered = await self._recover(response_id, translator.last_sequence)
        except HttpError as error:
            logger.warning("could not recover the upstream stream: %d %s", error.status, error.code)
            return False
        if isinstance(recovered, dict):
            translator.finish_with(recovered)
            self._push(translator.take())
            return translator.finished
        self._upstream = recovered
        return True

    def _list(self) -> None:
        """List the stream under its response id, once known, so a cancel on this instance finds it."""
        response_id = self._translator.response_id
        if self._listed_as is None and response_id is not None and self._live is not None:
            self._listed_as = response_id
            self._live.add(response_id, self)

    def _unlist(self) -> None:
        if self._listed_as is not None and self._live is not None:
            self._live.remove(self._listed_as, self)
            self._listed_as = None

    def _push(self, frames: bytes) -> None:
        if frames:
            self._buffer.append(frames)
            self._buffered += len(frames)
            _resolve(self._data_ready)

    async def _wait_for_space(self) -> None:
        waiter = self._space_ready = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._space_ready = None

    def interrupt(self, error: ErrorCode, message: str) -> None:
        """End the stream now with an `error` event the relay makes itself."""
        self._end_now(lambda: self._translator.fail(error, message))

    def cancel(self) -> None:
        """End the stream now as cancelled; closing the upstream connection stops the model
        (a background response is cancelled upstream by the caller of this)."""
        self._end_now(self._translator.cancel)

    def _end_now(self, end: Callable[[], None]) -> None:
        if self._done or self._left:
            return
        end()
        self._push(self._translator.take())
        if self._producer is not None:
            self._producer.cancel()
        else:
            self._done = True
            _resolve(self._data_ready)

    def client_left(self) -> None:
        """The client went away: stop reading upstream and end the body at once."""
        if self.outcome is None:
            self.outcome = "client_disconnected"
        self._left = True
        if self._producer is not None:
            self._producer.cancel()
        _resolve(self._data_ready)

    async def aclose(self) -> None:
        """Cancel the producer if it still runs; the upstream response is closed either way."""
        if self._producer is not None and not self._producer.done():
            if not self._draining:  # a drain ends by itself, soon
                self._producer.cancel()
            try:
                await self._producer
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
        # Also when the producer was cancelled before it ever ran, so its own `finally` did not.
        await self._upstream.aclose()
        if self.outcome is None:
            self.outcome = self._translator.outcome or "client_disconnected"
        self._log()

    def _log(self) -> None:
        """One structured record per stream; failures are warnings. Its fields become
        Application Insights custom dimensions when telemetry is on."""
        translator = self._translator
        # The invocation id is carried explicitly: under the Functions worker, logs written while
        # a body streams are tagged with whichever invocation started last, or dropped by the host.
        fields = {
            "stream_invocation_id": self._invocation_id,
            "stream_outcome": self.outcome,
            "stream_response_id": translator.response_id,
            "stream_model": translator.model,
            "stream_owner": self.owner,  # the caller's keyed hash, never who they are
            "stream_ttft_ms": None
            if self.first_text_at is None
            else round((self.first_text_at - self._started) * 1000),
            "stream_duration_ms": round((time.monotonic() - self._started) * 1000),
            "stream_deltas": translator.deltas,
            "stream_bytes": self.sent_bytes,
            "stream_usage": translator.usage,
        }
        fine = self.outcome is not None and self.outcome.split(":")[0] in _FINE_OUTCOMES
        message = "stream ended: " + " ".join(f"{key.removeprefix('stream_')}={value}" for key, value in fields.items())
        logger.log(logging.INFO if fine else logging.WARNING, message, extra=fields)


_FINE_OUTCOMES = frozenset({"completed", "incomplete", "cancelled", "client_disconnected"})


async def _finish_upstream_body(chunks: AsyncIterator[bytes]) -> None:
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


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
