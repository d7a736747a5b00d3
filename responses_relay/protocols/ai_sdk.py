"""The AI SDK's UI message stream, protocol v1 (what `ai` 5, 6 and 7 read): the request
`DefaultChatTransport` sends, decoded into the relay's chat request, and the relay's events
encoded as its chunks, one JSON object per `data:` line, ending with `data: [DONE]`.

An answer is one assistant message: `start` (its id and `messageMetadata.responseId`), a step
per round (`start-step`, `finish-step`), text, reasoning and `source-url` parts, a dynamic,
provider-executed tool part per call the relay runs or MCP call the model service makes, and
`finish` (`finishReason`, `messageMetadata: {responseId, usage}`). A stream that ends without
`finish` was cut or handed off at the time limit: the client resumes it (a replay of the whole
answer). Errors are `error` chunks whose `errorText` is the JSON an error answered before the
stream has: `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

from ..chat_request import Approval, ChatRequest, check_content, check_text, invalid, response_id_or_none
from ..events import APPROVAL_REQUEST, MCP_CALL_EVENTS, TOOL_CALL, TOOL_RESULT, WEB_SEARCH_EVENTS, RelayEvent
from ..settings import Settings

HEADERS: Mapping[str, str] = MappingProxyType({"x-vercel-ai-ui-message-stream": "v1"})
DONE = b"data: [DONE]\n\n"
CHAT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# How a round's end reads as the AI SDK's finish reason.
_FINISH_REASONS = {"completed": "stop", "requires_approval": "tool-calls", "cancelled": "other"}
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content-filter"}
_TRIGGERS = ("submit-message", "regenerate-message")
_TOOL_FLAGS = {"dynamic": True, "providerExecuted": True}  # the client runs none of the relay's tools


def _chunk(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _tool_output(part_id: str, output: Any) -> bytes:
    return _chunk({"type": "tool-output-available", "toolCallId": part_id, "output": output, **_TOOL_FLAGS})


def _tool_error(part_id: str, error: str) -> bytes:
    return _chunk({"type": "tool-output-error", "toolCallId": part_id, "errorText": error, **_TOOL_FLAGS})


def _json_or_text(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@dataclass(frozen=True)
class ApprovalPart:
    """An approval the client answered (a tool part in state `approval-responded`): the MCP tool it
    lets run, so the continuation can end that part."""

    approval_id: str
    tool_name: str
    approved: bool


class AiSdkEncoder:
    """One stream's chunks. `message_id`: the assistant message the answer is written into (None:
    the first response's id); `approvals`: those the request answered, whose parts this stream ends."""

    headers = HEADERS

    def __init__(self, message_id: str | None = None, approvals: Sequence[ApprovalPart] = ()) -> None:
        self._message_id = message_id
        self._approvals = list(approvals)
        self._started = False
        self._response_id: str | None = None
        self._parts = 0  # text and reasoning parts opened, for their ids
        self._text: bytes | None = None  # the open text part's delta prefix
        self._text_id = ""
        self._text_kind: str | None = None  # the open text part's event type (text or refusal)
        self._reasoning: tuple[str, tuple[int, ...]] | None = None  # the open reasoning part: id, summary part
        self._sources: dict[str, str] = {}  # url → sourceId
        self._mcp_parts: dict[str, str] = {}  # an MCP call's item id → its tool part's id

    def open(self) -> bytes:
        return b""

    def close(self) -> bytes:
        return DONE

    def encode(self, events: Sequence[RelayEvent]) -> bytes:
        if len(events) == 1:
            return self._encode(*events[0])
        return b"".join([self._encode(kind, payload, event_id) for kind, payload, event_id in events])

    def _encode(self, kind: str, payload: dict[str, Any], event_id: int | None) -> bytes:
        if kind == "response.output_text.delta" and self._text_kind == kind:  # most events: no lookup
            return self._text + orjson.dumps(payload["delta"]) + b"}\n\n"  # type: ignore[operator]
        handler = _HANDLERS.get(kind)
        return handler(self, payload) if handler is not None else b""

    def _created(self, payload: dict[str, Any]) -> bytes:
        self._response_id = payload.get("response_id")
        metadata = {"responseId": self._response_id}
        if not self._started:
            self._started = True
            start = {"type": "start", "messageId": self._message_id or self._response_id, "messageMetadata": metadata}
            denied = [
                _chunk({"type": "tool-output-denied", "toolCallId": approval.approval_id})
                for approval in self._approvals
                if not approval.approved
            ]
            return b"".join([_chunk(start), *denied, _chunk({"type": "start-step"})])
        next_step: list[dict[str, Any]] = [
            {"type": "finish-step"},
            {"type": "start-step"},
            {"type": "message-metadata", "messageMetadata": metadata},
        ]
        return self._close_parts() + b"".join([_chunk(chunk) for chunk in next_step])

    def _text_delta(self, payload: dict[str, Any]) -> bytes:
        kind = payload["type"]
        if self._text is not None and self._text_kind == kind:
            return self._text + orjson.dumps(payload["delta"]) + b"}\n\n"
        opening = self._close_parts()
        self._parts += 1
        part_id = self._text_id = f"text-{self._parts}"
        start: dict[str, Any] = {"type": "text-start", "id": part_id}
        if kind == "response.refusal.delta":  # the model's refusal, told apart from an answer
            start["providerMetadata"] = {"relay": {"refusal": True}}
        self._text_kind = kind
        self._text = b'data: {"type":"text-delta","id":"' + part_id.encode() + b'","delta":'
        return opening + _chunk(start) + self._text + orjson.dumps(payload["delta"]) + b"}\n\n"

    def _reasoning_delta(self, payload: dict[str, Any]) -> bytes:
        part = (payload.get("output_index", 0), payload.get("summary_index", 0))
        opening = b""
        if self._reasoning is None or self._reasoning[1] != part:
            opening = self._close_parts()
            self._parts += 1
            self._reasoning = (f"reasoning-{self._parts}", part)
            opening += _chunk({"type": "reasoning-start", "id": self._reasoning[0]})
        return opening + _chunk({"type": "reasoning-delta", "id": self._reasoning[0], "delta": payload["delta"]})

    def _close_parts(self) -> bytes:
        closing = b""
        if self._text is not None:
            closing += _chunk({"type": "text-end", "id": self._text_id})
            self._text = self._text_kind = None
        if self._reasoning is not None:
            closing += _chunk({"type": "reasoning-end", "id": self._reasoning[0]})
            self._reasoning = None
        return closing

    def _citation(self, payload: dict[str, Any]) -> bytes:
        annotation = payload["annotation"]
        url = annotation["url"]
        if url in self._sources:
            return b""
        source_id = self._sources[url] = f"source-{len(self._sources) + 1}"
        return _chunk({"type": "source-url", "sourceId": source_id, "url": url, "title": annotation["title"]})

    def _web_search(self, payload: dict[str, Any]) -> bytes:
        status = payload["type"].rsplit(".", 1)[1]  # in_progress, searching, completed
        return _chunk({"type": "data-web-search", "data": {"status": status}, "transient": True})

    def _tool_call(self, payload: dict[str, Any]) -> bytes:
        call = {"toolCallId": payload["call_id"], "toolName": payload["name"], **_TOOL_FLAGS}
        started = _chunk({"type": "tool-input-start", **call})
        available = {"type": "tool-input-available", **call, "input": _json_or_text(payload["arguments"])}
        return self._close_parts() + started + _chunk(available)

    def _tool_result(self, payload: dict[str, Any]) -> bytes:
        output = _json_or_text(payload["output"])
        if isinstance(output, dict) and set(output) == {"error"}:  # the relay could not run the call as asked
            return _tool_error(payload["call_id"], str(output["error"]))
        return _tool_output(payload["call_id"], output)

    def _approval_request(self, payload: dict[str, Any]) -> bytes:
        approval_id = payload["approval_request_id"]
        title = f"{payload['server_label']}: {payload['name']}"
        available = {"type": "tool-input-available", "toolCallId": approval_id, "toolName": payload["name"],
                     "input": _json_or_text(payload["arguments"]), "title": title, **_TOOL_FLAGS}  # fmt: skip
        asked = {"type": "tool-approval-request", "approvalId": approval_id, "toolCallId": approval_id}
        return self._close_parts() + _chunk(available) + _chunk(asked)

    def _mcp_call(self, payload: dict[str, Any]) -> bytes:
        """An MCP call the model service makes: a tool part of its own, or the part of the approval
        the client gave for it (matched by the tool's name)."""
        item_id, status = payload.get("item_id") or "", payload["type"].rsplit(".", 1)[1]
        opening = b"" if item_id in self._mcp_parts else self._mcp_part(item_id, payload)
        part_id = self._mcp_parts[item_id]
        if status == "completed":
            return opening + _tool_output(part_id, None)  # the call's output stays with the model service
        if status == "failed":
            return opening + _tool_error(part_id, "The MCP call failed")
        return opening

    def _mcp_part(self, item_id: str, payload: dict[str, Any]) -> bytes:
        name = payload.get("name") or ""
        approved = next((part for part in self._approvals if part.approved and part.tool_name == name), None)
        if approved is not None:
            self._approvals.remove(approved)
            self._mcp_parts[item_id] = approved.approval_id
            return self._close_parts()
        self._mcp_parts[item_id] = item_id
        title = f"{payload.get('server_label') or ''}: {name}"
        part = {"type": "tool-input-available", "toolCallId": item_id, "toolName": name, "input": None, "title": title}
        return self._close_parts() + _chunk({**part, **_TOOL_FLAGS})

    def _completed(self, payload: dict[str, Any]) -> bytes:
        status = payload["status"]
        if status == "incomplete":
            reason = _INCOMPLETE_REASONS.get(payload.get("incomplete_reason") or "", "other")
        else:
            reason = _FINISH_REASONS.get(status, "other")
        metadata = {"responseId": payload.get("response_id"), "usage": payload.get("usage")}
        ending = self._close_parts() + _chunk({"type": "finish-step"})
        if status == "cancelled":
            ending += _chunk({"type": "abort", "reason": "cancelled"})
        return ending + _chunk({"type": "finish", "finishReason": reason, "messageMetadata": metadata})

    def _error(self, payload: dict[str, Any]) -> bytes:
        error = orjson.dumps({"error": {"code": payload["code"], "message": payload["message"]}}).decode()
        return self._close_parts() + _chunk({"type": "error", "errorText": error})


