"""Tool calls over real sockets: the relay under uvicorn, the real openai SDK, and an independent
scripted Responses server (tests/scripted_upstream.py) as the model, so each test says exactly
which calls the model makes: one round and several, two calls at once, bad arguments, tools that
fail or hang, the rounds cap, no tools, stored responses or the whole input, MCP approvals. Then
the demo upstream's tool answers, and resumable mode across rounds with two relay instances."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from responses_relay.guide_tools import TOOLS
from responses_relay.service import ChatService
from responses_relay.settings import Settings, load_settings
from responses_relay.sse import Decoder, Event
from responses_relay.tools import Tool, function_tool

from .azurite import Azurite
from .conftest import FAKE_KEY, RESUMABLE, RelayServer, serve
from .faulty_upstream import FaultyUpstream, Scenario, StreamRecord
from .scripted_upstream import ApprovalRequest, FunctionCall, McpCall, ScriptedUpstream, Text, refusal, reply
from .sse_client import Received, chat, read_sse
from .test_resume import instances, response_id, resume

TOKYO = FunctionCall("local_time", '{"timezone": "Asia/Tokyo"}')
JSON = {"content-type": "application/json"}
QUESTION = {"input": "京都は今何時？"}


@asynccontextmanager
async def relay_to(
    scripted: ScriptedUpstream, tools: Sequence[Tool] | None = None, **environ: str
) -> AsyncIterator[RelayServer]:
    settings = load_settings({"OPENAI_ENDPOINT": scripted.base_url, "OPENAI_API_KEY": FAKE_KEY, **environ})
    async for server in serve(ChatService(settings, tools=tools)):
        yield server


async def ask(scripted: ScriptedUpstream, body: object = QUESTION, **options: Any) -> Received:
    async with relay_to(scripted, **options) as relay:
        return await chat(relay.client, body)


def kinds(received: Received) -> list[str | None]:
    return [event.event for event in received.events]


def tool_outputs(received: Received) -> list[Any]:
    return [orjson.loads(payload["output"]) for payload in received.payloads("tool.result")]


def ids_by_response(received: Received) -> dict[str, list[int]]:
    """Each round's event ids, by its response id."""
    rounds: dict[str, list[int]] = {}
    current = ""
    for event in received.events:
        if event.event == "response.created":
            current = orjson.loads(event.data)["response_id"]
        if event.id is not None:
            rounds.setdefault(current, []).append(int(event.id))
    return rounds


async def test_one_round_runs_local_time_and_the_answer_goes_on_in_the_same_stream(scripted: ScriptedUpstream) -> None:
    scripted.script(reply(TOKYO, usage=(30, 8)), reply(Text("It is nine in the morning."), usage=(50, 7)))
    received = await ask(scripted)

    assert received.status == 200
    assert kinds(received) == [
        "response.created",
        "tool.call",
        "tool.result",
        "response.created",
        "response.output_text.delta",
        "response.completed",
    ]
    [call] = received.payloads("tool.call")
    assert call == {
        "type": "tool.call",
        "call_id": "call_resp_scripted1_0",
        "name": "local_time",
        "arguments": '{"timezone": "Asia/Tokyo"}',
    }
    [result] = received.payloads("tool.result")
    assert (result["call_id"], result["name"]) == (call["call_id"], "local_time")
    output = orjson.loads(result["output"])
    assert output["timezone"] == "Asia/Tokyo"
    assert datetime.fromisoformat(output["local_time"]).utcoffset() == timedelta(hours=9)
    [result_event] = [event for event in received.events if event.event == "tool.result"]
    assert result_event.id is None  # the relay's own event
    assert [created["response_id"] for created in received.payloads("response.created")] == [
        "resp_scripted1",
        "resp_scripted2",
    ]
    assert received.text == "It is nine in the morning."
    [completed] = received.payloads("response.completed")
    assert completed["response_id"] == "resp_scripted2"
    assert completed["usage"] == {"input_tokens": 80, "output_tokens": 15, "total_tokens": 95}
    for ids in ids_by_response(received).values():
        assert ids == sorted(set(ids))  # strictly increasing within each response
    first, second = scripted.requests
    assert first["tools"] == [TOOLS["local_time"].definition()]
    assert second["tools"] == first["tools"]
    assert second["stream"] is True


