"""The AI SDK's UI message stream (protocol v1), pure: the encoder's chunks for every relay event,
byte-split anywhere and read back; the same bytes read by the `ai` package itself
(`uiMessageChunkSchema`, `readUIMessageStream`, in tests/clients/ai_sdk_chunks.mjs); and the
decoder of the body `DefaultChatTransport` sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from responses_relay.chat_request import Approval
from responses_relay.errors import HttpError
from responses_relay.events import RelayEvent
from responses_relay.protocols.ai_sdk import AiSdkEncoder, ApprovalPart, decode_chat
from responses_relay.settings import Settings, load_settings
from responses_relay.sse import Decoder

from .attachment_files import data_url, image, pdf
from .clients import run_client

USAGE = {"input_tokens": 30, "output_tokens": 12, "total_tokens": 42}
CITATION = {"type": "url_citation", "url": "https://example.com/a", "title": "A", "start_index": 0, "end_index": 2}

ANSWER: list[RelayEvent] = [
    ("response.created", {"type": "response.created", "response_id": "resp_1", "model": "m"}, 0),
    ("response.reasoning_summary_text.delta",
     {"type": "response.reasoning_summary_text.delta", "delta": "考え", "output_index": 0, "summary_index": 0}, 3),
    ("response.reasoning_summary_text.delta",
     {"type": "response.reasoning_summary_text.delta", "delta": "次", "output_index": 0, "summary_index": 1}, 5),
    ("response.web_search_call.searching", {"type": "response.web_search_call.searching"}, 7),
    ("tool.call", {"type": "tool.call", "call_id": "call_a", "name": "local_time",
                   "arguments": '{"timezone":"Asia/Tokyo"}'}, 9),
    ("tool.result", {"type": "tool.result", "call_id": "call_a", "name": "local_time",
                     "output": '{"local_time":"09:30"}'}, None),
    ("tool.call", {"type": "tool.call", "call_id": "call_b", "name": "local_time", "arguments": "{}"}, 10),
    ("tool.result", {"type": "tool.result", "call_id": "call_b", "name": "local_time",
                     "output": '{"error":"unknown time zone"}'}, None),
    ("response.created", {"type": "response.created", "response_id": "resp_2", "model": "m"}, 0),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "滋賀\n"}, 4),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "です"}, 6),
    ("response.output_text.annotation.added", {"type": "response.output_text.annotation.added",
                                               "annotation": CITATION}, 7),
    ("response.output_text.annotation.added", {"type": "response.output_text.annotation.added",
                                               "annotation": CITATION}, 8),
    ("response.mcp_call.in_progress", {"type": "response.mcp_call.in_progress", "item_id": "mcp_1",
                                       "name": "search", "server_label": "wiki"}, 9),
    ("response.mcp_call.failed", {"type": "response.mcp_call.failed", "item_id": "mcp_1",
                                  "name": "search", "server_label": "wiki"}, 10),
    ("approval.request", {"type": "approval.request", "approval_request_id": "mcpr_1", "server_label": "wiki",
                          "name": "get_forecast", "arguments": '{"city":"Kyoto"}'}, 11),
    ("response.completed", {"type": "response.completed", "response_id": "resp_2", "status": "requires_approval",
                            "usage": USAGE}, 12),
]  # fmt: skip

CHUNKS = [
    {"type": "start", "messageId": "resp_1", "messageMetadata": {"responseId": "resp_1"}},
    {"type": "start-step"},
    {"type": "reasoning-start", "id": "reasoning-1"},
    {"type": "reasoning-delta", "id": "reasoning-1", "delta": "考え"},
    {"type": "reasoning-end", "id": "reasoning-1"},
    {"type": "reasoning-start", "id": "reasoning-2"},
    {"type": "reasoning-delta", "id": "reasoning-2", "delta": "次"},
    {"type": "data-web-search", "data": {"status": "searching"}, "transient": True},
    {"type": "reasoning-end", "id": "reasoning-2"},
    {"type": "tool-input-start", "toolCallId": "call_a", "toolName": "local_time", "dynamic": True,
     "providerExecuted": True},
    {"type": "tool-input-available", "toolCallId": "call_a", "toolName": "local_time", "dynamic": True,
     "providerExecuted": True, "input": {"timezone": "Asia/Tokyo"}},
    {"type": "tool-output-available", "toolCallId": "call_a", "output": {"local_time": "09:30"}, "dynamic": True,
     "providerExecuted": True},
    {"type": "tool-input-start", "toolCallId": "call_b", "toolName": "local_time", "dynamic": True,
     "providerExecuted": True},
    {"type": "tool-input-available", "toolCallId": "call_b", "toolName": "local_time", "dynamic": True,
     "providerExecuted": True, "input": {}},
    {"type": "tool-output-error", "toolCallId": "call_b", "errorText": "unknown time zone", "dynamic": True,
     "providerExecuted": True},
    {"type": "finish-step"},
    {"type": "start-step"},
    {"type": "message-metadata", "messageMetadata": {"responseId": "resp_2"}},
    {"type": "text-start", "id": "text-3"},
    {"type": "text-delta", "id": "text-3", "delta": "滋賀\n"},
    {"type": "text-delta", "id": "text-3", "delta": "です"},
    {"type": "source-url", "sourceId": "source-1", "url": "https://example.com/a", "title": "A"},
    {"type": "text-end", "id": "text-3"},
    {"type": "tool-input-available", "toolCallId": "mcp_1", "toolName": "search", "input": None,
     "title": "wiki: search", "dynamic": True, "providerExecuted": True},
    {"type": "tool-output-error", "toolCallId": "mcp_1", "errorText": "The MCP call failed", "dynamic": True,
     "providerExecuted": True},
    {"type": "tool-input-available", "toolCallId": "mcpr_1", "toolName": "get_forecast", "input": {"city": "Kyoto"},
     "title": "wiki: get_forecast", "dynamic": True, "providerExecuted": True},
    {"type": "tool-approval-request", "approvalId": "mcpr_1", "toolCallId": "mcpr_1"},
    {"type": "finish-step"},
    {"type": "finish", "finishReason": "tool-calls", "messageMetadata": {"responseId": "resp_2", "usage": USAGE}},
]  # fmt: skip


def encoded(events: list[RelayEvent], encoder: AiSdkEncoder | None = None) -> bytes:
    """The whole body the encoder makes of `events`, each read's events a batch of its own."""
    encoder = encoder or AiSdkEncoder()
    return encoder.open() + b"".join(encoder.encode([event]) for event in events) + encoder.close()


