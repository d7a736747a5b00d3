"""The rounds of one answer: when a response ends asking for function calls, the relay runs
them and continues the answer with another response, all inside the caller's one stream.

`ToolRounds` sits between the upstream (`UpstreamEvents`, one response each) and the relay.
It passes each round's events on as they come, except the terminal event of a round that
asked for calls: that one it holds back, runs the calls (each yields a `ToolResult` as it
finishes), and opens the next round, whose `response.created` comes next. The next request
names the ended response (`previous_response_id`), or within a conversation the conversation,
and carries one `function_call_output` per call; where the upstream stores no responses it
carries the whole input so far instead.
The final round's terminal event (or stored response) carries the usage summed over the
rounds. After `max_rounds` continuations, a response that still asks for calls ends the
stream with `tool_rounds_exceeded`.

A round that ends with MCP approval requests is final: the caller answers them with a new
chat request. So is a round that calls the caller's own tools (`ChatRequest.client_tools`, AG-UI's
front-end tools): the relay runs its own calls of the round, then passes the round's end on, the
caller's calls pending. A relay whose caller left is cancelled by the relay, so it starts no round.

Across instances (`Answer`, where the Function App's storage keeps answers): a round's
continuation is claimed before its calls run. A reader that finds it claimed by another
follows instead: it passes on the recorded results and reads the next round from its start,
so each call runs once. A stopped answer opens no round (checked before the next round is
opened, and again when it is recorded: a round opened meanwhile is cancelled). The final usage
adds the recorded usage of the rounds this stream did not read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing, suppress
from dataclasses import replace
from typing import Any

from .access.estimate import estimate_tokens
from .answer import Answer, Cancelled, Follow, Owned
from .chat_request import ChatRequest, input_items
from .errors import TOOL_ROUNDS_EXCEEDED, HttpError
from .events import TERMINAL_EVENTS
from .telemetry.observer import UNOBSERVED, RequestObserver
from .tools import FunctionCall, Toolbox, ToolResult
from .upstream_events import Payload, StreamBroken, UpstreamEvents

# Opens the next round's stream from its request.
OpenRound = Callable[[ChatRequest], Awaitable[UpstreamEvents]]
# The stream of a round another reader opened, from its start.
FollowRound = Callable[[str], Awaitable[UpstreamEvents]]
# Cancels a round upstream (background mode), by its id.
CancelRound = Callable[[str], Awaitable[object]]
# Reserves the tokens a round's input may cost before the round is opened; HttpError when it cannot.
ReserveRound = Callable[[int], Awaitable[None]]

logger = logging.getLogger("responses_relay.tool_rounds")

_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")
# The deltas of what the model writes (each about a token): text, refusals, reasoning, call arguments.
OUTPUT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta",
    }
)
_RELEASE_SECONDS = 2.0
_RELEASING: set[asyncio.Future[None]] = set()  # releases going on after their closer was cancelled


class HandOffNow(Exception):
    """A round ended asking for tools too late in the stream for its continuation to fit: the
    caller is handed off after `after`, the last event it has of the round, so that a resume
    (with a time limit of its own) reads the round's end and continues it."""

    def __init__(self, after: int | None) -> None:
        super().__init__(after)
        self.after = after