async def test_several_rounds_and_two_calls_in_one_response(scripted: ScriptedUpstream) -> None:
    paris = FunctionCall("local_time", '{"timezone": "Europe/Paris"}')
    scripted.script(reply(TOKYO, paris), reply(FunctionCall("local_time", '{"timezone": "America/New_York"}')))
    scripted.script(reply(Text("Three cities.")))
    received = await ask(scripted)
    assert [call["arguments"] for call in received.payloads("tool.call")] == [
        '{"timezone": "Asia/Tokyo"}',
        '{"timezone": "Europe/Paris"}',
        '{"timezone": "America/New_York"}',
    ]
    zones = sorted(output["timezone"] for output in tool_outputs(received))
    assert zones == ["America/New_York", "Asia/Tokyo", "Europe/Paris"]
    assert len(received.payloads("response.created")) == 3
    assert received.terminals == [received.events[-1]]
    assert received.payloads("response.completed")[0]["usage"]["total_tokens"] == 90
    outputs = [item for item in scripted.requests[1]["input"] if item.get("type") == "function_call_output"]
    assert [item["call_id"] for item in outputs] == ["call_resp_scripted1_0", "call_resp_scripted1_1"]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ('{"timezone": "Mars/Olympus_Mons"}', "Unknown time zone 'Mars/Olympus_Mons'"),
        ('{"timezone": "Asia/Tok', "The arguments are not JSON"),
        ('{"zone": "Asia/Tokyo"}', "The arguments must be exactly timezone"),
    ],
    ids=["unknown timezone", "not JSON", "not the declared JSON"],
)
async def test_bad_arguments_give_the_model_an_error_and_the_stream_goes_on(
    scripted: ScriptedUpstream, arguments: str, says: str
) -> None:
    scripted.script(reply(FunctionCall("local_time", arguments)), reply(Text("Which city did you mean?")))
    received = await ask(scripted)
    [output] = tool_outputs(received)
    assert list(output) == ["error"]
    assert says in output["error"]
    assert received.text == "Which city did you mean?"
    assert received.payloads("response.completed")[0]["status"] == "completed"
    returned = scripted.requests[1]["input"][-1]
    assert (returned["type"], orjson.loads(returned["output"])) == ("function_call_output", output)


async def test_a_tool_that_raises_and_one_that_hangs_give_error_outputs(scripted: ScriptedUpstream) -> None:
    hung = asyncio.Event()

    def book_hotel(city: str) -> str:
        """Book a hotel."""
        raise ConnectionError("the booking service is down")

    async def train_times(city: str) -> str:
        """Train times."""
        try:
            await asyncio.Event().wait()
        finally:
            hung.set()
        return city

    tools = [function_tool(book_hotel), function_tool(train_times)]
    calls = [FunctionCall("book_hotel", '{"city": "Kyoto"}'), FunctionCall("train_times", '{"city": "Kyoto"}')]
    scripted.script(reply(*calls), reply(Text("Sorry, both failed.")))
    received = await ask(scripted, tools=tools, TOOL_TIMEOUT_SECONDS="0.2")
    by_name = {payload["name"]: orjson.loads(payload["output"]) for payload in received.payloads("tool.result")}
    assert by_name == {
        "book_hotel": {"error": "The tool book_hotel failed"},
        "train_times": {"error": "The tool train_times did not finish within 0.2 seconds"},
    }
    assert hung.is_set()  # cancelled, not left running
    assert received.text == "Sorry, both failed."
    assert [tool["name"] for tool in scripted.requests[0]["tools"]] == ["book_hotel", "train_times"]


