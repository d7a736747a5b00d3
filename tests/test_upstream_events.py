"""UpstreamEvents, without sockets: upstream bodies are scripted byte streams that end
cleanly, break, or time out at chosen points, and the stored responses are a stand-in
that serves their tail after any cursor, as the Responses API's background mode does."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responses_relay.demo.wire import sse
from responses_relay.errors import RESPONSE_NOT_FOUND, UPSTREAM_ERROR, UPSTREAM_TIMEOUT, HttpError
from responses_relay.upstream_events import HealBudget, StreamBroken, UpstreamEvents

RESPONSE_ID = "resp_abc"
NO_WAIT = HealBudget(3, 30.0, backoff_seconds=(0.0,))
End = Literal["eof", "cut", "timeout"]


def answer(deltas: int, *, status: str = "completed") -> list[dict[str, Any]]:
    """A response's events, numbered from 0: created, the deltas, the terminal event."""
    events: list[dict[str, Any]] = [{"type": "response.created", "response": {"id": RESPONSE_ID}}]
    events += [{"type": "response.output_text.delta", "delta": f"<{n}>"} for n in range(deltas)]
    terminal = "response.completed" if status == "completed" else "response.incomplete"
    events.append({"type": terminal, "response": {"id": RESPONSE_ID, "status": status}})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


class Body(httpx2.AsyncByteStream):
    """An upstream body: these bytes in these pieces, then an end of the given kind."""

    def __init__(self, pieces: list[bytes], end: End = "eof") -> None:
        self.pieces = pieces
        self.end = end
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.end == "cut":
            raise httpx2.RemoteProtocolError("peer closed connection without sending complete message body")
        if self.end == "timeout":
            raise httpx2.ReadTimeout("timed out")

    async def aclose(self) -> None:
        self.closed = True


def wire(events: list[dict[str, Any]], end: End = "eof", splits: list[int] | None = None) -> Body:
    """The events' SSE bytes, split at the given offsets (default: one piece per event)."""
    data = b"".join(sse(event) for event in events)
    if splits is None:
        return Body([sse(event) for event in events], end)
    offsets = [0, *sorted({offset % (len(data) + 1) for offset in splits}), len(data)]
    return Body([data[a:b] for a, b in itertools.pairwise(offsets) if b > a], end)


@dataclass
class Stream:
    """One stream the upstream serves: how many events of its tail before it ends, and how."""

    events: int | None = None  # None: all of them
    end: End = "eof"


@dataclass
class Store:
    """Stored responses: `resume` serves the tail after a cursor, shaped by `streams` in turn."""

    events: list[dict[str, Any]]
    status: str = "completed"
    streams: list[Stream] = field(default_factory=list)
    resumed_after: list[int | None] = field(default_factory=list)
    retrieved: int = 0
    bodies: list[Body] = field(default_factory=list)
    refuse: HttpError | None = None

    async def resume(self, response_id: str, after: int | None) -> httpx2.Response:
        assert response_id == RESPONSE_ID
        self.resumed_after.append(after)
        if self.refuse is not None:
            raise self.refuse
        tail = [event for event in self.events if after is None or event["sequence_number"] > after]
        shape = self.streams.pop(0) if self.streams else Stream()
        body = wire(tail[: shape.events], shape.end)
        self.bodies.append(body)
        return httpx2.Response(200, stream=body)

    async def retrieve(self, response_id: str) -> dict[str, Any]:
        self.retrieved += 1
        return {"id": response_id, "status": self.status}


async def collect(events: UpstreamEvents) -> list[dict[str, Any]]:
    return [payload async for batch in events.batches() for payload in batch]


def numbers(payloads: list[dict[str, Any]]) -> list[int]:
    return [payload["sequence_number"] for payload in payloads]


async def test_a_whole_stream_is_yielded_once_and_closed() -> None:
    events = answer(5)
    body = wire(events)
    upstream = UpstreamEvents(httpx2.Response(200, stream=body))
    assert await collect(upstream) == events
    assert (upstream.response_id, upstream.cursor, upstream.ended) == (RESPONSE_ID, 6, True)
    assert body.closed


async def test_a_cut_continues_after_the_last_event_even_when_the_stored_response_has_finished() -> None:
    # A fast model finished while the relay reconnected: the tail must still come, not just the status.
    events = answer(20)
    store = Store(events, status="completed")
    upstream = UpstreamEvents(httpx2.Response(200, stream=wire(events[:7], "cut")), stored=store, budget=NO_WAIT)
    assert await collect(upstream) == events
    assert store.resumed_after == [6]
    assert store.retrieved == 0


@pytest.mark.parametrize("end", ["eof", "cut", "timeout"])
async def test_a_resume_stream_cut_before_its_first_event_heals_from_the_callers_cursor(end: End) -> None:
    events = answer(20)
    store = Store(events)
    first = httpx2.Response(200, stream=Body([b": keep-alive\n\n"], end))
    upstream = UpstreamEvents(first, response_id=RESPONSE_ID, after=9, stored=store, budget=NO_WAIT)
    assert await collect(upstream) == events[10:]
    assert store.resumed_after == [9]


async def test_events_at_or_before_the_cursor_are_never_yielded_twice() -> None:
    events = answer(10)
    replaying = wire(events[:4] + events[2:8] + events[5:])  # an upstream that repeats itself
    upstream = UpstreamEvents(httpx2.Response(200, stream=replaying), response_id=RESPONSE_ID, after=1)
    assert numbers(await collect(upstream)) == list(range(2, 12))