_HANDLERS = {
    "response.created": AiSdkEncoder._created,
    "response.output_text.delta": AiSdkEncoder._text_delta,
    "response.refusal.delta": AiSdkEncoder._text_delta,
    "response.reasoning_summary_text.delta": AiSdkEncoder._reasoning_delta,
    "response.output_text.annotation.added": AiSdkEncoder._citation,
    **dict.fromkeys(WEB_SEARCH_EVENTS, AiSdkEncoder._web_search),
    TOOL_CALL: AiSdkEncoder._tool_call,
    TOOL_RESULT: AiSdkEncoder._tool_result,
    APPROVAL_REQUEST: AiSdkEncoder._approval_request,
    **dict.fromkeys(MCP_CALL_EVENTS, AiSdkEncoder._mcp_call),
    "response.completed": AiSdkEncoder._completed,
    "error": AiSdkEncoder._error,
}


@dataclass(frozen=True)
class AiSdkChat:
    """A decoded `POST /api/ai-sdk/chat`: the chat, what to ask upstream, and the message the answer
    is written into when it continues one (after approvals)."""

    chat_id: str
    request: ChatRequest
    message_id: str | None = None
    approvals: tuple[ApprovalPart, ...] = field(default=())


def decode_chat(document: Any, settings: Settings) -> AiSdkChat:
    """The body `DefaultChatTransport` sends, `{id, messages, trigger, messageId}` (other fields are
    ignored), as the relay's chat request; 400 `invalid_request` naming the field at fault."""
    if not isinstance(document, dict):
        raise invalid("The body must be a JSON object", None)
    chat_id = document.get("id")
    if not isinstance(chat_id, str) or not CHAT_ID.fullmatch(chat_id):
        raise invalid("'id' must be the chat's id: 1 to 128 letters, digits, '_' or '-'", "id")
    trigger = document.get("trigger", "submit-message")
    if trigger not in _TRIGGERS:
        raise invalid("'trigger' must be 'submit-message' or 'regenerate-message'", "trigger")
    messages = document.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty list of UI messages", "messages")
    for index, message in enumerate(messages):
        _check_message(message, index)
    last = messages[-1]
    if last["role"] == "assistant":
        return _continuation(chat_id, messages, settings)
    return AiSdkChat(chat_id, _new_answer(messages, settings))


