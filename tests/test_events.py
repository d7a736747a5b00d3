"""Translating upstream Responses events into relay events: every shape, one terminal event, coalescing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from responses_relay.errors import INTERNAL_ERROR, UPSTREAM_TIMEOUT
from responses_relay.events import RelayEvent, Translator, UpstreamProtocolError, parse_event
from responses_relay.sse import Event
from responses_relay.tools import ToolResult


def upstream(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as it comes off the wire and through `parse_event`."""
    parsed = parse_event(Event(payload.get("type"), orjson.dumps(payload), None))
    assert parsed is not None
    return parsed


def relayed(events: list[RelayEvent]) -> list[RelayEvent]:
    """The events, once checked that each payload's type is its event's."""
    assert all(payload["type"] == kind for kind, payload, _ in events)
    return events


CREATED = {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "gpt-4o-mini"}}


def delta(text: str, sequence: int) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "delta": text, "sequence_number": sequence}


def test_deltas_of_one_read_become_one_event_with_the_last_id() -> None:
    translator = Translator()
    for payload in (CREATED, {"type": "response.in_progress", "sequence_number": 1}, delta("滋", 4), delta("賀", 5)):
        translator.feed(upstream(payload))
    assert relayed(translator.take()) == [
        ("response.created", {"type": "response.created", "response_id": "resp_1", "model": "gpt-4o-mini"}, 0),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "滋賀"}, 5),
    ]
    assert translator.deltas == 2
    assert translator.take() == []


def test_completed_carries_usage_and_ends_the_stream() -> None:
    translator = Translator()
    usage = {"input_tokens": 31, "output_tokens": 96, "total_tokens": 127, "output_tokens_details": {}}
    translator.feed(upstream(delta("a", 4)))
    translator.feed(
        upstream({"type": "response.completed", "sequence_number": 9, "response": {"id": "r", "usage": usage}})
    )
    translator.feed(upstream(delta("late", 10)))
    translator.fail(INTERNAL_ERROR, "after the end")
    events = relayed(translator.take())
    assert [kind for kind, _, _ in events] == ["response.output_text.delta", "response.completed"]
    assert events[1] == (
        "response.completed",
        {
            "type": "response.completed",
            "response_id": "r",
            "status": "completed",
            "usage": {"input_tokens": 31, "output_tokens": 96, "total_tokens": 127},
        },
        9,
    )
    assert translator.outcome == "completed"


def test_incomplete_becomes_completed_with_the_reason() -> None:
    translator = Translator()
    response = {"id": "r", "incomplete_details": {"reason": "content_filter"}}
    translator.feed(upstream({"type": "response.incomplete", "sequence_number": 3, "response": response}))
    [(kind, payload, event_id)] = relayed(translator.take())
    assert kind == "response.completed"
    assert payload["status"] == "incomplete"
    assert payload["incomplete_reason"] == "content_filter"
    assert event_id == 3


def test_error_shapes_and_failed_become_error_events() -> None:
    shapes: list[dict[str, Any]] = [
        {"type": "error", "code": "rate_limit_exceeded", "message": "slow down", "param": None, "sequence_number": 2},
        {"type": "error", "error": {"type": "server_error", "code": "server_error", "message": "oops"}},
        {"type": "error", "error": {"type": "invalid_request_error", "code": None, "message": "bad"}},
        {"type": "response.failed", "response": {"error": {"code": "server_error", "message": "failed"}}},
        {"type": "response.failed", "response": {"error": None}},
    ]
    codes = []
    for shape in shapes:
        translator = Translator()
        translator.feed(upstream(shape))
        [(kind, payload, _)] = relayed(translator.take())
        assert kind == "error"
        assert set(payload) == {"type", "code", "message"}
        assert payload["message"]
        codes.append(payload["code"])
    assert codes == ["rate_limit_exceeded", "server_error", "invalid_request_error", "server_error", "response_failed"]


