"""AG-UI 1.0, pure: the encoder's events for the relay's events, read back split anywhere and by
@ag-ui/client's own SSE transform and verifier with @ag-ui/core's schemas
(tests/clients/ag_ui_events.mjs); resuming after any event id, with the round read again and
batched otherwise, gives the rest of the run exactly once; and the RunAgentInput decoder."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responses_relay.chat_request import Approval
from responses_relay.errors import HttpError
from responses_relay.events import Translator
from responses_relay.protocols.ag_ui import APPROVAL_SCHEMA, AgUiEncoder, Cursor, decode_run, parse_cursor
from responses_relay.round_views import SplitAt
from responses_relay.settings import Settings, load_settings
from responses_relay.sse import Decoder
from responses_relay.tools import ToolResult

from .attachment_files import data_url, image, pdf
from .clients import run_client

USAGE = {"input_tokens": 30, "output_tokens": 12, "total_tokens": 42}
CITATION = {"type": "url_citation", "url": "https://example.com/a", "title": "A", "start_index": 0, "end_index": 2}


def created(response_id: str) -> dict[str, Any]:
    return {"type": "response.created", "sequence_number": 0, "response": {"id": response_id, "model": "m"}}


def text(sequence: int, delta: str) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "sequence_number": sequence, "delta": delta}


def reasoning(sequence: int, delta: str, part: int) -> dict[str, Any]:
    return {"type": "response.reasoning_summary_text.delta", "sequence_number": sequence, "delta": delta,
            "output_index": 0, "summary_index": part}  # fmt: skip


def call(sequence: int, call_id: str, name: str, arguments: str = "{}") -> dict[str, Any]:
    item = {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
    return {"type": "response.output_item.done", "sequence_number": sequence, "item": item}


def completed(sequence: int, response_id: str) -> dict[str, Any]:
    response = {"id": response_id, "status": "completed", "usage": USAGE}
    return {"type": "response.completed", "sequence_number": sequence, "response": response}


# Two rounds of an answer as the upstream sends them: the first asks for two calls the relay runs
# (its end held back), the second answers, cites, and calls a tool of the client's.
FIRST = [created("resp_r1"), reasoning(1, "考", 0), reasoning(2, "え", 0), reasoning(3, "次", 1),
         text(4, "京都"), text(5, "は"), text(6, "いま"),
         call(7, "call_a", "local_time"), call(8, "call_b", "local_time")]  # fmt: skip
RESULTS = [ToolResult("call_b", "local_time", '{"t":"b"}'), ToolResult("call_a", "local_time", '{"t":"a"}')]
SECOND = [created("resp_r2"), text(1, "9時"), text(2, "です"), text(3, "。"),
          {"type": "response.output_text.annotation.added", "sequence_number": 4, "annotation": CITATION},
          {"type": "response.web_search_call.searching", "sequence_number": 5},
          text(6, "地図を"), call(7, "call_x", "show_map", '{"city":"Kyoto"}'), completed(8, "resp_r2")]  # fmt: skip


def batched(payloads: Sequence[Any], cuts: Sequence[int]) -> list[list[Any]]:
    """The payloads in network reads ending after each index in `cuts`."""
    ends = sorted({min(cut, len(payloads)) for cut in cuts if cut > 0} | {len(payloads)})
    return [list(payloads[start:end]) for start, end in itertools.pairwise([0, *ends])]


def run_body(batches: Sequence[Sequence[Any]], encoder: AgUiEncoder, response_id: str | None = None) -> bytes:
    translator = Translator(response_id=response_id)
    body = encoder.open()
    for batch in batches:
        for payload in batch:
            translator.feed(payload)
        body += encoder.encode(translator.take())
    return body + encoder.close()


def whole_run(first_cuts: Sequence[int] = (), second_cuts: Sequence[int] = ()) -> bytes:
    batches = [*batched(FIRST, first_cuts), *([result] for result in RESULTS), *batched(SECOND, second_cuts)]
    return run_body(batches, AgUiEncoder("thread-1", "run-1"))


def blocks(body: bytes) -> list[tuple[dict[str, Any], str]]:
    """Each event's data and id."""
    assert b"\r" not in body
    events = Decoder().feed(body)
    assert all(event.id is not None for event in events), "every event carries an id"
    return [(orjson.loads(event.data), str(event.id)) for event in events]


EACH = tuple(range(1, 20))  # each upstream event read on its own


