"""Translating upstream Responses events: every shape, one terminal event, coalescing."""

from __future__ import annotations

from typing import Any

import orjson

from responses_relay.events import Translator, UpstreamProtocolError
from responses_relay.sse import Decoder, Event


def upstream(payload: dict[str, Any]) -> Event:
    return Event(payload.get("type"), orjson.dumps(payload), None)


def relayed(data: bytes) -> list[tuple[str | None, dict[str, Any], str | None]]:
    decoder = Decoder()
    return [(event.event, orjson.loads(event.data), event.id) for event in decoder.feed(data)]


CREATED = {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "gpt-4o-mini"}}


def delta(text: str, sequence: int) -> dict[str, Any]:
    return {"type": "response.output_text.delta", "delta": text, "sequence_number": sequence}


def test_deltas_of_one_read_become_one_event_with_the_last_id() -> None:
    translator = Translator()
    for payload in (CREATED, {"type": "response.in_progress", "sequence_number": 1}, delta("滋", 4), delta("賀", 5)):
        translator.feed(upstream(payload))
    assert relayed(translator.take()) == [
        ("response.created", {"type": "response.created", "response_id": "resp_1", "model": "gpt-4o-mini"}, "0"),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "滋賀"}, "5"),
    ]
    assert translator.deltas == 2
    assert translator.take() == b""


def test_completed_carries_usage_and_ends_the_stream() -> None:
    translator = Translator()
    usage = {"input_tokens": 31, "output_tokens": 96, "total_tokens": 127, "output_tokens_details": {}}
    translator.feed(upstream(delta("a", 4)))
    translator.feed(
        upstream({"type": "response.completed", "sequence_number": 9, "response": {"id": "r", "usage": usage}})
    )
    translator.feed(upstream(delta("late", 10)))
    translator.fail("x", "after the end")
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
        "9",
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
    assert event_id == "3"


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


def test_unknown_events_are_ignored_and_done_marker_too() -> None:
    translator = Translator()
    translator.feed(upstream({"type": "response.future_feature.delta", "delta": "hm"}))
    translator.feed(upstream({"type": "response.reasoning_summary_part.added", "summary_index": 0}))
    translator.feed(Event(None, b"[DONE]", None))
    assert translator.take() == b""
    assert not translator.finished


def test_relay_made_error_has_no_id_and_messages_are_redacted() -> None:
    translator = Translator(redact=lambda message: message.replace("secret.example", "the model service"))
    translator.feed(
        upstream({"type": "error", "code": "bad code\n", "message": "see secret.example", "sequence_number": 1})
    )
    [(_, payload, event_id)] = relayed(translator.take())
    assert payload == {"type": "error", "code": "bad_code_", "message": "see the model service"}
    assert event_id == "1"
    translator = Translator()
    translator.fail("upstream_timeout", "stalled")
    [(_, payload, event_id)] = relayed(translator.take())
    assert event_id is None


def test_data_that_is_not_json_is_a_protocol_error() -> None:
    translator = Translator()
    for data in (b"{not json", b"[1, 2]"):
        try:
            translator.feed(Event(None, data, None))
        except UpstreamProtocolError:
            continue
        raise AssertionError(f"{data!r} was accepted")
