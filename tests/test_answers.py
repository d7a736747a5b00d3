"""An answer across instances (responses_relay/answer.py, storage/answers.py), over real sockets:
two relay instances in background mode sharing the demo upstream and the storage emulator
(Azurite). A Stop of any of an answer's responses, on either instance, stops the whole answer;
each tool call runs once whoever reads the round it ends; a hand-off always moves forward; the
final usage counts every round, whichever streams read them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import orjson
import pytest

from responses_relay.service import ChatService
from responses_relay.settings import Settings
from responses_relay.tools import Tool, function_tool

from .azurite import Azurite
from .conftest import OWNER_SECRET, RESUMABLE, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .sse_client import Received, read_sse
from .test_tool_calls import posts

QUESTION = orjson.dumps({"input": "京都は今何時？"})  # the demo calls local_time, then answers from it
JSON = {"content-type": "application/json"}


@asynccontextmanager
async def instances(settings: Settings, tools: Sequence[Tool]) -> AsyncIterator[list[RelayServer]]:
    """Two relay instances, each its own ChatService on its own socket, offering `tools`."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(asynccontextmanager(serve)(ChatService(settings, tools=tools)))
            for _ in range(2)
        ]


class HeldTool:
    """local_time that waits until the test lets it answer, counting its runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.then: Callable[[], None] = lambda: None  # what it does before it answers

    def tool(self) -> Tool:
        async def local_time(timezone: str) -> dict[str, str]:
            """The time in a time zone."""
            self.runs += 1
            self.started.set()
            await self.release.wait()
            self.then()
            return {"timezone": timezone, "local_time": "2026-12-07T09:30:00+09:00"}

        return function_tool(local_time)


def asking(server: RelayServer, created: asyncio.Future[str]) -> asyncio.Future[Received]:
    """POST the question, reading its whole stream; `created` resolves with the first round's id."""
    return asyncio.ensure_future(
        read_sse(server.client, "POST", "/api/chat", content=QUESTION, headers=JSON, created=created)
    )


def completed(received: Received) -> dict[str, Any]:
    [terminal] = received.terminals
    assert terminal is received.events[-1]
    assert terminal.event == "response.completed"
    return dict(orjson.loads(terminal.data))


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**RESUMABLE)


@pytest.mark.parametrize("where", ["on the streaming instance", "on the other instance"])
async def test_a_stop_during_a_tool_call_stops_the_answer_and_says_cancelled(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings], where: str
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    held = HeldTool()
    async with instances(make_settings(**RESUMABLE, TOOL_TIMEOUT_SECONDS="5"), [held.tool()]) as [a, b]:
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        reading = asking(a, created)
        await held.started.wait()  # the first round has ended; its call runs
        first_round = await created  # the id the page knows: the previous round's
        stopper = a if where == "on the streaming instance" else b
        cancelled = await stopper.client.post(f"/api/chat/{first_round}/cancel")
        held.release.set()
        received = await reading
    assert cancelled.json() == {"id": first_round, "status": "cancelled"}
    assert completed(received)["status"] == "cancelled"
    assert len(posts(upstream)) == 1, "no round after the stop"


@pytest.mark.parametrize("where", ["on the streaming instance", "on the other instance"])
async def test_a_stop_after_the_next_round_was_asked_for_cancels_that_round_as_soon_as_its_id_is_known(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings], where: str
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    held = HeldTool()
    held.release.set()
    # The next round's request returns at once, but its response stays queued (no id yet) until released.
    long = Scenario(text="京都" * 200, chunk_chars=2, delta_seconds=0.005, hold_queued=True)  # not over before the stop
    held.then = lambda: upstream.set_scenario(long)
    async with instances(make_settings(**RESUMABLE), [held.tool()]) as [a, b]:
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        reading = asking(a, created)
        await asyncio.to_thread(upstream.wait_for_requests, 2)  # the next round is being created
        stopper = a if where == "on the streaming instance" else b
        cancelled = await stopper.client.post(f"/api/chat/{await created}/cancel")
        upstream.release()
        received = await reading
        first_round = await created
        cancel = await asyncio.to_thread(
            upstream.wait_for_record, lambda record: record.path.endswith("/cancel") and first_round not in record.path
        )
        second_round = upstream.stored(cancel.path.split("/")[-2])
        assert second_round is not None
    assert cancelled.json()["status"] == "cancelled"
    assert completed(received)["status"] == "cancelled"
    assert len(received.payloads("response.created")) == 1, "the caller never saw the stopped round"
    assert second_round.status == "cancelled"
    assert len(posts(upstream)) == 2