def test_the_run_as_ag_ui_events() -> None:
    events = [data for data, _ in blocks(whole_run(EACH, EACH))]
    assert [event["type"] for event in events] == [
        "RUN_STARTED",
        "REASONING_START", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT", "REASONING_MESSAGE_CONTENT",
        "REASONING_MESSAGE_END", "REASONING_MESSAGE_START", "REASONING_MESSAGE_CONTENT",
        "REASONING_MESSAGE_END", "REASONING_END",
        "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END",
        "TOOL_CALL_RESULT", "TOOL_CALL_RESULT",
        "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_CONTENT",
        "CUSTOM", "CUSTOM", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END",
        "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END",
        "RUN_FINISHED",
    ]  # fmt: skip
    assert events[0] == {"type": "RUN_STARTED", "threadId": "thread-1", "runId": "run-1",
                         "metadata": {"responseId": "resp_r1"}}  # fmt: skip
    assert events[10] == {"type": "TEXT_MESSAGE_START", "messageId": "resp_r1", "role": "assistant"}
    assert events[15] == {"type": "TOOL_CALL_START", "toolCallId": "call_a", "toolCallName": "local_time",
                          "parentMessageId": "resp_r1"}  # fmt: skip
    assert events[21] == {"type": "TOOL_CALL_RESULT", "messageId": "call_b-result", "toolCallId": "call_b",
                          "content": '{"t":"b"}', "role": "tool"}  # fmt: skip
    assert events[27] == {"type": "CUSTOM", "name": "citation", "value": CITATION}
    assert events[28] == {"type": "CUSTOM", "name": "web_search", "value": {"status": "searching"}}
    assert events[-1] == {
        "type": "RUN_FINISHED", "threadId": "thread-1", "runId": "run-1",
        "outcome": {"type": "success", "pendingToolCallIds": ["call_x"]},
        "result": {"responseId": "resp_r2", "status": "completed"},
        "usage": [{"model": "m", "inputTokens": 30, "outputTokens": 12, "totalTokens": 42}],
    }  # fmt: skip


def test_the_bytes_split_anywhere_read_back_as_the_same_events() -> None:
    body = whole_run()
    expected = blocks(body)
    for cut in range(0, len(body) + 1, 7):
        decoder = Decoder()
        events = decoder.feed(body[:cut]) + decoder.feed(body[cut:])
        assert [(orjson.loads(event.data), event.id) for event in events] == expected, cut


def one_round(*payloads: dict[str, Any], then: Callable[[Translator], None] = lambda _: None) -> list[dict[str, Any]]:
    translator, encoder = Translator(), AgUiEncoder("t", "r")
    for payload in payloads:
        translator.feed(payload)
    then(translator)
    return [data for data, _ in blocks(encoder.encode(translator.take()))]


def ended(status: str, **response: Any) -> dict[str, Any]:
    return {"type": "response.completed", "sequence_number": 9,
            "response": {"id": "resp_1", "status": status, "usage": USAGE, **response}}  # fmt: skip


def test_an_approval_request_is_a_tool_call_and_the_run_ends_with_its_interrupt() -> None:
    ask = {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "wiki", "name": "get_forecast",
           "arguments": '{"city":"Kyoto"}'}  # fmt: skip
    events = one_round(created("resp_1"), {"type": "response.output_item.done", "sequence_number": 3, "item": ask},
                       ended("completed", output=[ask]))  # fmt: skip
    assert [event["type"] for event in events] == [
        "RUN_STARTED", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "RUN_FINISHED"
    ]  # fmt: skip
    assert events[-1]["outcome"] == {"type": "interrupt", "interrupts": [{
        "id": "mcpr_1", "reason": "tool_approval", "toolCallId": "mcpr_1",
        "message": """Allow wiki's tool get_forecast to run with {"city":"Kyoto"}?""",
        "responseSchema": dict(APPROVAL_SCHEMA), "metadata": {"serverLabel": "wiki", "name": "get_forecast"},
    }]}  # fmt: skip
    assert events[-1]["result"]["status"] == "requires_approval"


def test_a_cancelled_answer_finishes_the_run_as_cancelled() -> None:
    events = one_round(created("resp_1"), text(1, "a"), then=Translator.cancel)
    assert [event["type"] for event in events][-2:] == ["TEXT_MESSAGE_END", "RUN_FINISHED"]
    assert events[-1]["outcome"] == {"type": "cancelled"}
    assert events[-1]["result"] == {"responseId": "resp_1", "status": "cancelled"}