def chunks(body: bytes) -> list[Any]:
    data = [event.data for event in Decoder().feed(body)]
    assert data[-1] == b"[DONE]"
    return [orjson.loads(item) for item in data[:-1]]


def test_each_relay_event_becomes_its_chunks_in_order() -> None:
    assert chunks(encoded(ANSWER)) == CHUNKS


def test_a_batch_encodes_as_its_events_one_by_one() -> None:
    encoder = AiSdkEncoder()
    assert encoder.open() + encoder.encode(ANSWER) + encoder.close() == encoded(ANSWER)
    assert dict(encoder.headers) == {"x-vercel-ai-ui-message-stream": "v1"}


def test_the_bytes_split_anywhere_read_back_as_the_same_chunks() -> None:
    body = encoded(ANSWER)
    for cut in range(0, len(body) + 1, 3):
        decoder = Decoder()
        events = decoder.feed(body[:cut]) + decoder.feed(body[cut:])
        assert [orjson.loads(event.data) for event in events[:-1]] == CHUNKS, cut


def ended(status: str, **fields: Any) -> list[RelayEvent]:
    terminal = {"type": "response.completed", "response_id": "resp_1", "status": status, "usage": USAGE, **fields}
    return [ANSWER[0], ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "a"}, 1),
            ("response.completed", terminal, 2)]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "fields", "reason"),
    [
        ("completed", {}, "stop"),
        ("incomplete", {"incomplete_reason": "max_output_tokens"}, "length"),
        ("incomplete", {"incomplete_reason": "content_filter"}, "content-filter"),
        ("incomplete", {"incomplete_reason": "unknown"}, "other"),
        ("cancelled", {}, "other"),
    ],
)
def test_the_end_says_why_with_the_response_and_usage(status: str, fields: dict[str, str], reason: str) -> None:
    tail = chunks(encoded(ended(status, **fields)))[-4:]
    finish = {"type": "finish", "finishReason": reason, "messageMetadata": {"responseId": "resp_1", "usage": USAGE}}
    aborted = [{"type": "abort", "reason": "cancelled"}] if status == "cancelled" else []
    assert tail[-1] == finish
    assert tail[-1 - len(aborted) : -1] == aborted
    assert {"type": "text-end", "id": "text-1"} in tail


def test_an_error_carries_the_json_of_an_error_answered_before_the_stream() -> None:
    error = {"type": "error", "code": "upstream_timeout", "message": "The model service did not answer in time"}
    body = chunks(encoded([*ended("completed")[:2], ("error", error, None)]))
    assert body[-2:] == [
        {"type": "text-end", "id": "text-1"},
        {"type": "error", "errorText": '{"error":{"code":"upstream_timeout",'
                                       '"message":"The model service did not answer in time"}}'},
    ]  # fmt: skip