async def test_a_model_that_keeps_asking_hits_the_rounds_cap(scripted: ScriptedUpstream) -> None:
    scripted.script(*[reply(TOKYO) for _ in range(3)])
    received = await ask(scripted, MAX_TOOL_ROUNDS="2")
    assert len(scripted.requests) == 3  # the first request and two continuations
    assert len(received.payloads("tool.call")) == 3
    assert len(received.payloads("tool.result")) == 2  # the last round's call is not run
    [error] = received.payloads("error")
    assert error["code"] == "tool_rounds_exceeded"
    assert received.terminals == [received.events[-1]]


async def test_with_no_tools_none_are_sent(scripted: ScriptedUpstream) -> None:
    scripted.script(reply(Text("I cannot check the time.")))
    received = await ask(scripted, TOOLS="")
    assert "tools" not in scripted.requests[0]
    assert received.text == "I cannot check the time."


async def test_where_responses_are_stored_the_next_round_names_the_last_one(
    scripted: ScriptedUpstream, azurite: Azurite
) -> None:
    scripted.script(reply(TOKYO), reply(Text("Nine.")))
    storage = {"AzureWebJobsStorage": azurite.connection_string}
    received = await ask(scripted, **RESUMABLE, **storage)  # background mode stores responses
    assert received.text == "Nine."
    second = scripted.requests[1]
    assert second["previous_response_id"] == "resp_scripted1"
    [result] = received.payloads("tool.result")
    assert second["input"] == [
        {"type": "function_call_output", "call_id": "call_resp_scripted1_0", "output": result["output"]}
    ]
    assert (second["background"], second["store"]) == (True, True)


async def test_where_responses_are_not_stored_the_next_round_sends_the_whole_input(
    scripted: ScriptedUpstream,
) -> None:
    # An OpenAI-compatible server (this one) may keep no responses: the history goes back.
    history = [{"role": "user", "content": "Kyoto?"}, {"role": "assistant", "content": "Lovely."}]
    scripted.script(reply(Text("Let me check."), TOKYO), reply(Text("Nine.")))
    received = await ask(scripted, {"input": [*history, {"role": "user", "content": "Time there?"}]})
    second = scripted.requests[1]
    assert "previous_response_id" not in second
    [result] = received.payloads("tool.result")
    [text_item, call_item] = [
        {key: value for key, value in item.items() if key != "status"} for item in second["input"][3:5]
    ]
    assert second["input"][:3] == [*history, {"role": "user", "content": "Time there?"}]
    assert text_item["type"] == "message"
    assert call_item == {
        "type": "function_call",
        "id": "fc_resp_scripted1_1",
        "call_id": "call_resp_scripted1_1",
        "name": "local_time",
        "arguments": '{"timezone": "Asia/Tokyo"}',
    }
    assert second["input"][5:] == [
        {"type": "function_call_output", "call_id": "call_resp_scripted1_1", "output": result["output"]}
    ]
    assert received.text == "Let me check.Nine."


async def test_a_refused_continuation_ends_the_stream_with_its_code(scripted: ScriptedUpstream) -> None:
    scripted.script(reply(TOKYO), refusal(429))
    received = await ask(scripted)
    [error] = received.payloads("error")
    assert error["code"] == "rate_limited"
    assert received.terminals == [received.events[-1]]


MCP_SERVERS = '[{"server_label": "wiki", "server_url": "https://mcp.example.com/mcp", "require_approval": "always"}]'


