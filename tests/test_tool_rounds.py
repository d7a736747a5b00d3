"""ToolRounds, without sockets: each round's upstream body is a scripted byte stream, the tools
are a Toolbox of small functions, and the next round is opened by a stand-in that records the
request it was given."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import ANY

import httpx2
import orjson
import pytest

from responses_relay.answer import Answer, AnswerRow, Owned
from responses_relay.chat_request import Approval, ChatRequest
from responses_relay.errors import RATE_LIMITED, HttpError
from responses_relay.guide_tools import TOOLS
from responses_relay.tool_rounds import ToolRounds
from responses_relay.tools import Toolbox, ToolResult, function_tool
from responses_relay.upstream_events import Payload, StreamBroken, UpstreamEvents

from .test_upstream_events import NO_WAIT, RESPONSE_ID, Store, wire

TOKYO = '{"timezone":"Asia/Tokyo"}'


def call_item(call_id: str, arguments: str = TOKYO, name: str = "local_time") -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name, "arguments": arguments}


def response_events(
    response_id: str,
    items: Sequence[dict[str, Any]] = (),
    *,
    text: str | None = None,
    terminal: str = "response.completed",
    status: str = "completed",
    usage: tuple[int, int] = (10, 5),
) -> list[dict[str, Any]]:
    """One response's events, numbered from 0: created, each item done, text deltas, the terminal event."""
    events: list[dict[str, Any]] = [{"type": "response.created", "response": {"id": response_id}}]
    output = list(items)
    events += [{"type": "response.output_item.done", "output_index": i, "item": item} for i, item in enumerate(items)]
    if text is not None:
        events.append({"type": "response.output_text.delta", "delta": text})
        output.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
    tokens = {"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)}
    response = {"id": response_id, "status": status, "output": output, "usage": tokens}
    events.append({"type": terminal, "response": response})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def events_of(events: list[dict[str, Any]], response_id: str | None = None) -> UpstreamEvents:
    return UpstreamEvents(httpx2.Response(200, stream=wire(events)), response_id=response_id)


class Opener:
    """Opens each next round with the next of `rounds`, recording the requests."""

    def __init__(self, *rounds: list[dict[str, Any]] | HttpError) -> None:
        self.rounds = list(rounds)
        self.requests: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest) -> UpstreamEvents:
        self.requests.append(request)
        following = self.rounds.pop(0)
        if isinstance(following, HttpError):
            raise following
        return events_of(following)


def rounds_of(
    first: list[dict[str, Any]],
    opener: Opener,
    *,
    request: ChatRequest | None = None,
    stored: bool = True,
    max_rounds: int = 5,
    tools: Toolbox | None = None,
) -> ToolRounds:
    return ToolRounds(
        events_of(first),
        request=request or ChatRequest("What time is it in Kyoto?"),
        open_round=opener,
        toolbox=tools or Toolbox(TOOLS.values(), timeout_seconds=5),
        max_rounds=max_rounds,
        stored=stored,
    )


async def collect(rounds: ToolRounds) -> list[Payload | ToolResult]:
    return [payload async for batch in rounds.batches() for payload in batch]


def kinds(payloads: list[Payload | ToolResult]) -> list[str]:
    return [payload.name if isinstance(payload, ToolResult) else str(payload["type"]) for payload in payloads]


async def test_a_response_without_calls_passes_through_as_it_is() -> None:
    first = response_events("resp_1", text="Kyoto")
    rounds = rounds_of(first, Opener())
    assert await collect(rounds) == first
    assert rounds.continuations == 0


async def test_calls_are_run_and_the_next_round_continues_the_stored_response() -> None:
    first = response_events("resp_1", [call_item("call_a")], usage=(10, 5))
    second = response_events("resp_2", text="It is 9:30 in Kyoto.", usage=(30, 7))
    opener = Opener(second)
    rounds = rounds_of(first, opener)
    passed = await collect(rounds)

    assert kinds(passed) == [
        "response.created",
        "response.output_item.done",
        "local_time",  # the result, while the first round's terminal event is held back
        "response.created",
        "response.output_text.delta",
        "response.completed",
    ]
    result = passed[2]
    assert isinstance(result, ToolResult)
    assert result.call_id == "call_a"
    assert orjson.loads(result.output)["timezone"] == "Asia/Tokyo"
    [request] = opener.requests
    assert request.previous_response_id == "resp_1"
    assert request.input == [{"type": "function_call_output", "call_id": "call_a", "output": result.output}]
    terminal = passed[-1]
    assert isinstance(terminal, dict)
    assert terminal["response"]["id"] == "resp_2"
    assert terminal["response"]["usage"] == {"input_tokens": 40, "output_tokens": 12, "total_tokens": 52}
    assert rounds.continuations == 1