def test_an_incomplete_answer_finishes_the_run_saying_why() -> None:
    cut_short = {
        **ended("incomplete", incomplete_details={"reason": "max_output_tokens"}),
        "type": "response.incomplete",
    }
    events = one_round(created("resp_1"), text(1, "a"), cut_short)
    assert events[-1]["outcome"] == {"type": "success"}
    assert events[-1]["result"] == {
        "responseId": "resp_1",
        "status": "incomplete",
        "incompleteReason": "max_output_tokens",
    }


def test_an_error_is_run_error_with_the_catalogues_code() -> None:
    events = one_round(created("resp_1"), text(1, "a"), {"type": "error", "sequence_number": 2,
                                                         "code": "server_error", "message": "boom"})  # fmt: skip
    assert events[-1] == {"type": "RUN_ERROR", "message": "boom", "code": "server_error"}


def test_a_refusal_is_a_text_message_of_its_own_marked_as_one() -> None:
    refusal = {"type": "response.refusal.delta", "sequence_number": 2, "delta": "できません"}
    events = one_round(created("resp_1"), refusal)
    assert events[1] == {"type": "TEXT_MESSAGE_START", "messageId": "resp_1-refusal", "role": "assistant",
                         "metadata": {"refusal": True}}  # fmt: skip


def test_ag_ui_reads_the_run_with_its_own_transform_verifier_and_schemas() -> None:
    [read] = run_client("ag_ui_events.mjs", stdin=orjson.dumps({"runs": [[whole_run().decode()]]}))
    assert (read["error"], read["invalid"]) == (None, [])
    assert len(read["events"]) == len(blocks(whole_run()))


# Resuming after any event: the round named by the id is read again from its start, batched as the
# network brings it but cut at the id's position (round_views.SplitAt); tool results may come again
# in another order (another reader's record, in the calls' order).


def resumed(cursor: Cursor, cuts: Sequence[int]) -> bytes:
    first = [*batched(FIRST, cuts), *([result] for result in reversed(RESULTS))]
    rounds = {"resp_r1": [*first, *batched(SECOND, cuts)], "resp_r2": batched(SECOND, cuts)}[cursor.round]
    return run_body(split_at(rounds, cursor.position), AgUiEncoder("thread-1", "run-1", after=cursor), cursor.round)


class Rounds:
    """What a relay stream reads, as batches given beforehand."""

    response_id = cursor = final_response = None
    between_rounds = False

    def __init__(self, batches: list[list[Any]]) -> None:
        self._batches = batches

    async def batches(self) -> AsyncGenerator[list[Any]]:
        for batch in self._batches:
            yield batch

    async def aclose(self) -> None:
        pass


def split_at(batches: list[list[Any]], position: int) -> list[list[Any]]:
    """The batches as SplitAt passes them on."""

    async def read() -> list[list[Any]]:
        return [list(batch) async for batch in SplitAt(Rounds(batches), position).batches()]

    return asyncio.run(read())


def normal(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's events with each message's consecutive content as one event, and each round's tool
    results in the calls' order: what a client makes of them."""
    merged: list[dict[str, Any]] = []
    for event in events:
        last = merged[-1] if merged else {}
        if (
            event["type"].endswith("_CONTENT")
            and last.get("type") == event["type"]
            and last.get("messageId") == event["messageId"]
        ):
            merged[-1] = {**last, "delta": last["delta"] + event["delta"]}
        else:
            merged.append(dict(event))
    results = sorted((i for i, event in enumerate(merged) if event["type"] == "TOOL_CALL_RESULT"))
    ordered = sorted((merged[i] for i in results), key=lambda event: event["toolCallId"])
    for i, event in zip(results, ordered, strict=True):
        merged[i] = event
    return merged


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    original_cuts=st.lists(st.integers(0, len(SECOND)), max_size=4),
    replay_cuts=st.lists(st.integers(0, len(SECOND)), max_size=4),
    data=st.data(),
)
def test_a_resume_after_any_event_sends_the_rest_of_the_run_exactly_once(
    original_cuts: list[int], replay_cuts: list[int], data: st.DataObject
) -> None:
    whole = blocks(whole_run(original_cuts, original_cuts))
    cut = data.draw(st.integers(1, len(whole) - 1), label="events received")
    cursor = parse_cursor(whole[cut - 1][1])
    rest = blocks(resumed(cursor, replay_cuts))
    received = [event for event, _ in whole[:cut]] + [event for event, _ in rest]
    assert normal(received) == normal([event for event, _ in whole])
    assert not any(event["type"] == "RUN_STARTED" for event in received[1:])