def test_a_hand_off_ends_the_stream_without_finish() -> None:
    resume = {"type": "stream.resume", "response_id": "resp_1", "after": 1}
    body = chunks(encoded([*ended("completed")[:2], ("stream.resume", resume, None)]))
    assert [chunk["type"] for chunk in body] == ["start", "start-step", "text-start", "text-delta"]


def test_a_refusal_is_a_text_part_of_its_own_marked_as_one() -> None:
    refusal = ("response.refusal.delta", {"type": "response.refusal.delta", "delta": "できません"}, 2)
    body = chunks(encoded([*ended("completed")[:2], refusal, refusal]))
    assert body[-5:] == [
        {"type": "text-delta", "id": "text-1", "delta": "a"},
        {"type": "text-end", "id": "text-1"},
        {"type": "text-start", "id": "text-2", "providerMetadata": {"relay": {"refusal": True}}},
        {"type": "text-delta", "id": "text-2", "delta": "できません"},
        {"type": "text-delta", "id": "text-2", "delta": "できません"},
    ]


def test_a_continuation_writes_into_the_message_it_continues_and_ends_the_answered_parts() -> None:
    approvals = [ApprovalPart("mcpr_1", "get_forecast", True), ApprovalPart("mcpr_2", "other", False)]
    progress = [(f"response.mcp_call.{status}", {"type": f"response.mcp_call.{status}", "item_id": "mcp_9",
                                                 "name": "get_forecast", "server_label": "wiki"}, n)
                for n, status in ((1, "in_progress"), (2, "completed"))]  # fmt: skip
    body = chunks(encoded([ANSWER[0], *progress], AiSdkEncoder("msg_x", approvals)))
    assert body == [
        {"type": "start", "messageId": "msg_x", "messageMetadata": {"responseId": "resp_1"}},
        {"type": "tool-output-denied", "toolCallId": "mcpr_2"},
        {"type": "start-step"},
        {"type": "tool-output-available", "toolCallId": "mcpr_1", "output": None, "dynamic": True,
         "providerExecuted": True},
    ]  # fmt: skip


def test_the_ai_sdk_reads_every_chunk_with_its_own_schema_and_assembles_the_message() -> None:
    assembled = run_client("ai_sdk_chunks.mjs", stdin=encoded(ANSWER))
    assert assembled["invalid"] == []
    [message] = assembled["messages"][-1:]
    assert message["id"] == "resp_1"
    assert message["metadata"] == {"responseId": "resp_2", "usage": USAGE}
    kinds = [(part["type"], part.get("state")) for part in message["parts"]]
    assert kinds == [
        ("step-start", None), ("reasoning", "done"), ("reasoning", "done"),
        ("dynamic-tool", "output-available"), ("dynamic-tool", "output-error"),
        ("step-start", None), ("text", "done"), ("source-url", None),
        ("dynamic-tool", "output-error"), ("dynamic-tool", "approval-requested"),
    ]  # fmt: skip
    assert message["parts"][6]["text"] == "滋賀\nです"


# The request decoder.


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"id": "u" + text[:4], "role": "user", "parts": [{"type": "text", "text": text}], **extra}


def assistant(text: str, response_id: str | None, *parts: dict[str, Any]) -> dict[str, Any]:
    metadata = {"responseId": response_id} if response_id else {}
    return {"id": "a" + text[:4], "role": "assistant", "metadata": metadata,
            "parts": [{"type": "step-start"}, {"type": "text", "text": text}, *parts]}  # fmt: skip


def body(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"id": "chat-1", "messages": list(messages), "trigger": "submit-message", "messageId": None, **fields}


def stored(**overrides: str) -> Settings:
    """Settings for Azure OpenAI, which keeps responses."""
    return load_settings({"OPENAI_ENDPOINT": "https://relay.openai.azure.com/openai/v1/", "OPENAI_API_KEY": "k",
                          **overrides})  # fmt: skip


def test_with_stored_responses_only_the_new_message_goes_with_the_last_answer() -> None:
    chat = decode_chat(body(user("滋賀は？"), assistant("湖です", "resp_a"), user("京都は？")), stored())
    assert chat.chat_id == "chat-1"
    assert chat.request.previous_response_id == "resp_a"
    assert chat.request.input == [{"role": "user", "content": "京都は？"}]
    assert chat.message_id is None