def test_unknown_events_are_ignored() -> None:
    translator = Translator()
    translator.feed(upstream({"type": "response.future_feature.delta", "delta": "hm"}))
    translator.feed(upstream({"type": "response.reasoning_summary_part.added", "summary_index": 0}))
    assert translator.take() == []
    assert not translator.finished


def test_relay_made_error_has_no_id_and_messages_are_redacted() -> None:
    translator = Translator(redact=lambda message: message.replace("secret.example", "the model service"))
    translator.feed(
        upstream({"type": "error", "code": "bad code\n", "message": "see secret.example", "sequence_number": 1})
    )
    [(_, payload, event_id)] = relayed(translator.take())
    assert payload == {"type": "error", "code": "bad_code_", "message": "see the model service"}
    assert event_id == 1
    translator = Translator()
    translator.fail(UPSTREAM_TIMEOUT, "stalled")
    [(_, payload, event_id)] = relayed(translator.take())
    assert event_id is None


def test_data_that_is_not_json_is_a_protocol_error() -> None:
    for data in (b"{not json", b"[1, 2]"):
        with pytest.raises(UpstreamProtocolError):
            parse_event(Event(None, data, None))


def test_the_done_sentinel_is_no_event_and_the_event_name_stands_in_for_a_missing_type() -> None:
    assert parse_event(Event(None, b"[DONE]", None)) is None
    assert parse_event(Event("response.created", b'{"sequence_number": 0}', None)) == {
        "sequence_number": 0,
        "type": "response.created",
    }


def reasoning(text: str, sequence: int, summary_index: int = 0, output_index: int = 0) -> dict[str, Any]:
    return {
        "type": "response.reasoning_summary_text.delta",
        "item_id": "rs_1",
        "output_index": output_index,
        "summary_index": summary_index,
        "delta": text,
        "sequence_number": sequence,
    }


def refusal(text: str, sequence: int) -> dict[str, Any]:
    return {
        "type": "response.refusal.delta",
        "item_id": "msg_1",
        "content_index": 0,
        "delta": text,
        "sequence_number": sequence,
    }


def citation(url: str, sequence: int, **fields: Any) -> dict[str, Any]:
    annotation = {"type": "url_citation", "url": url, "title": "Lake Biwa", "start_index": 3, "end_index": 9, **fields}
    return {"type": "response.output_text.annotation.added", "annotation": annotation, "sequence_number": sequence}


def test_kinds_in_one_read_keep_their_order_and_merge_only_with_their_own_kind() -> None:
    translator = Translator()
    searching = [
        {"type": f"response.web_search_call.{stage}", "item_id": "ws_1", "output_index": 1, "sequence_number": 9 + i}
        for i, stage in enumerate(("in_progress", "searching", "completed"))
    ]
    stream = [
        reasoning("Plan", 4),
        reasoning("ning", 5),
        {"type": "response.reasoning_summary_part.added", "summary_index": 1, "sequence_number": 6},
        reasoning("Food", 7, summary_index=1),
        reasoning("Next", 8, summary_index=0, output_index=3),
        *searching,
        delta("滋賀", 14),
        delta("は", 15),
        citation("https://example.com/a", 16),
        delta("湖", 17),
        refusal("I can", 18),
        refusal("not", 19),
        delta("!", 20),
    ]
    for payload in stream:
        translator.feed(upstream(payload))
    TEXT, REASONING, REFUSAL = (
        "response.output_text.delta",
        "response.reasoning_summary_text.delta",
        "response.refusal.delta",
    )
    assert relayed(translator.take()) == [
        (REASONING, {"type": REASONING, "delta": "Planning", "output_index": 0, "summary_index": 0}, 5),
        (REASONING, {"type": REASONING, "delta": "Food", "output_index": 0, "summary_index": 1}, 7),
        (REASONING, {"type": REASONING, "delta": "Next", "output_index": 3, "summary_index": 0}, 8),
        *[(payload["type"], {"type": payload["type"]}, payload["sequence_number"]) for payload in searching],
        (TEXT, {"type": TEXT, "delta": "滋賀は"}, 15),
        (
            "response.output_text.annotation.added",
            {
                "type": "response.output_text.annotation.added",
                "annotation": {
                    "type": "url_citation",
                    "url": "https://example.com/a",
                    "title": "Lake Biwa",
                    "start_index": 3,
                    "end_index": 9,
                },
            },
            16,
        ),
        (TEXT, {"type": TEXT, "delta": "湖"}, 17),
        (REFUSAL, {"type": REFUSAL, "delta": "I cannot"}, 19),
        (TEXT, {"type": TEXT, "delta": "!"}, 20),
    ]
    assert translator.deltas == 10