async def test_heals_that_bring_events_do_not_use_up_the_budget() -> None:
    # Every stream, the first and each continuation, breaks after two of its 20 events: nine cuts.
    events = answer(18)
    store = Store(events, streams=[Stream(2, "cut") for _ in range(10)])
    upstream = UpstreamEvents(httpx2.Response(200, stream=wire(events[:2], "cut")), stored=store, budget=NO_WAIT)
    assert await collect(upstream) == events
    assert upstream.heals == 9


async def test_heals_in_a_row_that_bring_nothing_end_the_stream() -> None:
    events = answer(10)
    store = Store(events, status="in_progress", streams=[Stream(0, "timeout") for _ in range(5)])
    upstream = UpstreamEvents(httpx2.Response(200, stream=wire(events[:3], "cut")), stored=store, budget=NO_WAIT)
    with pytest.raises(StreamBroken) as broken:
        await collect(upstream)
    assert broken.value.error == UPSTREAM_TIMEOUT  # the last failure
    assert store.resumed_after == [2, 2, 2]
    assert all(body.closed for body in store.bodies)


async def test_the_time_spent_healing_is_bounded() -> None:
    events = answer(10)
    store = Store(events, streams=[Stream(0, "cut") for _ in range(5)])
    slow = HealBudget(100, 0.05, backoff_seconds=(0.03,))
    upstream = UpstreamEvents(httpx2.Response(200, stream=wire(events[:3], "cut")), stored=store, budget=slow)
    with pytest.raises(StreamBroken):
        await collect(upstream)
    assert 1 <= len(store.resumed_after) <= 2


async def test_the_stored_status_decides_only_when_a_continuation_ends_cleanly_with_nothing() -> None:
    # A cancelled response's stored stream stops without a terminal event.
    events = answer(10)[:6]
    store = Store(events, status="cancelled")
    upstream = UpstreamEvents(httpx2.Response(200, stream=wire(events, "eof")), stored=store, budget=NO_WAIT)
    assert await collect(upstream) == events
    assert store.resumed_after == [5]
    assert store.retrieved == 1
    assert upstream.final_response == {"id": RESPONSE_ID, "status": "cancelled"}


async def test_a_stream_that_is_not_stored_or_has_no_numbers_or_no_id_is_not_healed() -> None:
    events = answer(10)
    store = Store(events)
    unstored = UpstreamEvents(httpx2.Response(200, stream=wire(events[:4], "cut")))
    unnumbered = [{key: value for key, value in event.items() if key != "sequence_number"} for event in events[:4]]
    no_numbers = UpstreamEvents(httpx2.Response(200, stream=wire(unnumbered, "cut")), stored=store, budget=NO_WAIT)
    no_id = UpstreamEvents(httpx2.Response(200, stream=Body([], "cut")), stored=store, budget=NO_WAIT)
    for upstream in (unstored, no_numbers, no_id):
        with pytest.raises(StreamBroken):
            await collect(upstream)
    assert store.resumed_after == []


async def test_a_response_the_upstream_no_longer_has_ends_the_stream_at_once() -> None:
    events = answer(10)
    store = Store(events, refuse=HttpError(RESPONSE_NOT_FOUND, "gone"))
    upstream = UpstreamEvents(httpx2.Response(200, stream=wire(events[:4], "cut")), stored=store, budget=NO_WAIT)
    with pytest.raises(StreamBroken):
        await collect(upstream)
    assert store.resumed_after == [3]


async def test_a_refused_continuation_is_tried_again_within_the_budget() -> None:
    events = answer(10)
    store = Store(events, refuse=HttpError(UPSTREAM_ERROR, "busy"))
    upstream = UpstreamEvents(httpx2.Response(200, stream=wire(events[:4], "cut")), stored=store, budget=NO_WAIT)
    with pytest.raises(StreamBroken):
        await collect(upstream)
    assert store.resumed_after == [3, 3, 3]


@settings(max_examples=150, deadline=None)
@given(
    deltas=st.integers(0, 12),
    # Each stream (the first, then each continuation): events before it ends, and how it ends.
    streams=st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["eof", "cut", "timeout"])), max_size=8),
    splits=st.lists(st.integers(0, 10_000), max_size=12),
    after=st.one_of(st.none(), st.integers(0, 5)),
)
async def test_any_cuts_and_byte_splits_yield_every_event_once_in_order(
    deltas: int, streams: list[tuple[int, End]], splits: list[int], after: int | None
) -> None:
    events = answer(deltas)
    tail = [event for event in events if after is None or event["sequence_number"] > after]
    first_events, first_end = streams[0] if streams else (len(tail), "eof")
    # A continuation that ends cleanly with nothing says "nothing after your cursor" (then the stored
    # status decides): here, where more is stored, such a stream breaks instead.
    shapes = [Stream(count, "cut" if (end, count) == ("eof", 0) else end) for count, end in streams[1:]]
    store = Store(events, streams=shapes)
    first = httpx2.Response(200, stream=wire(tail[:first_events], first_end, splits))
    resumed = after is not None or first_events > 0  # the caller names the response, or created came
    upstream = UpstreamEvents(
        first, response_id=RESPONSE_ID if after is not None else None, after=after, stored=store, budget=NO_WAIT
    )
    try:
        received = await collect(upstream)
    except StreamBroken:
        # Only when nothing names the response, or heals in a row brought nothing past the budget.
        assert not resumed or len(streams) > NO_WAIT.attempts
        return
    assert received == tail
    assert all(body.closed for body in store.bodies)
