"""One relayed stream: a producer task reads the upstream stream into a bounded buffer,
and the response body drains that buffer, as the origin planned it.

The body starts with a comment (so headers and first bytes reach the client at
once), sends a heartbeat comment whenever nothing was sent for a while, and ends
after exactly one terminal event. When the client leaves, the producer is
cancelled and the upstream HTTP response is closed; except when the caller never received
the id of a background response it started (an orphan nobody can resume or cancel): then the
relay reads on until it knows the id and cancels the response upstream. Healing a cut stream
is `UpstreamEvents`' part; this module is the caller's side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing, suppress
from typing import Any, Protocol

from . import shutdown
from .errors import INTERNAL_ERROR, STREAM_TIME_LIMIT, UPSTREAM_BAD_RESPONSE, ErrorCode
from .events import Translator, UpstreamProtocolError
from .live_streams import LiveStreams
from .protocols import Encoder
from .protocols.native import NativeEncoder
from .sse import encode_comment
from .telemetry.observer import UNOBSERVED, RequestObserver
from .tool_rounds import HandOffNow
from .tools import ToolResult
from .upstream_events import Payload, StreamBroken

OPENING = encode_comment("stream open")
PING = encode_comment("ping")
ORPHAN_SECONDS = 10.0  # how long a relay whose caller left reads on for a background response's id

# Cancels an orphan upstream, by its id; False when it is not one after all (a resume reaches it).
CancelOrphan = Callable[[str], Awaitable[bool]]


class Upstream(Protocol):
    """What the relay reads: `UpstreamEvents` (one response), or `ToolRounds` (its rounds)."""

    @property
    def response_id(self) -> str | None:
        """The response being read, once known."""

    @property
    def cursor(self) -> int | None:
        """The last sequence number read of the response being read."""

    @property
    def final_response(self) -> dict[str, Any] | None:
        """The stored response that ended the stream without a terminal event."""

    @property
    def between_rounds(self) -> bool:
        """The response read ended asking for tools: the answer goes on with another."""

    def batches(self) -> AsyncGenerator[Sequence[Payload | ToolResult]]: ...

    async def aclose(self) -> None: ...


logger = logging.getLogger("responses_relay.relay")


class RelayStream:
    def __init__(
        self,
        upstream: Upstream,
        translator: Translator,
        *,
        heartbeat_seconds: float,
        buffer_bytes: int,
        invocation_id: str | None = None,
        cancel_orphan: CancelOrphan | None = None,
        live: LiveStreams | None = None,
        time_limit_seconds: float | None = None,
        hands_off: bool = False,
        deployment: str | None = None,
        owner: str | None = None,
        encoder: Encoder | None = None,
        observer: RequestObserver = UNOBSERVED,
    ) -> None:
        """`hands_off`: the responses are stored (background mode), so at its time limit or at a
        shutdown the stream hands its caller off to a resume stream (`stream.resume`) instead of failing."""
        self.owner = owner  # who may cancel it
        self._observer = observer  # telemetry's: told when the stream starts and how it ended
        self.encoder: Encoder = encoder or NativeEncoder()  # the protocol the caller speaks
        self._closed = False  # the protocol's closing bytes are pushed
        self._upstream = upstream
        self._invocation_id = invocation_id
        self._deployment = deployment  # the one that answered, for the record
        # Set in background mode: the id of a response this stream creates (the first, or a tool
        # round's) must reach the caller.
        self._cancel_orphan = cancel_orphan
        self._delivered_id = translator.response_id  # the last response id sent (a resume stream's: the caller's)
        self._pushed_id = translator.response_id  # the last response id in the buffer
        self._orphan_watch = False  # the caller's stream is over without the id: read on for it, then cancel
        self._time_limit = time_limit_seconds  # how long it may last, short of the platform's own cut
        self._time_limit_timer: asyncio.TimerHandle | None = None
        self._hands_off = hands_off
        self._hand_off_due = False  # the time is up, but the round in flight is finished first
        self._live = live
        self._listed_as: set[str] = set()  # the response ids this stream is listed under in live_streams
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
        self._told = False  # the observer was told how the stream ended

    async def body(self) -> AsyncGenerator[bytes]:
        """The response body: the opening comment and the protocol's own opening, then what the producer pushes."""
        yield OPENING + self.encoder.open()
        loop = asyncio.get_running_loop()
        self._producer = loop.create_task(self._produce())
        self._last_sent = loop.time()
        self._heartbeat_timer = loop.call_later(self._heartbeat, self._check_heartbeat)
        if self._time_limit is not None:
            self._time_limit_timer = loop.call_later(self._time_limit, self._time_up)
        shutdown.started(self)
        self._observer.stream_started()
        try:
            while not self._left:
                if self._buffer:
                    chunk = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
                    self._buffer.clear()
                    self._buffered = 0
                    self._delivered_id = self._pushed_id
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
            for timer in (self._heartbeat_timer, self._time_limit_timer):
                if timer is not None:
                    timer.cancel()
            self._ended()

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
            async with aclosing(self._upstream.batches()) as batches:
                async for batch in batches:
                    for payload in batch:
                        translator.feed(payload)
                    if translator.deltas and self.first_text_at is None:
                        self.first_text_at = time.monotonic()
                    self._list()
                    self._push_events()
                    self._pushed_id = translator.response_id
                    if self._hand_off_due and self._moves_forward():
                        translator.hand_off(self._upstream.cursor)
                        return
                    if self._orphan_watch:
                        if self._upstream.response_id is not None:
                            return  # the orphan's id is known: aclose cancels it
                    elif translator.finished:
                        self._push_closing()
                        self._draining = True
                        self._done = True  # the body ends now; the upstream's may take a moment more
                        _resolve(self._data_ready)
                    elif self._buffered >= self._limit:
                        await self._wait_for_space()
            if self._upstream.final_response is not None:
                translator.finish_with(self._upstream.final_response)
        except HandOffNow as early:
            translator.hand_off(early.after)
        except StreamBroken as broken:
            translator.fail(broken.error, broken.message)
        except UpstreamProtocolError as error:
            logger.warning("upstream sent a bad event: %s", error)
            translator.fail(UPSTREAM_BAD_RESPONSE, "The model service sent an invalid event")
        except Exception:
            # The host considers the invocation finished already: log it here or nobody will.
            logger.exception("relay failed mid-stream")
            translator.fail(INTERNAL_ERROR, "The relay failed")
        finally:
            self._push_events()
            self._push_closing()
            self._done = True
            _resolve(self._data_ready)
            self._unlist()
            await self._upstream.aclose()

    def _list(self) -> None:
        """List the stream under each response id of its answer once known (each round's), so that a
        cancel of any of them on this instance finds it."""
        response_id = self._translator.response_id
        if response_id is not None and response_id not in self._listed_as and self._live is not None:
            self._listed_as.add(response_id)
            self._live.add(response_id, self)

    def _unlist(self) -> None:
        if self._live is not None:
            for response_id in self._listed_as:
                self._live.remove(response_id, self)
        self._listed_as.clear()

    def _push_events(self) -> None:
        self._push(self.encoder.encode(self._translator.take()))

    def _push_closing(self) -> None:
        """The protocol's closing bytes, once, when the relay ends the stream (not once the caller left)."""
        if not self._closed and not self._left:
            self._closed = True
            self._push(self.encoder.close())

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

    @property
    def between_rounds(self) -> bool:
        """The response this stream was reading has ended, but the answer goes on (tool calls run)."""
        return self._upstream.between_rounds

    @property
    def reading(self) -> str | None:
        """The response being read (None while a round is being opened)."""
        return self._upstream.response_id

    def cancel(self) -> None:
        """End the stream now as cancelled; closing the upstream connection stops the model
        (a background response is cancelled upstream by the caller of this)."""
        self._end_now(self._translator.cancel)

    def _time_up(self) -> None:
        """The stream reached its time limit, short of the platform's cut. A stored response's
        caller is handed off to a resume stream (`stream.resume`), where that stream can continue
        with a later event: a tool call or a round being opened is finished first (the settings
        keep that within the limit's margin). Any other stream ends with an error. Either way the
        upstream call is closed."""
        if not self._hands_off:
            message = "The answer took longer than this service's time limit; ask again for a shorter answer"
            self.interrupt(STREAM_TIME_LIMIT, message)
        elif self._moves_forward():
            self._end_now(lambda: self._translator.hand_off(self._upstream.cursor))
        else:
            self._hand_off_due = True  # after the next batch that moves forward

    def _moves_forward(self) -> bool:
        """A resume after the cursor would continue the round the caller has, with a later event:
        not while calls run or a round opens (the resume would read the round's end again)."""
        return self._can_hand_off() and not self._upstream.between_rounds

    def _can_hand_off(self) -> bool:
        """The caller has the response being read, so a resume of it after the cursor loses nothing."""
        reading = self._upstream.response_id
        return reading is not None and reading == self._translator.response_id

    def shut_down(self, error: ErrorCode, message: str) -> None:
        """The instance is stopping: a stored response's caller is handed off to a resume stream
        on another instance; any other stream ends with the `error`."""
        if self._hands_off and self._can_hand_off():
            self._end_now(lambda: self._translator.hand_off(self._upstream.cursor))
        else:
            self.interrupt(error, message)

    def _end_now(self, end: Callable[[], None]) -> None:
        if self._done or self._left:
            return
        end()
        self._push_events()
        self._push_closing()
        self._pushed_id = self._translator.response_id
        self._done = True  # the body ends once the buffer is out
        _resolve(self._data_ready)
        self._stop_reading(orphaned=self._unreceived(self._pushed_id))

    def client_left(self) -> None:
        """The client went away: end the body at once and stop reading upstream (see `_stop_reading`)."""
        if self.outcome is None:
            self.outcome = "client_disconnected"
        self._left = True
        _resolve(self._data_ready)
        _resolve(self._space_ready)
        self._stop_reading(orphaned=self._unreceived(self._delivered_id))

    def _unreceived(self, received: str | None) -> bool:
        """The response being read (the first, or a tool round's) is not the one the caller has."""
        reading = self._upstream.response_id
        return reading is None or reading != received

    def _stop_reading(self, *, orphaned: bool) -> None:
        """Stop the producer; unless the caller never gets the id of a background response this
        stream started: then it reads on until it knows the id, and `aclose` cancels the response."""
        if orphaned and self._cancel_orphan is not None:
            self._orphan_watch = True
            _resolve(self._space_ready)
        elif self._producer is not None:
            self._producer.cancel()

    async def aclose(self) -> None:
        """Cancel the producer if it still runs, and an orphan upstream; the upstream response is
        closed either way."""
        if self._orphan_watch:
            await self._cancel_orphaned_response()
        if self._producer is not None and not self._producer.done():
            # A drain ends by itself, soon; a producer cancelled already (its caller left) is
            # closing its upstream, which a second cancel would cut short.
            if not self._draining and not self._producer.cancelling():
                self._producer.cancel()
            try:
                await self._producer
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise
        # Also when the producer was cancelled before it ever ran, so its own `finally` did not.
        await self._upstream.aclose()
        self._ended()
        self._log()

    async def _cancel_orphaned_response(self) -> None:
        """Read on until the response's id is known (it comes first) and the producer is done with
        it, then cancel it upstream unless a resume reaches it after all (`CancelOrphan`): its caller
        can neither resume nor cancel it, and it would go on being generated."""
        assert self._cancel_orphan is not None
        if self._producer is None and self._upstream.response_id is None:  # the caller left before the body started
            self._producer = asyncio.get_running_loop().create_task(self._produce())
        if self._producer is not None:  # it stops once the id is known and what it does with it is done
            await self._read_on(self._producer)
        response_id = self._upstream.response_id  # with tool rounds: the round being opened, once known
        if response_id is None:
            logger.warning("a caller left before its background response had an id; it could not be cancelled")
            return
        try:
            if await self._cancel_orphan(response_id):
                logger.info("cancelled background response %s: its caller left before receiving its id", response_id)
        except Exception as error:  # logged, not raised: the caller is gone
            logger.warning("could not cancel an orphaned background response: %s", error)

    @staticmethod
    async def _read_on(producer: asyncio.Task[None]) -> None:
        """Let the producer read until it stops by itself, for ORPHAN_SECONDS at most; when this
        task is cancelled meanwhile (the server is stopping), the producer is too."""
        try:
            with suppress(TimeoutError):
                async with asyncio.timeout(ORPHAN_SECONDS):
                    await asyncio.shield(producer)
        except asyncio.CancelledError:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            raise

    def _ended(self) -> None:
        """The stream's outcome, once its body is over; the observer is told then, before the body's
        end is sent (a server's request span ends with it)."""
        if self.outcome is None:
            self.outcome = self._translator.outcome or "client_disconnected"
        if not self._told:
            self._told = True
            failed = self.outcome.split(":")[0] not in _FINE_OUTCOMES
            first_delta_at, owner = self.first_text_at, self.owner
            self._observer.stream_ended(self.outcome, failed=failed, first_delta_at=first_delta_at, owner=owner)

    def _log(self) -> None:
        """One structured record per stream; failures are warnings. Its fields become
        Application Insights custom dimensions when telemetry is on."""
        translator = self._translator
        # The invocation id is carried explicitly: under the Functions worker, logs written while
        # a body streams are tagged with whichever invocation started last, or dropped by the host.
        fields = {
            "stream_invocation_id": self._invocation_id,
            "stream_trace_id": self._observer.trace_id,  # the caller's traceparent's, or telemetry's trace
            "stream_outcome": self.outcome,
            "stream_response_id": translator.response_id,
            "stream_model": translator.model,
            "stream_deployment": self._deployment,
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


_FINE_OUTCOMES = frozenset(
    {"completed", "incomplete", "cancelled", "requires_approval", "client_disconnected", "handed_off"}
)


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