async def test_two_calls_in_one_response_run_side_by_side_and_both_go_back() -> None:
    first = response_events("resp_1", [call_item("call_a"), call_item("call_b", '{"timezone":"Europe/Paris"}')])
    opener = Opener(response_events("resp_2", text="Both."))
    passed = await collect(rounds_of(first, opener))
    results = [payload for payload in passed if isinstance(payload, ToolResult)]
    assert sorted(result.call_id for result in results) == ["call_a", "call_b"]
    outputs = opener.requests[0].input
    assert isinstance(outputs, list)
    assert [item["call_id"] for item in outputs] == ["call_a", "call_b"]  # in the order of the calls
    assert "Europe/Paris" in outputs[1]["output"]


async def test_without_stored_responses_each_round_sends_the_whole_input_so_far() -> None:
    first = response_events("resp_1", [call_item("call_a")])
    second = response_events("resp_2", [call_item("call_b", '{"timezone":"Mars/Base"}')])
    opener = Opener(second, response_events("resp_3", text="Done."))
    question = ChatRequest([{"role": "user", "content": "Kyoto?"}])
    passed = await collect(rounds_of(first, opener, request=question, stored=False))
    results = [payload for payload in passed if isinstance(payload, ToolResult)]
    assert "Unknown time zone" in results[1].output  # an error output, and the answer goes on
    assert [request.previous_response_id for request in opener.requests] == [None, None]
    assert opener.requests[1].input == [
        {"role": "user", "content": "Kyoto?"},
        call_item("call_a"),
        results[0].input_item(),
        call_item("call_b", '{"timezone":"Mars/Base"}'),
        results[1].input_item(),
    ]
    assert kinds(passed)[-1] == "response.completed"


async def test_a_string_question_goes_back_as_a_user_message_with_approvals_answered_first() -> None:
    first = response_events("resp_1", [call_item("call_a")])
    first[-1]["response"]["output"] = []  # the calls seen done go back then
    opener = Opener(response_events("resp_2", text="Done."))
    request = ChatRequest("Kyoto?", approvals=(Approval("mcpr_1", approve=False),))
    await collect(rounds_of(first, opener, request=request, stored=False))
    continuation = opener.requests[0]
    assert continuation.input[:3] == [
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False},
        {"role": "user", "content": "Kyoto?"},
        call_item("call_a"),
    ]
    assert continuation.approvals == ()  # answered once, in the first request


@pytest.mark.parametrize("max_rounds", [0, 2])
async def test_a_model_that_keeps_asking_ends_with_tool_rounds_exceeded(max_rounds: int) -> None:
    asking = [response_events(f"resp_{n}", [call_item(f"call_{n}")]) for n in range(1, max_rounds + 2)]
    opener = Opener(*asking[1:])
    rounds = rounds_of(asking[0], opener, max_rounds=max_rounds)
    with pytest.raises(StreamBroken) as broken:
        await collect(rounds)
    assert broken.value.error.code == "tool_rounds_exceeded"
    assert len(opener.requests) == max_rounds == rounds.continuations


@pytest.mark.parametrize(
    ("items", "terminal", "status"),
    [
        ([call_item("call_a"), {"type": "mcp_approval_request", "id": "mcpr_1"}], "response.completed", "completed"),
        ([call_item("call_a")], "response.incomplete", "incomplete"),
        ([call_item("call_a")], "response.failed", "failed"),
    ],
    ids=["an approval is asked too", "incomplete", "failed"],
)
async def test_a_response_that_cannot_go_on_is_final_and_runs_nothing(
    items: list[dict[str, Any]], terminal: str, status: str
) -> None:
    first = response_events("resp_1", items, terminal=terminal, status=status)
    opener = Opener()
    passed = await collect(rounds_of(first, opener))
    assert passed == first
    assert opener.requests == []


async def test_calls_seen_done_count_when_the_completed_response_carries_no_output() -> None:
    first = response_events("resp_1", [call_item("call_a")])
    first[-1]["response"]["output"] = []
    opener = Opener(response_events("resp_2", text="Done."))
    await collect(rounds_of(first, opener))
    assert opener.requests[0].input == [{"type": "function_call_output", "call_id": "call_a", "output": ANY}]


async def test_a_refused_continuation_ends_the_stream_with_its_code() -> None:
    opener = Opener(HttpError(RATE_LIMITED, "The model service is busy; retry later"))
    with pytest.raises(StreamBroken) as broken:
        await collect(rounds_of(response_events("resp_1", [call_item("call_a")]), opener))
    assert (broken.value.error, broken.value.message) == (RATE_LIMITED, "The model service is busy; retry later")