class ToolRounds:
    def __init__(
        self,
        first: UpstreamEvents,
        *,
        request: ChatRequest,
        open_round: OpenRound,
        toolbox: Toolbox,
        max_rounds: int,
        stored: bool,
        answer: Answer | None = None,
        follow_round: FollowRound | None = None,
        cancel_round: CancelRound | None = None,
        hand_off: tuple[float, float] | None = None,
        resumed: bool = False,
        input_estimate: int = 0,
        reserve_round: ReserveRound | None = None,
        observer: RequestObserver = UNOBSERVED,
    ) -> None:
        """`hand_off`: (the monotonic time the stream hands its caller off at, the longest a round's
        continuation takes); a round that ends later than that allows is not continued here.
        `input_estimate`: the first round's input, in tokens; `reserve_round`: reserves what the
        next round's input costs before it is opened (a budget)."""
        self._round = first
        self._observer = observer  # telemetry's: told of each tool call
        self._delivered = first.cursor  # the last sequence number passed on of the round being read
        self._hand_off = hand_off
        self._resumed = resumed  # read from a round the caller named: earlier rounds' usage is in the record
        self._answer = answer or Answer(None, None)
        self._follow_round = follow_round
        self._cancel_round = cancel_round
        self._claim: Owned | None = None  # held from the claim of a round's continuation until it is recorded
        self._recording: tuple[dict[str, int] | None, list[ToolResult]] | None = None  # an opened round's
        self._counted: set[str] = set()  # the rounds whose usage this stream added up
        self._reserve_round = reserve_round
        self._round_input = input_estimate  # the round being read: its input, estimated
        self._round_output = 0  # its output deltas seen
        # What each continuation shares with the first request; not its input, which may be large
        # and would otherwise be held for the whole stream.
        self._request = replace(request, input=[], approvals=())
        self._client_tools = frozenset(tool["name"] for tool in request.client_tools)
        self._open_round = open_round
        self._toolbox = toolbox
        self._max_rounds = max_rounds
        # Not stored upstream: the whole input so far, which each continuation sends again.
        self._history: list[dict[str, Any]] | None = None if stored else input_items(request.upstream_input())
        self._usage: dict[str, int] = {}
        self._opening = False
        self.continuations = 0
        self.between_rounds = False  # a round ended asking for calls; the next is not open yet
        self.final_response: dict[str, Any] | None = None  # the stored response that ended it, without an event

    @property
    def answer(self) -> Answer:
        return self._answer

    @property
    def response_id(self) -> str | None:
        """The response being read; None while the next round is being opened."""
        return None if self._opening else self._round.response_id

    @property
    def cursor(self) -> int | None:
        """The last sequence number passed on of the round being read (a round's end held back while
        its calls run is not)."""
        return self._delivered

    async def batches(self) -> AsyncGenerator[list[Payload | ToolResult]]:
        """The events of each round as each network read brings them, and the tools' results."""
        while True:
            output: list[dict[str, Any]] = []  # the round's output items, as they are done
            ending: dict[str, Any] | None = None
            async with aclosing(self._round.batches()) as batches:
                async for batch in batches:
                    if self._recording is not None and not await self._record_opened():
                        return  # stopped while the round opened: the caller never sees it
                    passed: list[Payload | ToolResult] = []
                    for payload in batch:
                        kind = payload.get("type")
                        sequence = payload.get("sequence_number")
                        self._round_output += kind in OUTPUT_DELTAS
                        if kind == "response.output_item.done" and isinstance(payload.get("item"), dict):
                            output.append(payload["item"])
                        if kind not in TERMINAL_EVENTS:
                            passed.append(payload)
                            self._delivered = sequence if type(sequence) is int else self._delivered
                            continue
                        ending = payload
                        if not _calls(_response(payload), output):
                            passed.append(await self._summed(payload))
                            self._delivered = sequence if type(sequence) is int else self._delivered
                    if passed:
                        yield passed
            response = _response(ending) if ending is not None else self._round.final_response or {}
            calls = _calls(response, output)
            if not calls:
                if ending is None and self._round.final_response is not None:
                    self.final_response = (await self._summed({"response": response}))["response"]
                return
            if any(call.name in self._client_tools for call in calls):
                async with aclosing(self._leave_to_the_caller(calls, ending, response)) as left:
                    async for leaving in left:
                        yield leaving
                return
            async with aclosing(self._continue(response, output, calls)) as results:
                async for result in results:
                    yield [result]
            if self.final_response is not None:
                return

    async def _continue(
        self, response: dict[str, Any], output: list[dict[str, Any]], calls: list[FunctionCall]
    ) -> AsyncGenerator[ToolResult]:
        """Continue the answer after a round that ended asking for `calls`: run them and open the
        next round; or follow the reader that does; or, when the answer was stopped, end it
        (`final_response`). Each call's result as soon as it is there."""
        if self._too_late():
            raise HandOffNow(self._delivered)
        ended = str(response.get("id") or self._round.response_id)
        self._count_usage(ended, response)
        self.between_rounds = True
        if self.continuations >= self._max_rounds:
            message = f"The model still asked for tools after {self._max_rounds} rounds"
            raise StreamBroken(TOOL_ROUNDS_EXCEEDED, message)
        claim = await self._answer.continuation(ended)
        if isinstance(claim, Cancelled):
            await self._stopped()
            return
        if isinstance(claim, Follow):
            recorded = _recorded_results(claim, calls)
            for result in recorded:
                yield result
            self._round_input = _next_input(response, recorded)
            await self._follow(claim.next_round)
            return
        self._claim = claim
        results: list[ToolResult] = []
        async with aclosing(self._run(calls)) as finished:
            async for result in finished:
                results.append(result)
                yield result
        if await self._answer.cancelled():
            await self._stopped()
            return
        await self._reserve(_next_input(response, results))
        await self._next_round(response, _output(response) or output, calls, results)
        self._recording = (_usage(response), results)

    async def _leave_to_the_caller(
        self, calls: list[FunctionCall], ending: dict[str, Any] | None, response: dict[str, Any]
    ) -> AsyncGenerator[list[Payload | ToolResult]]:
        """A round that calls the caller's tools ends the answer with those calls pending, once the
        relay's own calls of the round have run (their results go back with the caller's)."""
        self.between_rounds = True  # a hand-off waits for the round's end
        async with aclosing(self._run([call for call in calls if call.name not in self._client_tools])) as finished:
            async for result in finished:
                yield [result]
        self.between_rounds = False
        if ending is None:
            self.final_response = (await self._summed({"response": response}))["response"]
            return
        sequence = ending.get("sequence_number")
        self._delivered = sequence if type(sequence) is int else self._delivered
        yield [await self._summed(ending)]

    async def _run(self, calls: list[FunctionCall]) -> AsyncGenerator[ToolResult]:
        """The calls' results, run side by side, each as soon as it is there."""
        tasks = [asyncio.ensure_future(self._observer.tool_call(call, self._toolbox.run(call))) for call in calls]
        try:
            for finished in asyncio.as_completed(tasks):
                yield await finished
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _next_round(
        self, ended: dict[str, Any], items: list[dict[str, Any]], calls: list[FunctionCall], results: list[ToolResult]
    ) -> None:
        """Open the round that continues `ended` (whose output `items` asked for `calls`)."""
        by_call = {result.call_id: result for result in results}
        outputs = [by_call[call.call_id].input_item() for call in calls]
        if self._history is None:
            # Within a conversation the next round continues the conversation, never a response.
            in_conversation = self._request.conversation_id is not None
            previous = None if in_conversation else ended.get("id") or self._round.response_id
            request = replace(self._request, input=outputs, previous_response_id=previous, approvals=())
        else:
            self._history += [*items, *outputs]
            request = replace(self._request, input=list(self._history), approvals=())
        await self._switch(lambda: self._open_round(request))

    async def _reserve(self, tokens: int) -> None:
        """Reserve the next round's input before it is opened; the round becomes the one read."""
        if self._reserve_round is not None:
            try:
                await self._reserve_round(tokens)
            except HttpError as error:
                raise StreamBroken(error.error, error.message) from None
        self._round_input = tokens

    async def _follow(self, next_round: str) -> None:
        """Read the round another reader opened, from its start."""
        assert self._follow_round is not None, "an answer that is recorded can be followed"
        follow_round = self._follow_round
        await self._switch(lambda: follow_round(next_round))

    async def _switch(self, opening: Callable[[], Awaitable[UpstreamEvents]]) -> None:
        await self._round.aclose()
        self.continuations += 1
        self._opening = True
        try:
            self._round = await opening()
        except HttpError as error:
            raise StreamBroken(error.error, error.message) from None
        finally:
            self._opening = False
        self._delivered = None
        self._round_output = 0
        self.between_rounds = False

    @property
    def spent(self) -> int:
        """The usage of the rounds that ended, as far as this stream knows (total tokens)."""
        return self._usage.get("total_tokens", 0)

    @property
    def unread_cost(self) -> int:
        """The round being read, had it to stop now: its input, estimated, and the output seen."""
        return self._round_input + self._round_output

    def _too_late(self) -> bool:
        """The stream hands its caller off before a continuation started now could end."""
        if self._hand_off is None:
            return False
        deadline, continuation_seconds = self._hand_off
        return time.monotonic() + continuation_seconds > deadline

    async def _record_opened(self) -> bool:
        """Record the round this stream opened, once its id is known; False when the answer was
        stopped meanwhile: the round is then cancelled and the answer ends as cancelled."""
        opened = self._round.response_id
        if self._recording is None or self._claim is None or opened is None:
            return True
        (usage, results), claim = self._recording, self._claim
        self._recording = None
        going_on = await self._answer.opened(claim, opened, usage, results)
        self._claim = None  # only now: a stream closed while it records gives the claim up
        if going_on:
            return True
        if self._cancel_round is not None:
            try:
                await self._cancel_round(opened)
            except HttpError as error:  # it ended first, most likely; the caller is told it stopped anyway
                logger.warning("could not cancel a round opened as its answer was stopped: %s", error.code)
        await self._stopped()
        return False

    async def _stopped(self) -> None:
        """The answer was stopped between rounds: it ends as cancelled, with the usage so far."""
        self.between_rounds = False
        await self._count_unread_rounds()
        self.final_response = {"status": "cancelled", "usage": dict(self._usage)}

    async def _count_unread_rounds(self) -> None:
        """Add the recorded usage of the answer's rounds that this stream did not read: a resumed
        stream's (a stream from the answer's start read every round, or followed it)."""
        if not self._resumed:
            return
        for round_id, recorded in (await self._answer.usage_of_rounds()).items():
            if round_id not in self._counted:
                self._count_usage(round_id, {"usage": recorded})

    def _count_usage(self, round_id: str, response: dict[str, Any]) -> None:
        usage = _usage(response)
        for key, value in (usage or {}).items():
            self._usage[key] = self._usage.get(key, 0) + value
        self._counted.add(round_id)

    async def _summed(self, terminal: dict[str, Any]) -> dict[str, Any]:
        """The terminal event with its usage added to the rounds' before it, those this stream
        did not read (before a hand-off, or on another instance) included."""
        response = _response(terminal)
        usage = response.get("usage")
        if not isinstance(usage, dict):
            return terminal
        await self._count_unread_rounds()
        total = {key: self._usage.get(key, 0) + usage[key] for key in _USAGE_KEYS if type(usage.get(key)) is int}
        return {**terminal, "response": {**response, "usage": {**usage, **total}}}

    async def aclose(self) -> None:
        claim, self._claim = self._claim, None
        try:
            await self._round.aclose()
        finally:
            if claim is not None:  # ended before the round it claimed was opened (and recorded)
                await self._release(claim)

    async def _release(self, claim: Owned) -> None:
        """Give the claim up, so that another reader continues the round at once. Shielded: the
        relay may cancel its producer again while it closes this (its caller left, then its body
        ended), and a lost release holds up the other reader until the claim expires."""
        releasing = asyncio.ensure_future(self._release_within_bounds(claim))
        _RELEASING.add(releasing)
        releasing.add_done_callback(_RELEASING.discard)
        await asyncio.shield(releasing)

    async def _release_within_bounds(self, claim: Owned) -> None:
        with suppress(Exception):  # another reader then waits for the claim to expire instead
            async with asyncio.timeout(_RELEASE_SECONDS):
                await self._answer.release(claim)