def _check_message(message: Any, index: int) -> None:
    where = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        raise invalid(f"'{where}' must be a UI message with 'role' and 'parts'", where)
    role = message.get("role")
    if role == "system":
        raise invalid(f"'{where}': system messages are not accepted (instructions are set by the server)", where)
    if role not in ("user", "assistant"):
        raise invalid(f"'{where}.role' must be 'user' or 'assistant'", f"{where}.role")
    for number, part in enumerate(message["parts"]):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise invalid(f"'{where}.parts[{number}]' must be an object with a 'type'", f"{where}.parts[{number}]")


def _new_answer(messages: list[dict[str, Any]], settings: Settings) -> ChatRequest:
    """Where responses are stored, only what follows the last answered message, after its response;
    otherwise the whole history."""
    previous: str | None = None
    start = 0
    if settings.stores_responses:
        for index in range(len(messages) - 1, -1, -1):
            previous = _response_id(messages[index], index) if messages[index]["role"] == "assistant" else None
            if previous is not None:
                start = index + 1
                break
    items = [_item(message, index, settings) for index, message in enumerate(messages) if index >= start]
    inputs = [item for item in items if item is not None]
    if not inputs or inputs[-1]["role"] != "user":
        raise invalid("The last message must be the user's, with text", f"messages[{len(messages) - 1}]")
    if len(inputs) > settings.max_messages:
        raise invalid(f"The chat sends {len(inputs)} messages; at most {settings.max_messages} are allowed", "messages")
    return ChatRequest(inputs, previous_response_id=previous)