async def test_the_response_being_read_is_unknown_while_the_next_round_opens() -> None:
    seen: list[str | None] = []
    rounds: ToolRounds

    async def opening(request: ChatRequest) -> UpstreamEvents:
        seen.append(rounds.response_id)
        return events_of(response_events("resp_2", text="Done."))

    rounds = ToolRounds(
        events_of(response_events("resp_1", [call_item("call_a")])),
        request=ChatRequest("Kyoto?"),
        open_round=opening,
        toolbox=Toolbox(TOOLS.values(), timeout_seconds=5),
        max_rounds=5,
        stored=True,
    )
    ids = [rounds.response_id async for _ in rounds.batches()]
    assert seen == [None]
    assert ids[0] == "resp_1"
    assert ids[-1] == "resp_2"


async def test_a_tool_that_fails_or_hangs_gives_an_error_output_and_the_answer_goes_on() -> None:
    def broken(city: str) -> str:
        """Fails."""
        raise RuntimeError("boom")

    async def hangs(city: str) -> str:
        """Never answers."""
        await asyncio.Event().wait()
        return city

    tools = Toolbox([function_tool(broken), function_tool(hangs)], timeout_seconds=0.05)
    items = [call_item("call_a", '{"city":"x"}', "broken"), call_item("call_b", '{"city":"x"}', "hangs")]
    opener = Opener(response_events("resp_2", text="Sorry."))
    passed = await collect(rounds_of(response_events("resp_1", items), opener, tools=tools))
    outputs = {result.call_id: orjson.loads(result.output) for result in passed if isinstance(result, ToolResult)}
    assert outputs == {
        "call_a": {"error": "The tool broken failed"},
        "call_b": {"error": "The tool hangs did not finish within 0.05 seconds"},
    }
    assert kinds(passed)[-1] == "response.completed"


@dataclass
class CancelledInStore(Store):
    """A stored response whose stream stops without its terminal event, as after a cancel."""

    response: dict[str, Any] = field(default_factory=dict)

    async def retrieve(self, response_id: str) -> dict[str, Any]:
        return self.response


async def test_a_round_ended_by_its_stored_status_ends_the_answer_with_the_usage_summed() -> None:
    second = response_events(RESPONSE_ID, text="It is", usage=(30, 7))[:-1]  # cancelled mid-answer
    usage = {"input_tokens": 30, "output_tokens": 7, "total_tokens": 37}
    store = CancelledInStore(second, response={"id": RESPONSE_ID, "status": "cancelled", "usage": usage})

    async def opening(request: ChatRequest) -> UpstreamEvents:
        response = httpx2.Response(200, stream=wire(second))
        return UpstreamEvents(response, stored=store, budget=NO_WAIT)

    rounds = ToolRounds(
        events_of(response_events("resp_1", [call_item("call_a")], usage=(10, 5))),
        request=ChatRequest("Kyoto?"),
        open_round=opening,
        toolbox=Toolbox(TOOLS.values(), timeout_seconds=5),
        max_rounds=5,
        stored=True,
    )
    passed = await collect(rounds)
    assert kinds(passed)[-1] == "response.output_text.delta"
    assert rounds.final_response == {
        "id": RESPONSE_ID,
        "status": "cancelled",
        "usage": {"input_tokens": 40, "output_tokens": 12, "total_tokens": 52},
    }


async def test_a_reader_that_stops_mid_tool_cancels_the_running_tools() -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    async def slow(city: str) -> str:
        """Slow."""
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append(city)
        return city

    tools = Toolbox([function_tool(slow)], timeout_seconds=30)
    opener = Opener()
    rounds = rounds_of(response_events("resp_1", [call_item("call_a", '{"city":"x"}', "slow")]), opener, tools=tools)

    async def read() -> None:
        async with aclosing(rounds.batches()) as batches:
            async for _ in batches:
                pass

    reading = asyncio.ensure_future(read())
    await started.wait()
    reading.cancel()  # as the relay's producer is when its caller leaves
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert cancelled == ["x"]
    assert opener.requests == []  # no next round
    await rounds.aclose()


MAP_TOOL = {"type": "function", "name": "show_map", "description": "A map", "parameters": {}, "strict": False}


async def test_a_call_of_the_callers_own_tool_ends_the_answer_with_it_pending() -> None:
    first = response_events("resp_1", [call_item("call_x", '{"city":"Kyoto"}', name="show_map")], usage=(10, 5))
    opener = Opener()
    rounds = rounds_of(first, opener, request=ChatRequest("Show Kyoto", client_tools=(MAP_TOOL,)))
    assert await collect(rounds) == first  # passed on whole, its terminal event included: nothing runs
    assert opener.requests == []
    assert not rounds.between_rounds