async def test_an_approval_ends_the_stream_and_the_next_chat_answers_it(scripted: ScriptedUpstream) -> None:
    scripted.script(reply(ApprovalRequest("wiki", "ask_question", '{"question": "Kyoto"}')))
    scripted.script(reply(McpCall("wiki", "ask_question", '{"question": "Kyoto"}', "Old capital."), Text("Kyoto was.")))
    async with relay_to(scripted, MCP_SERVERS=MCP_SERVERS) as relay:
        asking = await chat(relay.client, QUESTION)
        [request] = asking.payloads("approval.request")
        [ended] = asking.payloads("response.completed")
        answered = await chat(
            relay.client,
            {
                "previous_response_id": ended["response_id"],
                "approvals": [{"approval_request_id": request["approval_request_id"], "approve": True}],
            },
        )
    assert request == {
        "type": "approval.request",
        "approval_request_id": "mcpr_resp_scripted1_0",
        "server_label": "wiki",
        "name": "ask_question",
        "arguments": '{"question": "Kyoto"}',
    }
    assert ended["status"] == "requires_approval"
    assert asking.terminals == [asking.events[-1]]
    mcp_tool = {"type": "mcp", "server_label": "wiki", "server_url": "https://mcp.example.com/mcp"}
    assert scripted.requests[0]["tools"][1] == {**mcp_tool, "require_approval": "always"}
    second = scripted.requests[1]
    assert second["previous_response_id"] == "resp_scripted1"
    assert second["input"] == [
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_resp_scripted1_0", "approve": True}
    ]
    progress = [(event.event, orjson.loads(event.data)) for event in answered.events if "mcp_call" in str(event.event)]
    call = {"item_id": "mcp_resp_scripted2_0", "name": "ask_question", "server_label": "wiki"}
    assert progress == [
        ("response.mcp_call.in_progress", {"type": "response.mcp_call.in_progress", **call}),
        ("response.mcp_call.completed", {"type": "response.mcp_call.completed", **call}),
    ]
    assert answered.text == "Kyoto was."
    assert answered.payloads("response.completed")[0]["status"] == "completed"


async def test_a_denied_approval_is_sent_as_such(scripted: ScriptedUpstream) -> None:
    scripted.script(reply(ApprovalRequest("wiki", "ask_question", '{"question": "Kyoto"}')))
    scripted.script(reply(Text("I will answer without it.")))
    async with relay_to(scripted, MCP_SERVERS=MCP_SERVERS) as relay:
        asking = await chat(relay.client, QUESTION)
        [ended] = asking.payloads("response.completed")
        approvals = [{"approval_request_id": "mcpr_resp_scripted1_0", "approve": False}]
        received = await chat(relay.client, {"previous_response_id": ended["response_id"], "approvals": approvals})
    assert scripted.requests[1]["input"] == [
        {"type": "mcp_approval_response", "approval_request_id": "mcpr_resp_scripted1_0", "approve": False}
    ]
    assert received.text == "I will answer without it."


@pytest.mark.parametrize(
    ("answering", "approval_request_id"),
    [
        pytest.param("the asking response", "mcpr_invented", id="an id the response never asked"),
        pytest.param("a response that asked nothing", "mcpr_resp_scripted1_0", id="another response's request"),
    ],
)
async def test_an_approval_must_answer_a_request_of_the_response_it_names(
    scripted: ScriptedUpstream, answering: str, approval_request_id: str
) -> None:
    scripted.script(reply(ApprovalRequest("wiki", "ask_question", '{"question": "Kyoto"}')))
    scripted.script(reply(Text("Kyoto.")))
    async with relay_to(scripted, MCP_SERVERS=MCP_SERVERS) as relay:
        asking = await chat(relay.client, QUESTION)
        other = await chat(relay.client, QUESTION)
        named = asking if answering == "the asking response" else other
        [ended] = named.payloads("response.completed")
        approvals = [{"approval_request_id": approval_request_id, "approve": True}]
        body = {"previous_response_id": ended["response_id"], "approvals": approvals}
        reply_ = await relay.client.post("/api/chat", json=body)
    error = reply_.json()["error"]
    assert (reply_.status_code, error["code"], error["param"]) == (400, "unknown_approval", "approvals[0]")
    assert len(scripted.requests) == 2, "nothing was sent upstream"


# Against the demo upstream (tests/faulty_upstream.py), as demo mode runs it.