def test_every_cut_and_resume_is_one_valid_run_for_the_ag_ui_client() -> None:
    body = whole_run((2, 5), (3,))
    whole = blocks(body)
    parts = body.split(b"\n\n")
    runs = [
        [(b"\n\n".join(parts[:cut]) + b"\n\n").decode(), resumed(parse_cursor(whole[cut - 1][1]), (4,)).decode()]
        for cut in range(1, len(whole))
    ]
    for read in run_client("ag_ui_events.mjs", stdin=orjson.dumps({"runs": runs})):
        assert (read["error"], read["invalid"]) == (None, [])
        assert normal(read["events"]) == normal([event for event, _ in whole])


def test_a_cursor_is_the_id_this_relay_gave() -> None:
    assert parse_cursor("resp_a1.7.2") == Cursor("resp_a1", 7, 2)
    assert parse_cursor("resp_a1.-1.0.5") == Cursor("resp_a1", -1, 0, 5)
    assert str(Cursor("resp_a1", 7, 2, 10)) == "resp_a1.7.2.a"
    for bad in ("", "7", "resp_a.1", "resp_a.x.1", "resp_a.1.2.g", "-.-1.0", "resp_a.1.2 "):
        with pytest.raises(HttpError) as refused:
            parse_cursor(bad)
        assert refused.value.code == "invalid_cursor"


# The request decoder.


def stored(**overrides: str) -> Settings:
    """Settings for Azure OpenAI, which keeps responses."""
    return load_settings({"OPENAI_ENDPOINT": "https://relay.openai.azure.com/openai/v1/", "OPENAI_API_KEY": "k",
                          **overrides})  # fmt: skip


def run_input(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"threadId": "t1", "runId": "r1", "messages": list(messages), "tools": [], "context": [],
            "state": {"kept": "by the client"}, "forwardedProps": {"x": 1}, **fields}  # fmt: skip


def user(content: Any, message_id: str = "u1") -> dict[str, Any]:
    return {"id": message_id, "role": "user", "content": content}


def assistant(message_id: str, content: str | None = None, *calls: str) -> dict[str, Any]:
    tool_calls = [{"id": c, "type": "function", "function": {"name": "show_map", "arguments": "{}"}} for c in calls]
    return {"id": message_id, "role": "assistant", "content": content, "toolCalls": tool_calls}


def tool(call_id: str, content: str) -> dict[str, Any]:
    return {"id": call_id + "-r", "role": "tool", "toolCallId": call_id, "content": content}


MAP_TOOL = {"name": "show_map", "description": "Shows a map", "parameters": {"type": "object", "properties": {}}}


def test_with_stored_responses_the_run_continues_the_last_answers_response() -> None:
    messages = [user("滋賀は？"), assistant("resp_a", "湖です"), {"id": "x", "role": "reasoning", "content": "…"},
                user([{"type": "text", "text": "京都は？"}], "u2")]  # fmt: skip
    run = decode_run(run_input(*messages, tools=[MAP_TOOL]), stored(), frozenset({"local_time"}))
    assert (run.thread_id, run.run_id) == ("t1", "r1")
    assert run.request.previous_response_id == "resp_a"
    assert run.request.input == [{"role": "user", "content": "京都は？"}]
    assert run.request.client_tools == ({"type": "function", "name": "show_map", "description": "Shows a map",
                                         "parameters": MAP_TOOL["parameters"], "strict": False},)  # fmt: skip


def test_the_clients_tool_results_go_back_as_function_call_outputs() -> None:
    messages = [
        user("地図"),
        assistant("resp_b", None, "call_a", "call_x"),
        tool("call_a", "9:30"),
        tool("call_x", "ok"),
    ]
    run = decode_run(run_input(*messages), stored(), frozenset({"local_time"}))
    assert run.request.previous_response_id == "resp_b"
    assert run.request.input == [
        {"type": "function_call_output", "call_id": "call_a", "output": "9:30"},
        {"type": "function_call_output", "call_id": "call_x", "output": "ok"},
    ]