def _response(terminal: dict[str, Any] | None) -> dict[str, Any]:
    response = terminal.get("response") if terminal is not None else None
    return response if isinstance(response, dict) else {}


def _next_input(ended: dict[str, Any], results: Sequence[ToolResult]) -> int:
    """What the round that continues `ended` takes as input, estimated: all of `ended`'s context
    and output (the model service sends it again), and the calls' outputs."""
    usage = _usage(ended) or {}
    outputs = estimate_tokens(*(result.output for result in results)) if results else 0
    return usage.get("input_tokens", 0) + usage.get("output_tokens", 0) + outputs


def _usage(response: dict[str, Any]) -> dict[str, int] | None:
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    return {key: usage[key] for key in _USAGE_KEYS if type(usage.get(key)) is int} or None


def _recorded_results(claim: Follow, calls: list[FunctionCall]) -> list[ToolResult]:
    """The results another reader recorded for `calls`, in the calls' order."""
    by_call = {result.call_id: result for result in claim.results}
    return [
        ToolResult(recorded.call_id, recorded.name, recorded.output)
        for call in calls
        if (recorded := by_call.get(call.call_id)) is not None
    ]


def _output(response: dict[str, Any]) -> list[dict[str, Any]]:
    output = response.get("output")
    return [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []


def _calls(response: dict[str, Any], done: list[dict[str, Any]]) -> list[FunctionCall]:
    """The function calls a completed response asks for (its output, else the items seen done);
    none when it ended otherwise, or also asks for an approval, which only the caller can give."""
    if response.get("status") != "completed":
        return []
    items = _output(response) or done
    if any(item.get("type") == "mcp_approval_request" for item in items):
        return []
    return [
        FunctionCall(item["call_id"], item["name"], item["arguments"])
        for item in items
        if item.get("type") == "function_call"
        and all(isinstance(item.get(field), str) for field in ("call_id", "name", "arguments"))
    ]