async def test_the_relays_calls_beside_the_callers_run_before_the_answer_ends() -> None:
    calls = [call_item("call_a"), call_item("call_x", "{}", name="show_map")]
    first = response_events("resp_1", calls, usage=(10, 5))
    opener = Opener()
    passed = await collect(rounds_of(first, opener, request=ChatRequest("?", client_tools=(MAP_TOOL,))))
    assert kinds(passed) == ["response.created", *["response.output_item.done"] * 2, "local_time", "response.completed"]
    result = passed[3]
    assert isinstance(result, ToolResult)
    assert result.call_id == "call_a"
    assert opener.requests == []


async def test_the_callers_tools_are_offered_again_in_every_round() -> None:
    first = response_events("resp_1", [call_item("call_a")])
    opener = Opener(response_events("resp_2", text="Here."))
    await collect(rounds_of(first, opener, request=ChatRequest("?", client_tools=(MAP_TOOL,))))
    assert [request.client_tools for request in opener.requests] == [(MAP_TOOL,)]


class HeldRelease(Answer):
    """A recorded answer whose reader owns each continuation, and whose release of a claim
    waits until the test lets it through."""

    def __init__(self) -> None:
        super().__init__("ans_test", "owner")
        self.releasing = asyncio.Event()
        self.let_through = asyncio.Event()
        self.released: list[Owned] = []
        self.done = asyncio.Event()

    async def continuation(self, round_id: str) -> Owned:
        return Owned(AnswerRow(rounds=(round_id,), claimed=round_id, etag="etag"))

    async def release(self, claim: Owned) -> None:
        self.releasing.set()
        await self.let_through.wait()
        self.released.append(claim)
        self.done.set()


async def test_a_claim_is_released_even_when_closing_the_rounds_is_cancelled_again() -> None:
    # The relay cancels its producer when the caller leaves, and again when the body ends while
    # the producer is still closing: the claim must still be given up, or another instance's
    # resume waits for it to expire.
    started = asyncio.Event()

    async def slow(city: str) -> str:
        """Slow."""
        started.set()
        await asyncio.Event().wait()
        return city

    answer = HeldRelease()
    first = response_events("resp_1", [call_item("call_a", '{"city":"x"}', "slow")])
    rounds = ToolRounds(
        events_of(first),
        request=ChatRequest("What time is it in Kyoto?"),
        open_round=Opener(),
        toolbox=Toolbox([function_tool(slow)], timeout_seconds=30),
        max_rounds=5,
        stored=True,
        answer=answer,
    )
    reading = asyncio.ensure_future(collect(rounds))
    await started.wait()  # the round's continuation is claimed; its call runs
    reading.cancel()  # the caller left
    with pytest.raises(asyncio.CancelledError):
        await reading
    closing = asyncio.ensure_future(rounds.aclose())
    await answer.releasing.wait()
    closing.cancel()  # cancelled again while it releases
    with pytest.raises(asyncio.CancelledError):
        await closing
    answer.let_through.set()
    async with asyncio.timeout(5):
        await answer.done.wait()
    assert [claim.row.claimed for claim in answer.released] == ["resp_1"]


class HeldRecord(HeldRelease):
    """HeldRelease whose record of an opened round never completes."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = asyncio.Event()
        self.let_through.set()

    async def opened(
        self, claim: Owned, next_round: str, usage: dict[str, int] | None, results: list[ToolResult]
    ) -> bool:
        self.recording.set()
        await asyncio.Event().wait()
        return True


async def test_a_stream_closed_while_it_records_the_round_it_opened_gives_its_claim_up() -> None:
    answer = HeldRecord()
    first = response_events("resp_1", [call_item("call_a")])
    rounds = ToolRounds(
        events_of(first),
        request=ChatRequest("What time is it in Kyoto?"),
        open_round=Opener(response_events("resp_2", text="It is 9:30.")),
        toolbox=Toolbox(TOOLS.values(), timeout_seconds=5),
        max_rounds=5,
        stored=True,
        answer=answer,
    )
    reading = asyncio.ensure_future(collect(rounds))
    await answer.recording.wait()  # the next round is open; its record is being written
    reading.cancel()  # the relay stops reading: its caller left
    with pytest.raises(asyncio.CancelledError):
        await reading
    await rounds.aclose()
    assert [claim.row.claimed for claim in answer.released] == ["resp_1"]