@pytest.mark.parametrize(
    ("question", "says"), [("京都は今何時？", "京都は今 "), ("What time is it in Kyoto?", "In Kyoto it is now ")]
)
@pytest.mark.parametrize("demo_mode", [True, False], ids=["demo mode, stored", "an endpoint that stores nothing"])
async def test_the_demo_calls_local_time_and_answers_from_its_output(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings], question: str, says: str, demo_mode: bool
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    service = ChatService(load_settings({}), demo=upstream) if demo_mode else ChatService(make_settings())
    async for server in serve(service):
        received = await chat(server.client, {"input": question})
    [call] = received.payloads("tool.call")
    assert (call["name"], orjson.loads(call["arguments"])) == ("local_time", {"timezone": "Asia/Tokyo"})
    [output] = tool_outputs(received)
    moment = datetime.fromisoformat(output["local_time"])
    assert received.text.startswith(says)
    assert f"{moment.hour}時{moment.minute:02d}分" in received.text or f"{moment:%H:%M}" in received.text
    assert received.payloads("response.completed")[0]["status"] == "completed"
    continuation = upstream.records[1].request
    assert continuation["input"][-1]["type"] == "function_call_output"
    if demo_mode:
        assert continuation["previous_response_id"] == received.payloads("response.created")[0]["response_id"]
        assert len(continuation["input"]) == 1
    else:  # the whole input so far: the question, the call, its output
        assert [item.get("type", "message") for item in continuation["input"]] == [
            "message",
            "function_call",
            "function_call_output",
        ]