def test_only_bounded_http_url_citations_are_relayed_unchanged() -> None:
    long_url = "https://example.com/" + "a" * 2100
    refused = [
        citation("javascript:alert(1)", 1),
        citation("JavaScript:alert(1)", 2),
        citation("data:text/html,<script>alert(1)</script>", 3),
        citation("ftp://example.com/file", 4),
        citation("//example.com/no-scheme", 5),
        citation("/relative/path", 6),
        citation("https:///no-host", 7),
        citation("https://example.com/a b", 8),
        citation("https://example.com/\nx", 9),
        citation("https://[::1/", 10),
        citation(long_url, 11),
        citation(12345, 12),  # type: ignore[arg-type]
        citation("https://example.com/", 13, start_index=-1),
        citation("https://example.com/", 14, start_index=9, end_index=3),
        citation("https://example.com/", 15, end_index="9"),
        citation("https://example.com/", 16, type="file_citation"),
        {"type": "response.output_text.annotation.added", "annotation": None, "sequence_number": 17},
    ]
    translator = Translator()
    translator.feed(upstream(delta("a", 0)))
    for payload in refused:
        translator.feed(upstream(payload))
    translator.feed(upstream(delta("b", 18)))
    events = relayed(translator.take())
    assert {kind for kind, _, _ in events} == {"response.output_text.delta"}
    assert "".join(payload["delta"] for _, payload, _ in events) == "ab"
    accepted = [
        citation("HTTPS://Example.com/Path?q=1#top", 20, title="x" * 1000, annotation_index=0),
        citation("http://例え.jp/旅", 21, title=None),
        citation("https://example.com/" + "a" * (2048 - len("https://example.com/")), 22),
    ]
    for payload in accepted:
        translator.feed(upstream(payload))
    annotations = [payload["annotation"] for _, payload, _ in relayed(translator.take())]
    assert [annotation["url"] for annotation in annotations] == [payload["annotation"]["url"] for payload in accepted]
    assert [len(annotation["title"]) for annotation in annotations] == [300, 0, len("Lake Biwa")]
    assert all(set(annotation) == {"type", "url", "title", "start_index", "end_index"} for annotation in annotations)


CALL = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_1",
    "name": "local_time",
    "arguments": '{"timezone":"Asia/Tokyo"}',
}
APPROVAL = {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "wiki", "name": "ask", "arguments": "{}"}


def item_done(item: dict[str, Any], sequence: int) -> dict[str, Any]:
    return {"type": "response.output_item.done", "output_index": 0, "item": item, "sequence_number": sequence}


def test_a_function_call_is_relayed_once_its_arguments_are_complete() -> None:
    translator = Translator()
    added = {**CALL, "arguments": "", "status": "in_progress"}
    for payload in (
        CREATED,
        {"type": "response.output_item.added", "output_index": 0, "item": added, "sequence_number": 2},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": '{"time', "sequence_number": 3},
        {"type": "response.function_call_arguments.done", "item_id": "fc_1", "arguments": "{}", "sequence_number": 4},
        item_done(CALL, 5),
    ):
        translator.feed(upstream(payload))
    assert relayed(translator.take())[1:] == [
        (
            "tool.call",
            {"type": "tool.call", "call_id": "call_1", "name": "local_time", "arguments": '{"timezone":"Asia/Tokyo"}'},
            5,
        )
    ]