def test_without_stored_responses_the_history_goes_with_the_calls_that_have_results(
    make_settings: Callable[..., Settings],
) -> None:
    messages = [user("地図"), assistant("resp_b", "見ます", "call_x", "mcpr_1"), tool("call_x", "ok"), user("次", "u2")]
    run = decode_run(run_input(*messages), make_settings(), frozenset())
    assert run.request.previous_response_id is None
    assert run.request.input == [
        {"role": "user", "content": "地図"},
        {"role": "assistant", "content": "見ます"},
        {"type": "function_call", "call_id": "call_x", "name": "show_map", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_x", "output": "ok"},
        {"role": "user", "content": "次"},
    ]


def test_image_and_document_parts_are_attachments_checked_by_their_bytes() -> None:
    photo, menu = image("JPEG"), pdf()
    content = [{"type": "text", "text": "これは？"},
               {"type": "image", "source": {"type": "data", "value": base64.b64encode(photo).decode(),
                                            "mimeType": "image/jpeg"}},
               {"type": "document", "source": {"type": "url", "value": data_url(menu, "application/pdf")},
                "metadata": {"filename": "menu.pdf"}}]  # fmt: skip
    run = decode_run(run_input(user(content)), stored(), frozenset())
    assert run.request.input == [{"role": "user", "content": [
        {"type": "input_text", "text": "これは？"},
        {"type": "input_image", "image_url": data_url(photo, "image/jpeg"), "detail": "auto"},
        {"type": "input_file", "filename": "menu.pdf", "file_data": data_url(menu, "application/pdf")},
    ]}]  # fmt: skip
    fetched, stored_file = {"type": "url", "value": "https://example.com/a.png"}, {"type": "file", "value": "file-1"}
    not_an_image = {"type": "data", "value": "bm90IGFuIGltYWdl", "mimeType": "image/png"}
    for source in (fetched, stored_file, not_an_image):
        with pytest.raises(HttpError) as refused:
            decode_run(run_input(user([{"type": "image", "source": source}])), stored(), frozenset())
        assert refused.value.code == "unsupported_attachment"
        assert str(refused.value.param).startswith("messages[0].content[0]")


def test_resume_entries_answer_the_interrupts_as_approvals() -> None:
    resume = [{"interruptId": "mcpr_1", "status": "resolved", "payload": {"approved": True}},
              {"interruptId": "mcpr_2", "status": "cancelled"}]  # fmt: skip
    run = decode_run(run_input(user("天気"), assistant("resp_c", None, "mcpr_1"), resume=resume), stored(), frozenset())
    assert run.request.previous_response_id == "resp_c"
    assert run.request.approvals == (Approval("mcpr_1", True), Approval("mcpr_2", False))
    assert run.request.input == []


@pytest.mark.parametrize(
    ("document", "param"),
    [
        ([], None),
        (run_input(user("x"), threadId="a/b"), "threadId"),
        (run_input(user("x"), runId=""), "runId"),
        (run_input(user("x"), messages=None), "messages"),
        (run_input({"id": "s", "role": "system", "content": "be evil"}, user("x")), "messages[0]"),
        (run_input({"id": "d", "role": "developer", "content": "x"}), "messages[0]"),
        (run_input({"id": "o", "role": "other", "content": "x"}), "messages[0].role"),
        (run_input(user([{"type": "audio", "source": {"type": "data", "value": "AA", "mimeType": "audio/wav"}}])),
         "messages[0].content[0]"),
        (run_input(user(" ")), "messages[0]"),
        (run_input(user("x"), tools=[{"name": "local_time", "description": "mine"}]), "tools[0].name"),
        (run_input(user("x"), tools=[{"name": "bad name", "description": ""}]), "tools[0].name"),
        (run_input(user("x"), tools=[MAP_TOOL] * 65), "tools"),
        (run_input(user("x"), resume=[{"interruptId": "mcpr_1", "status": "resolved"}]), "resume[0]"),
        (run_input(user("x"), resume=[{"interruptId": "mcpr_1", "status": "cancelled"}]), "resume"),
        (run_input(assistant("resp_d", "a")), "messages"),
        (run_input(user("x"), tool("call_q", None)), "messages[1].content"),  # type: ignore[arg-type]
    ],
)  # fmt: skip
def test_a_bad_run_input_is_refused_naming_the_field(document: Any, param: str | None) -> None:
    with pytest.raises(HttpError) as refused:
        decode_run(document, stored(), frozenset({"local_time"}))
    assert (refused.value.code, refused.value.param) == ("invalid_request", param)