async def test_the_demo_without_local_time_says_it_cannot_check(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    async for server in serve(ChatService(make_settings(TOOLS="none"))):
        received = await chat(server.client, {"input": "京都は今何時？"})
    assert not received.payloads("tool.call")
    assert "local_time" in received.text
    assert "tools" not in upstream.records[0].request


@pytest.mark.parametrize("approve", [True, False], ids=["granted", "denied"])
async def test_the_demo_asks_for_an_approval_and_goes_on_as_the_caller_decides(
    relay: RelayServer, upstream: FaultyUpstream, approve: bool
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    asking = await chat(relay.client, {"input": "京都の天気は？"})
    [request] = asking.payloads("approval.request")
    assert (request["server_label"], request["name"]) == ("demo_weather", "get_forecast")
    assert orjson.loads(request["arguments"]) == {"city": "Kyoto"}
    [ended] = asking.payloads("response.completed")
    assert ended["status"] == "requires_approval"
    approval = {"approval_request_id": request["approval_request_id"], "approve": approve}
    answered = await chat(relay.client, {"previous_response_id": ended["response_id"], "approvals": [approval]})
    progress = [event.event for event in answered.events if "mcp_call" in str(event.event)]
    if approve:
        assert progress == ["response.mcp_call.in_progress", "response.mcp_call.completed"]
        assert answered.payloads("response.mcp_call.completed")[0]["server_label"] == "demo_weather"
        assert "晴れ" in answered.text
    else:
        assert progress == []
        assert answered.text.startswith("承知しました")
    assert answered.payloads("response.completed")[0]["status"] == "completed"


# Resumable mode across rounds: two relay instances sharing the demo upstream in background mode.


def posts(upstream: FaultyUpstream) -> list[StreamRecord]:
    """The requests that created a response."""
    return [record for record in upstream.records if (record.method, record.path) == ("POST", "/openai/v1/responses")]


async def test_a_drop_during_round_two_resumes_on_another_instance_and_no_round_runs_twice(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.005, chunk_chars=2))
    async with instances(make_settings(**RESUMABLE)) as [a, b]:
        first = await chat(a.client, {"input": "京都は今何時？"}, stop_after=3)
        second_round = first.payloads("response.created")[-1]["response_id"]
        cursor = ids_by_response(first)[second_round][-1]
        rest = await resume(b, second_round, headers={"last-event-id": str(cursor)})
    assert kinds(first)[:4] == ["response.created", "tool.call", "tool.result", "response.created"]
    assert not first.terminals
    assert rest.payloads("response.completed")[0]["status"] == "completed"
    assert rest.terminals == [rest.events[-1]]
    assert min(ids_by_response(rest)[""]) > cursor  # a resume names no round: its ids go on after the cursor
    answer = first.text + rest.text
    assert answer.startswith("京都は今 ")
    assert answer.endswith("。")
    assert len(posts(upstream)) == 2  # the question, and one continuation: no round ran twice


async def test_a_caller_who_leaves_before_a_round_ends_starts_no_round_and_the_resume_continues_it(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    # The first round stalls after its function call, before its terminal event, until released.
    upstream.set_scenario(Scenario(delta_seconds=0.001, after_deltas=0, stall_when="何時"))
    async with instances(make_settings(**RESUMABLE)) as [a, b]:
        first = await chat(a.client, {"input": "京都は今何時？"}, stop_at="tool.call")
        [creating] = posts(upstream)
        assert await asyncio.to_thread(creating.ended.wait, 5)  # instance a let go of the round
        upstream.release()  # the round ends upstream, with nobody reading it
        first_round = response_id(first)
        rest = await resume(b, first_round, headers={"last-event-id": str(ids_by_response(first)[first_round][-1])})
    assert creating.client_left
    assert kinds(first) == ["response.created", "tool.call"]
    assert kinds(rest)[:2] == ["tool.result", "response.created"]  # b ran the call and continued
    assert rest.text.startswith("京都は今 ")
    assert rest.payloads("response.completed")[0]["status"] == "completed"
    continuations = posts(upstream)[1:]
    assert [record.request["previous_response_id"] for record in continuations] == [first_round]


async def test_a_cancel_while_the_tools_run_stops_the_answer_before_another_round(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    started = asyncio.Event()

    async def local_time(timezone: str) -> str:
        """Never answers."""
        started.set()
        await asyncio.Event().wait()
        return timezone

    upstream.set_scenario(Scenario(delta_seconds=0.001))
    settings = make_settings(**RESUMABLE, TOOL_TIMEOUT_SECONDS="5")
    async for server in serve(ChatService(settings, tools=[function_tool(local_time)])):
        created: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        body = orjson.dumps({"input": "京都は今何時？"})
        headers = {"content-type": "application/json"}
        reading = asyncio.ensure_future(
            read_sse(server.client, "POST", "/api/chat", content=body, headers=headers, created=created)
        )
        await started.wait()  # the first round has ended; its call runs
        first_round = await created
        cancelled = await server.client.post(f"/api/chat/{first_round}/cancel")
        received = await reading
    # The round itself had completed, but the answer was to go on: it stops, as cancelled.
    assert cancelled.json() == {"id": first_round, "status": "cancelled"}
    assert received.payloads("response.completed")[0]["status"] == "cancelled"
    assert received.terminals == [received.events[-1]]
    assert not received.payloads("tool.result")
    assert len(posts(upstream)) == 1


async def test_a_cancel_names_the_round_being_read(
    upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    def local_time(timezone: str) -> str:
        """Makes the next round stall after two deltas."""
        upstream.set_scenario(Scenario(text="京都" * 20, chunk_chars=2, ending="stall", after_deltas=2))
        return timezone

    upstream.set_scenario(Scenario(delta_seconds=0.001))
    async for server in serve(ChatService(make_settings(), tools=[function_tool(local_time)])):
        body = orjson.dumps({"input": "京都は今何時？"})
        events: list[Event] = []
        cancelled = None
        async with server.client.stream("POST", "/api/chat", content=body, headers=JSON) as response:
            decoder = Decoder()
            async for chunk in response.aiter_raw():
                events += decoder.feed(chunk)
                rounds = [
                    orjson.loads(event.data)["response_id"] for event in events if event.event == "response.created"
                ]
                if cancelled is None and any(event.event == "response.output_text.delta" for event in events):
                    cancelled = await server.client.post(f"/api/chat/{rounds[-1]}/cancel")
    assert cancelled is not None
    assert cancelled.json() == {"id": rounds[1], "status": "cancelled"}
    assert [event.event for event in events][-1] == "response.completed"
    assert orjson.loads(events[-1].data)["status"] == "cancelled"