def _item(message: dict[str, Any], index: int, settings: Settings) -> dict[str, Any] | None:
    """A message as an input message: its text, and a user's files as attachments; None for an
    assistant message without text (its tool, reasoning and data parts are not input)."""
    where = f"messages[{index}]"
    if message["role"] == "user" and any(part["type"] == "file" for part in message["parts"]):
        parts = [(f"{where}.parts[{number}]", _content_part(part)) for number, part in enumerate(message["parts"])
                 if part["type"] in ("text", "file")]  # fmt: skip
        return {"role": "user", "content": check_content(parts, f"{where}.parts", settings)}
    texts = [part.get("text") for part in message["parts"] if part["type"] == "text"]
    text = "\n\n".join(text for text in texts if isinstance(text, str) and text)
    if not text.strip() and message["role"] == "assistant":
        return None
    return {"role": message["role"], "content": check_text(text, where, settings)}


def _content_part(part: dict[str, Any]) -> dict[str, Any]:
    """A text or file part as a Responses content part (a file's url, a data: URL, is checked by its bytes)."""
    if part["type"] == "text":
        return {"type": "input_text", "text": part.get("text")}
    media_type = part.get("mediaType")
    if isinstance(media_type, str) and media_type.startswith("image/"):
        return {"type": "input_image", "image_url": part.get("url")}
    return {"type": "input_file", "filename": part.get("filename") or "attachment.pdf", "file_data": part.get("url")}


def _continuation(chat_id: str, messages: list[dict[str, Any]], settings: Settings) -> AiSdkChat:
    """The last message is the assistant's: its answered approvals continue its response."""
    index = len(messages) - 1
    message = messages[index]
    approvals = tuple(_approvals(message, index))
    if not approvals:
        message_text = "The last message must be the user's, or the assistant's with approval responses"
        raise invalid(message_text, f"messages[{index}]")
    previous = _response_id(message, index)
    if previous is None:
        raise invalid("The approvals' message has no 'metadata.responseId'", f"messages[{index}].metadata")
    answers = tuple(Approval(part.approval_id, part.approved) for part in approvals)
    request = ChatRequest([], previous_response_id=previous, approvals=answers)
    message_id = message.get("id")
    return AiSdkChat(chat_id, request, message_id if isinstance(message_id, str) else None, approvals)


def _approvals(message: dict[str, Any], index: int) -> list[ApprovalPart]:
    answered = []
    for number, part in enumerate(message["parts"]):
        if part.get("state") != "approval-responded":
            continue
        approval = part.get("approval")
        where = f"messages[{index}].parts[{number}].approval"
        if not isinstance(approval, dict) or not isinstance(approval.get("id"), str):
            raise invalid(f"'{where}' must have the approval's 'id'", where)
        if not isinstance(approval.get("approved"), bool):
            raise invalid(f"'{where}.approved' must be true or false", f"{where}.approved")
        name = part.get("toolName") if part["type"] == "dynamic-tool" else part["type"].removeprefix("tool-")
        answered.append(ApprovalPart(approval["id"], str(name), approval["approved"]))
    return answered


def _response_id(message: dict[str, Any], index: int) -> str | None:
    metadata = message.get("metadata")
    value = metadata.get("responseId") if isinstance(metadata, dict) else None
    return response_id_or_none(value, f"messages[{index}].metadata.responseId")