def test_a_tool_result_is_the_relays_own_event_without_an_id() -> None:
    translator = Translator()
    translator.feed(delta("a", 4))
    translator.feed(ToolResult("call_1", "local_time", '{"error": "Unknown time zone"}'))
    assert relayed(translator.take()) == [
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "a"}, 4),
        (
            "tool.result",
            {
                "type": "tool.result",
                "call_id": "call_1",
                "name": "local_time",
                "output": '{"error": "Unknown time zone"}',
            },
            None,
        ),
    ]


def test_the_upstream_cannot_send_the_relays_own_events() -> None:
    translator = Translator()
    for kind in ("tool.result", "tool.call", "approval.request"):
        translator.feed(upstream({"type": kind, "call_id": "x", "name": "rm", "output": "pwned", "sequence_number": 1}))
    assert translator.take() == []


def test_an_approval_request_ends_the_response_as_requires_approval() -> None:
    translator = Translator()
    completed = {"type": "response.completed", "sequence_number": 4, "response": {"id": "resp_1", "output": [APPROVAL]}}
    for payload in (CREATED, item_done(APPROVAL, 3), completed):
        translator.feed(upstream(payload))
    events = relayed(translator.take())
    assert events[1] == (
        "approval.request",
        {
            "type": "approval.request",
            "approval_request_id": "mcpr_1",
            "server_label": "wiki",
            "name": "ask",
            "arguments": "{}",
        },
        3,
    )
    assert events[2][1]["status"] == "requires_approval"
    assert translator.outcome == "requires_approval"


def test_an_approval_request_seen_only_in_the_completed_output_still_ends_as_requires_approval() -> None:
    # A resumed stream after the item's event: the completed response's output still says it.
    translator = Translator(response_id="resp_1")
    translator.feed(upstream({"type": "response.completed", "sequence_number": 9, "response": {"output": [APPROVAL]}}))
    assert relayed(translator.take())[0][1]["status"] == "requires_approval"


def test_a_new_round_starts_afresh() -> None:
    translator = Translator()
    translator.feed(upstream(item_done(APPROVAL, 3)))  # asked in an earlier round
    translator.feed(upstream({**CREATED, "response": {"id": "resp_2", "model": "m"}}))
    translator.feed(upstream({"type": "response.completed", "sequence_number": 5, "response": {"id": "resp_2"}}))
    events = relayed(translator.take())
    assert events[-1][1]["status"] == "completed"
    assert translator.response_id == "resp_2"


def test_mcp_progress_names_the_call_and_its_server() -> None:
    translator = Translator()
    call = {"type": "mcp_call", "id": "mcp_1", "name": "ask_question", "server_label": "deepwiki", "arguments": ""}
    for payload in (
        CREATED,
        {"type": "response.output_item.added", "output_index": 0, "item": call, "sequence_number": 2},
        {"type": "response.mcp_call.in_progress", "item_id": "mcp_1", "output_index": 0, "sequence_number": 3},
        {"type": "response.mcp_call.completed", "item_id": "mcp_1", "output_index": 0, "sequence_number": 4},
        {"type": "response.mcp_call.failed", "item_id": "mcp_9", "output_index": 1, "sequence_number": 5},
    ):
        translator.feed(upstream(payload))
    named = {"item_id": "mcp_1", "name": "ask_question", "server_label": "deepwiki"}
    assert relayed(translator.take())[1:] == [
        ("response.mcp_call.in_progress", {"type": "response.mcp_call.in_progress", **named}, 3),
        ("response.mcp_call.completed", {"type": "response.mcp_call.completed", **named}, 4),
        (  # a call the stream never introduced (a resume after its start) is still reported
            "response.mcp_call.failed",
            {"type": "response.mcp_call.failed", "item_id": "mcp_9", "name": None, "server_label": None},
            5,
        ),
    ]