def test_without_stored_responses_the_history_goes_as_text(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()  # an OpenAI-compatible server: it may keep no responses
    assert not settings.stores_responses
    messages = [user("滋賀は？"), assistant("湖です", "resp_a"), assistant("", None), user("京都は？")]
    chat = decode_chat(body(*messages, trigger="regenerate-message"), settings)
    assert chat.request.previous_response_id is None
    assert chat.request.input == [
        {"role": "user", "content": "滋賀は？"},
        {"role": "assistant", "content": "湖です"},
        {"role": "user", "content": "京都は？"},
    ]


def test_answered_approvals_continue_the_assistant_message() -> None:
    granted = {"type": "dynamic-tool", "toolName": "get_forecast", "toolCallId": "mcpr_1",
               "state": "approval-responded", "approval": {"id": "mcpr_1", "approved": True}}  # fmt: skip
    denied = {"type": "tool-search", "toolCallId": "mcpr_2", "state": "approval-responded",
              "approval": {"id": "mcpr_2", "approved": False, "reason": "no"}}  # fmt: skip
    chat = decode_chat(body(user("天気は？"), assistant("", "resp_b", granted, denied)), stored())
    assert chat.request.previous_response_id == "resp_b"
    assert chat.request.approvals == (Approval("mcpr_1", True), Approval("mcpr_2", False))
    assert chat.approvals == (ApprovalPart("mcpr_1", "get_forecast", True), ApprovalPart("mcpr_2", "search", False))
    assert chat.message_id == "a"


@pytest.mark.parametrize(
    ("document", "param"),
    [
        ([], None),
        (body(user("x"), id="a/b"), "id"),
        (body(user("x"), trigger="resume-stream"), "trigger"),
        (body(), "messages"),
        (body({"role": "system", "parts": []}, user("x")), "messages[0]"),
        (body({"role": "tool", "parts": []}), "messages[0].role"),
        (body({"role": "user"}), "messages[0]"),
        (body(user(" ")), "messages[0]"),
        (body(user("x"), assistant("y", "resp_a")), "messages[1]"),
        (body(user("x"), assistant("y", None, {"type": "dynamic-tool", "state": "approval-responded",
                                               "approval": {"id": "mcpr_1", "approved": True}})),
         "messages[1].metadata"),
        (body(user("x"), assistant("y", "bad id"), user("z")), "messages[1].metadata.responseId"),
    ],
)  # fmt: skip
def test_a_bad_body_is_refused_naming_the_field(document: Any, param: str | None) -> None:
    with pytest.raises(HttpError) as refused:
        decode_chat(document, stored())
    assert (refused.value.code, refused.value.param) == ("invalid_request", param)


def test_files_are_attachments_checked_by_their_bytes() -> None:
    photo, menu = image("PNG"), pdf()
    document = {"type": "file", "mediaType": "application/pdf", "filename": "menu.pdf",
                "url": data_url(menu, "application/pdf")}  # fmt: skip
    parts = [{"type": "file", "mediaType": "image/png", "url": data_url(photo, "image/png")},
             {"type": "text", "text": "これは？"}, {"type": "data-note", "data": 1}, document]  # fmt: skip
    chat = decode_chat(body({"id": "u", "role": "user", "parts": parts}), stored())
    assert chat.request.input == [{"role": "user", "content": [
        {"type": "input_image", "image_url": data_url(photo, "image/png"), "detail": "auto"},
        {"type": "input_text", "text": "これは？"},
        {"type": "input_file", "filename": "menu.pdf", "file_data": data_url(menu, "application/pdf")},
    ]}]  # fmt: skip
    fake = {"type": "file", "mediaType": "image/png", "url": data_url(b"not an image", "image/png")}
    with pytest.raises(HttpError) as refused:
        decode_chat(body({"id": "u", "role": "user", "parts": [{"type": "text", "text": "x"}, fake]}), stored())
    assert (refused.value.code, refused.value.param) == ("unsupported_attachment", "messages[0].parts[1].image_url")
    fetched = {"type": "file", "mediaType": "image/png", "url": "https://example.com/a.png"}
    with pytest.raises(HttpError) as refused:
        decode_chat(body({"id": "u", "role": "user", "parts": [fetched]}), stored())
    assert refused.value.code == "unsupported_attachment"


def test_the_limits_hold_for_what_is_sent_upstream() -> None:
    settings = stored(MAX_MESSAGES="2", MAX_MESSAGE_CHARS="5")
    with pytest.raises(HttpError) as too_long:
        decode_chat(body(user("123456")), settings)
    assert too_long.value.param == "messages[0]"
    history = [user("a"), assistant("b", "resp_a"), user("c"), assistant("d", "resp_b"), user("e")]
    assert decode_chat(body(*history), settings).request.input == [{"role": "user", "content": "e"}]
