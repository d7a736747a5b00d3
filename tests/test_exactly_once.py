"""Exactly once under any timing: a property-based test of resumable streams.

Two relay instances over real sockets share the test upstream in background mode, as
Flex Consumption's instances share Azure OpenAI. Hypothesis generates the timing: the
model's speed (instant to slow), cuts of the upstream streams at any event (the
creating POST's and every resume stream's, the relay's own heals included), a caller
who hangs up at any point and comes back on the other instance with `Last-Event-ID`
or `?after`, a cancel at any moment, and a caller who leaves before the response id
reached it. After every example:

- the caller's text over all its connections is the whole answer, once and in order
  (a prefix of it when cancelled);
- event ids strictly increase over all its connections;
- exactly one terminal event, the last of the last connection, whose status is the
  stored response's final status;
- the request that creates the response was sent once;
- every upstream connection is closed within 1 s of the caller's last stream ending;
- a response whose id never reached its caller is cancelled upstream.

CI runs a fixed, bounded set of examples (derandomized); `EXACTLY_ONCE_EXAMPLES=N` runs
more, with new random timings each run (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace

import httpx2
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responses_relay.service import ChatService
from responses_relay.settings import Settings
from responses_relay.sse import Decoder, Event

from .conftest import RESUMABLE, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario, StreamRecord

ANSWER = "".join(f"琵琶湖の見どころ{i}。" for i in range(24))
CI_EXAMPLES = 40
EXAMPLES = int(os.environ.get("EXACTLY_ONCE_EXAMPLES", str(CI_EXAMPLES)))
QUEUED_SECONDS = 0.3  # how long a response stays queued when the caller leaves before its id
TERMINALS = ("response.completed", "error")


@dataclass(frozen=True)
class Plan:
    delta_seconds: float
    chunk_chars: int
    stream_cuts: tuple[int | None, ...]  # frames before each upstream stream of the response is cut
    hang_ups: tuple[int, ...]  # events the caller reads on each connection before it hangs up
    by_header: tuple[bool, ...]  # each reconnection's cursor: Last-Event-ID (else ?after)
    cancel_after: int | None  # events read in all before the caller cancels (None: never)
    leave_before_id: bool  # the caller hangs up before response.created reaches it


def _few_zero_cuts(cuts: tuple[int | None, ...]) -> bool:
    return sum(cut == 0 for cut in cuts) <= 2  # a cut before any event is a heal without progress


plans = st.builds(
    Plan,
    delta_seconds=st.sampled_from([0.0, 0.0, 0.0005, 0.002]),
    chunk_chars=st.sampled_from([3, 8, 40]),
    # The creating stream is cut after response.created at the earliest: before it, nobody has the id.
    stream_cuts=st.builds(
        lambda first, rest: (first, *rest),
        st.one_of(st.none(), st.integers(1, 40)),
        st.lists(st.one_of(st.none(), st.integers(0, 40)), max_size=5),
    ).filter(_few_zero_cuts),
    hang_ups=st.lists(st.integers(1, 40), max_size=3).map(tuple),
    by_header=st.lists(st.booleans(), min_size=3, max_size=3).map(tuple),
    cancel_after=st.one_of(st.none(), st.integers(1, 60)),
    leave_before_id=st.sampled_from([False, False, False, False, False, True]),
)


class Caller:
    """A caller of two instances: it reads, hangs up, comes back on the other, may cancel."""

    def __init__(self, plan: Plan, servers: list[RelayServer]) -> None:
        self.plan = plan
        self.servers = servers
        self.connections: list[list[Event]] = []
        self.response_id: str | None = None
        self.cancel: asyncio.Task[httpx2.Response] | None = None

    @property
    def events(self) -> list[Event]:
        return [event for connection in self.connections for event in connection]

    async def converse(self) -> None:
        plan = self.plan
        method, path = "POST", "/api/chat"
        options: dict[str, object] = {"json": {"input": "滋賀"}}
        for attempt in range(len(plan.hang_ups) + 1):
            hang_up = plan.hang_ups[attempt] if attempt < len(plan.hang_ups) else None
            if not await self.read(self.servers[attempt % 2], method, path, hang_up, options):
                return
            cursor = max(int(event.id) for event in self.events if event.id is not None)
            method, path = "GET", f"/api/chat/{self.response_id}"
            if plan.by_header[attempt]:
                options = {"headers": {"last-event-id": str(cursor)}}
            else:
                options = {"params": {"after": cursor}}

    async def read(
        self, server: RelayServer, method: str, path: str, hang_up_after: int | None, options: dict[str, object]
    ) -> bool:
        """Read a stream to its end (False), or hang up after `hang_up_after` events (True)."""
        events: list[Event] = []
        self.connections.append(events)
        decoder = Decoder()
        async with server.client.stream(method, path, **options) as response:  # type: ignore[arg-type]
            assert response.status_code == 200, await response.aread()
            async for chunk in response.aiter_raw():
                for event in decoder.feed(chunk):
                    events.append(event)
                    self.see(event)
                    if event.event in TERMINALS:
                        return False
                    if hang_up_after is not None and len(events) >= hang_up_after:
                        return True
        return False

    def see(self, event: Event) -> None:
        if event.event == "response.created":
            self.response_id = str(orjson.loads(event.data)["response_id"])
        cancel_after = self.plan.cancel_after
        if cancel_after is not None and self.cancel is None and len(self.events) >= cancel_after:
            other = self.servers[len(self.connections) % 2]  # the instance this connection is not on
            self.cancel = asyncio.create_task(other.client.post(f"/api/chat/{self.response_id}/cancel"))


async def run(plan: Plan, servers: list[RelayServer], upstream: FaultyUpstream) -> None:
    upstream.records.clear()
    scenario = Scenario(
        text=ANSWER, delta_seconds=plan.delta_seconds, chunk_chars=plan.chunk_chars, stream_cuts=plan.stream_cuts
    )
    if plan.leave_before_id:
        # Queued, then slow enough that the relay's cancel comes before the model has finished.
        upstream.set_scenario(replace(scenario, queued_seconds=QUEUED_SECONDS, delta_seconds=0.01, chunk_chars=3))
        await check_no_orphan(servers[0], upstream)
        return
    upstream.set_scenario(scenario)
    caller = Caller(plan, servers)
    await caller.converse()
    ended = time.monotonic()
    if caller.cancel is not None:
        assert (await caller.cancel).status_code == 200
    check_caller(caller, upstream)
    await check_upstream_closed(upstream.records, ended)


def check_caller(caller: Caller, upstream: FaultyUpstream) -> None:
    events = caller.events
    ids = [int(event.id) for event in events if event.id is not None]
    assert ids == sorted(set(ids)), "ids strictly increase over all connections"
    deltas = [orjson.loads(event.data)["delta"] for event in events if event.event == "response.output_text.delta"]
    terminals = [event for event in events if event.event in TERMINALS]
    assert terminals == [caller.connections[-1][-1]], "exactly one terminal event, the last"
    assert caller.response_id is not None
    stored = upstream.stored(caller.response_id)
    assert stored is not None
    assert orjson.loads(terminals[0].data).get("status") == stored.status
    if stored.status == "cancelled":
        assert caller.cancel is not None
        assert ANSWER.startswith("".join(deltas))
    else:
        assert "".join(deltas) == ANSWER
    creates = [record for record in upstream.records if record.method == "POST" and "input" in record.request]
    assert len(creates) == 1, "the request that creates the response was sent once"


async def check_no_orphan(server: RelayServer, upstream: FaultyUpstream) -> None:
    """The caller hangs up on the opening comment, while the response is still queued."""
    async with server.client.stream("POST", "/api/chat", json={"input": "滋賀"}) as response:
        assert await anext(response.aiter_raw()) == b": stream open\n\n"
    stored = await asyncio.to_thread(upstream.relay_cancelled_the_orphan)
    assert stored.status == "cancelled"
    await check_upstream_closed(upstream.records, time.monotonic())


async def check_upstream_closed(records: list[StreamRecord], ended: float) -> None:
    for record in records:
        closed = await asyncio.to_thread(record.ended.wait, max(0.0, ended + 1.0 - time.monotonic()))
        assert closed, f"{record.method} {record.path}?{record.query} still open 1 s after the stream ended"


@asynccontextmanager
async def two_instances(settings: Settings) -> AsyncIterator[list[RelayServer]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(asynccontextmanager(serve)(ChatService(settings))) for _ in range(2)]


@settings(
    max_examples=EXAMPLES,
    derandomize=EXAMPLES <= CI_EXAMPLES,  # CI's examples are the same every run
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans)
def test_every_answer_arrives_exactly_once_whatever_the_timing(
    plan: Plan, upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    relay_settings = make_settings(**RESUMABLE, UPSTREAM_READ_TIMEOUT_SECONDS="10")

    async def example() -> None:
        async with two_instances(relay_settings) as servers:
            await asyncio.wait_for(run(plan, servers, upstream), 30)

    asyncio.run(example())