async def test_two_readers_of_a_round_that_asks_for_a_tool_run_it_once_and_both_read_the_next_round(
    upstream: FaultyUpstream, settings: Settings
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    held = HeldTool()
    async with instances(settings, [held.tool()]) as [a, b]:
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        reading = asking(a, created)
        await held.started.wait()  # a claimed the round's continuation and runs its call
        # A second tab (or the page after a cut) reads the same round on the other instance.
        second_tab = asyncio.ensure_future(read_sse(b.client, "GET", f"/api/chat/{await created}"))
        await asyncio.to_thread(
            upstream.wait_for_record, lambda record: record.method == "GET" and "stream" in record.query
        )
        held.release.set()
        first, second = await reading, await second_tab
    assert held.runs == 1
    assert len(posts(upstream)) == 2, "one next round"
    assert first.payloads("tool.result") == second.payloads("tool.result")
    assert first.text == second.text
    assert first.text.startswith("京都は今 ")
    rounds = [payload["response_id"] for payload in second.payloads("response.created")]
    assert rounds == [payload["response_id"] for payload in first.payloads("response.created")]
    assert completed(first)["usage"] == completed(second)["usage"]


async def test_a_round_that_ends_too_late_for_its_tools_is_handed_off_and_continued_once(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    # The question's first round is slow: it ends after the stream's time allows a continuation.
    upstream.set_scenario(Scenario(delta_seconds=0.001, queued_seconds=0.3))
    held = HeldTool()
    held.release.set()
    fits = {
        "TOOL_TIMEOUT_SECONDS": "0.2",
        "UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.2",
        "UPSTREAM_READ_TIMEOUT_SECONDS": "0.5",
    }
    settings = make_settings(**RESUMABLE, **fits, STREAM_TIME_LIMIT_SECONDS="1")
    async with instances(settings, [held.tool()]) as [a, b]:
        streams = [await read_sse(a.client, "POST", "/api/chat", content=QUESTION, headers=JSON)]
        upstream.set_scenario(Scenario(delta_seconds=0.001))
        while (handed_off := streams[-1].payloads("stream.resume")) and len(streams) < 5:
            [resume] = handed_off
            path, after = f"/api/chat/{resume['response_id']}", resume["after"]
            streams.append(await read_sse(b.client, "GET", path, params={"after": after}))
    first, rest = streams[0], streams[1:]
    assert [event.event for event in first.events][-2:] == ["tool.call", "stream.resume"]
    assert len(rest) == 1, "the resume continued the round in one stream"
    assert held.runs == 1
    assert [event.event for event in rest[0].events][:2] == ["tool.result", "response.created"]
    assert completed(rest[0])["status"] == "completed"
    assert len(posts(upstream)) == 2


async def test_the_final_usage_counts_every_round_whichever_streams_read_them(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    held = HeldTool()
    held.release.set()
    # The next round is long: the stream reaches its time limit in it, and hands its caller off.
    held.then = lambda: upstream.set_scenario(Scenario(text="京都" * 120, chunk_chars=2, delta_seconds=0.01))
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    fits = {
        "TOOL_TIMEOUT_SECONDS": "0.1",
        "UPSTREAM_CONNECT_TIMEOUT_SECONDS": "0.2",
        "UPSTREAM_READ_TIMEOUT_SECONDS": "0.5",
    }
    settings = make_settings(**RESUMABLE, **fits, STREAM_TIME_LIMIT_SECONDS="1")
    earlier = set(upstream.stored_responses())
    async with instances(settings, [held.tool()]) as [a, b]:
        streams = [await read_sse(a.client, "POST", "/api/chat", content=QUESTION, headers=JSON)]
        while (handed_off := streams[-1].payloads("stream.resume")) and len(streams) < 8:
            [resume] = handed_off
            server = (a, b)[len(streams) % 2]
            path = f"/api/chat/{resume['response_id']}"
            streams.append(await read_sse(server.client, "GET", path, params={"after": resume["after"]}))
    assert len(streams) >= 2, "handed off at least once"
    assert held.runs == 1
    rounds = [stored for stored in upstream.stored_responses() if stored not in earlier]
    assert len(rounds) == 2
    billed = sum(stored.response()["usage"]["total_tokens"] for stored in rounds)
    assert completed(streams[-1])["usage"]["total_tokens"] == billed


async def test_an_answer_goes_on_when_its_record_cannot_be_reached(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings], azurite: Azurite
) -> None:
    # The storage account is down: the answer's rounds go on as they would on one instance.
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    closed = azurite.connection_string.replace(f"127.0.0.1:{azurite.port}", "127.0.0.1:9")  # the discard port
    settings = make_settings(OWNER_HASH_SECRET=OWNER_SECRET, AzureWebJobsStorage=closed)
    held = HeldTool()
    held.release.set()
    async with instances(settings, [held.tool()]) as [a, _]:
        received = await read_sse(a.client, "POST", "/api/chat", content=QUESTION, headers=JSON)
    assert held.runs == 1
    assert received.text.startswith("京都は今 ")
    assert completed(received)["status"] == "completed"


async def test_a_caller_cut_while_the_next_round_is_created_finds_it_going_on_from_the_other_instance(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    # The round the caller never saw is in the answer's record, so a resume of the round the caller
    # has reaches it: it is not an orphan to cancel.
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    held = HeldTool()
    held.release.set()
    held.then = lambda: upstream.set_scenario(
        Scenario(text="京都" * 20, chunk_chars=2, delta_seconds=0.001, hold_headers=True)
    )
    async with instances(make_settings(**RESUMABLE), [held.tool()]) as [a, b]:
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        reading = asking(a, created)
        await asyncio.to_thread(upstream.wait_for_requests, 2)  # the next round is being created
        reading.cancel()  # the caller is cut meanwhile
        with pytest.raises(asyncio.CancelledError):
            await reading
        upstream.release()
        rest = await read_sse(b.client, "GET", f"/api/chat/{await created}")
    assert completed(rest)["status"] == "completed"
    assert "京都" * 20 in rest.text
    assert not [record for record in upstream.records if record.path.endswith("/cancel")]
    assert len(posts(upstream)) == 2, "no round ran twice"
