"""The caller's request to POST /api/chat: reading it within limits, and validating it;
and the response id and cursor of a resume or cancel.

A user message's content is a string, or a list of Responses content parts: `input_text`,
and attachments (`input_image`, `input_file`), which `attachments.parts` checks by their bytes.

Validation errors name the field, so the caller can fix the request. Model,
instructions and token limits are not the caller's to choose: they come from settings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request

from .attachments.parts import ATTACHMENT_TYPES, check_attachment, check_count
from .errors import (
    BODY_TOO_LARGE,
    INVALID_CONVERSATION_ID,
    INVALID_CURSOR,
    INVALID_JSON,
    INVALID_REQUEST,
    INVALID_RESPONSE_ID,
    UNKNOWN_APPROVAL,
    UNSUPPORTED_MEDIA_TYPE,
    HttpError,
)
from .settings import Settings

ROLES = ("user", "assistant")
_FIELDS = {"input", "previous_response_id", "conversation_id", "approvals", "regenerate"}
_MESSAGE_FIELDS = {"role", "content", "type"}
_APPROVAL_FIELDS = {"approval_request_id", "approve"}
_TEXT_FIELDS = {"type", "text"}
_RESPONSE_ID = re.compile(r"resp_[A-Za-z0-9_-]{1,200}")
CONVERSATION_ID = re.compile(r"conv_[A-Za-z0-9_-]{1,200}")  # the model service's conv_... ids
_ITEM_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_CURSOR = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True)
class Approval:
    """The caller's answer to an MCP approval request (an `approval.request` event)."""

    approval_request_id: str
    approve: bool

    def input_item(self) -> dict[str, Any]:
        return {
            "type": "mcp_approval_response",
            "approval_request_id": self.approval_request_id,
            "approve": self.approve,
        }


@dataclass(frozen=True)
class ChatRequest:
    # The caller's messages; in a request that continues an answer after tool calls, the items
    # that continue it (function_call_output, or the whole input so far).
    input: str | list[dict[str, Any]]
    previous_response_id: str | None = None
    approvals: tuple[Approval, ...] = ()
    conversation_id: str | None = None  # the answer continues this conversation (never with previous_response_id)
    # Ask the conversation's last question again, in place of its last answer, which this response
    # ends (only with conversation_id; no input, approvals or previous_response_id).
    regenerate: str | None = None
    # Function tools the caller runs (AG-UI's front-end tools), offered beside the relay's own: a
    # round that calls one ends the answer, the call left to the caller.
    client_tools: tuple[dict[str, Any], ...] = ()

    def upstream_input(self) -> str | list[dict[str, Any]]:
        """The upstream request's `input`: the answers to approval requests first, then the messages."""
        if not self.approvals:
            return self.input
        return [*(approval.input_item() for approval in self.approvals), *input_items(self.input)]


def question_of(request: ChatRequest) -> str | None:
    """The caller's question: the text of the input's last user message (None: the request has none,
    as approvals may not, or it is attachments alone)."""
    asked = [message["content"] for message in input_items(request.input) if message.get("role") == "user"]
    if not asked:
        return None
    content = asked[-1]
    if isinstance(content, list):
        content = " ".join(part["text"] for part in content if part.get("type") == "input_text")
    return content if isinstance(content, str) and content.strip() else None


def input_items(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An `input` as a list of items (a string is one user message)."""
    return [{"role": "user", "content": value}] if isinstance(value, str) else list(value)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def check_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HttpError(UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HttpError(INVALID_JSON, "The body is not valid UTF-8 JSON") from None


async def read_json(request: Request, limit: int) -> Any:
    """A JSON body (`application/json`, at most `limit` bytes), parsed."""
    check_content_type(request)
    return parse_json(await read_body(request, limit))


def parse_chat_request(body: bytes, settings: Settings) -> ChatRequest:
    document = parse_json(body)
    if not isinstance(document, dict):
        raise invalid("The body must be a JSON object", None)
    for name in document:
        if name not in _FIELDS:
            raise invalid(
                f"Unknown field {_quote(name)}: only 'input', 'previous_response_id', 'conversation_id',"
                " 'approvals' and 'regenerate' are accepted"
                " (model, instructions and limits are set by the server)",
                name,
            )
    approvals = _parse_approvals(document.get("approvals"), settings)
    regenerate = _parse_regenerate(document)
    if "input" not in document and not approvals and regenerate is None:
        raise invalid("'input' is required: a string, or a list of {role, content} messages", "input")
    previous_response_id = _parse_id(
        document.get("previous_response_id"), _RESPONSE_ID, "previous_response_id", "resp_abc123"
    )
    conversation_id = _parse_id(document.get("conversation_id"), CONVERSATION_ID, "conversation_id", "conv_abc123")
    if conversation_id is not None and previous_response_id is not None:
        message = "'conversation_id' and 'previous_response_id' cannot go together: a conversation continues itself"
        raise invalid(message, "conversation_id")
    if approvals and previous_response_id is None and conversation_id is None:
        message = (
            "'approvals' answer a response's approval requests: 'previous_response_id' must name that response"
            " (or 'conversation_id' its conversation)"
        )
        raise invalid(message, "previous_response_id")
    return ChatRequest(
        input=_parse_input(document["input"], settings) if "input" in document else [],
        previous_response_id=previous_response_id,
        approvals=approvals,
        conversation_id=conversation_id,
        regenerate=regenerate,
    )


def _parse_regenerate(document: dict[str, Any]) -> str | None:
    """`regenerate`: the response that ends a conversation's last answer, to ask its question
    again; it goes with `conversation_id` alone."""
    regenerate = _parse_id(document.get("regenerate"), _RESPONSE_ID, "regenerate", "resp_abc123")
    if regenerate is None:
        return None
    for name in ("input", "approvals", "previous_response_id"):
        if name in document:
            message = f"'regenerate' asks the conversation's last question again: it takes no {_quote(name)}"
            raise invalid(message, name)
    if "conversation_id" not in document:
        message = "'regenerate' needs 'conversation_id': the conversation whose last answer it replaces"
        raise invalid(message, "conversation_id")
    return regenerate


def _parse_input(value: Any, settings: Settings) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return check_text(value, "input", settings)
    if not isinstance(value, list):
        raise invalid("'input' must be a string or a list of messages", "input")
    if not value:
        raise invalid("'input' must not be empty", "input")
    if len(value) > settings.max_messages:
        raise invalid(f"'input' has {len(value)} messages; at most {settings.max_messages} are allowed", "input")
    return [_parse_message(item, f"input[{index}]", settings) for index, item in enumerate(value)]


def _parse_message(value: Any, where: str, settings: Settings) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object with 'role' and 'content'", where)
    for name in value:
        if name not in _MESSAGE_FIELDS:
            raise invalid(f"Unknown field {_quote(name)} in '{where}'", f"{where}.{name}")
    if value.get("type", "message") != "message":
        raise invalid(f"'{where}.type' must be 'message'", f"{where}.type")
    role = value.get("role")
    if role not in ROLES:
        raise invalid(f"'{where}.role' must be 'user' or 'assistant'", f"{where}.role")
    content = value.get("content")
    if isinstance(content, list) and role == "user":
        return {"role": role, "content": _parse_parts(content, f"{where}.content", settings)}
    if not isinstance(content, str):
        kinds = "a string or a list of content parts" if role == "user" else "a string"
        raise invalid(f"'{where}.content' must be {kinds}", f"{where}.content")
    return {"role": role, "content": check_text(content, f"{where}.content", settings)}


def _parse_parts(parts: list[Any], where: str, settings: Settings) -> list[dict[str, Any]]:
    """A user message's content parts: each one's shape, then what `check_content` checks."""
    placed = []
    for index, part in enumerate(parts):
        here = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise invalid(f"'{here}' must be an object with 'type'", here)
        kind = part.get("type")
        if kind == "input_text":
            _check_text_fields(part, here)
        elif kind not in ATTACHMENT_TYPES:
            raise invalid(f"'{here}.type' must be input_text, input_image or input_file", f"{here}.type")
        placed.append((here, part))
    return check_content(placed, where, settings)


def check_content(
    parts: Sequence[tuple[str, Mapping[str, Any]]], where: str, settings: Settings
) -> list[dict[str, Any]]:
    """A user message's content as Responses content parts, each with the field it came from (for
    any protocol's request): text, and attachments checked by their bytes (their number first,
    before any is decoded). `where`: the message's content."""
    if not parts:
        raise invalid(f"'{where}' must not be empty", where)
    attachments = sum(1 for _, part in parts if part.get("type") in ATTACHMENT_TYPES)
    check_count(attachments, where, settings.attachments)
    checked, chars = [], 0
    for here, part in parts:
        if part.get("type") in ATTACHMENT_TYPES:
            checked.append(check_attachment(part, here, settings.attachments))
            continue
        text = check_text(part["text"], f"{here}.text", settings)
        chars += len(text)
        checked.append({"type": "input_text", "text": text})
    if chars > settings.max_message_chars:
        raise invalid(f"'{where}' has {chars} characters; at most {settings.max_message_chars} are allowed", where)
    return checked


def _check_text_fields(part: dict[str, Any], where: str) -> None:
    for name in part:
        if name not in _TEXT_FIELDS:
            raise invalid(f"Unknown field {_quote(name)} in '{where}'", f"{where}.{name}")
    if not isinstance(part.get("text"), str):
        raise invalid(f"'{where}.text' must be a string", f"{where}.text")


def check_text(text: str, where: str, settings: Settings) -> str:
    """A message's text: not empty, and within MAX_MESSAGE_CHARS."""
    if not text.strip():
        raise invalid(f"'{where}' must not be empty", where)
    if len(text) > settings.max_message_chars:
        raise invalid(f"'{where}' has {len(text)} characters; at most {settings.max_message_chars} are allowed", where)
    return text


def _parse_approvals(value: Any, settings: Settings) -> tuple[Approval, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise invalid("'approvals' must be a list of {approval_request_id, approve}", "approvals")
    if len(value) > settings.max_messages:
        raise invalid(f"'approvals' has {len(value)} answers; at most {settings.max_messages} are allowed", "approvals")
    return tuple(_parse_approval(item, f"approvals[{index}]") for index, item in enumerate(value))


def _parse_approval(value: Any, where: str) -> Approval:
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object with 'approval_request_id' and 'approve'", where)
    for name in value:
        if name not in _APPROVAL_FIELDS:
            raise invalid(f"Unknown field {_quote(name)} in '{where}'", f"{where}.{name}")
    request_id = value.get("approval_request_id")
    if not isinstance(request_id, str) or not _ITEM_ID.fullmatch(request_id):
        raise invalid(
            f"'{where}.approval_request_id' must be the id of an approval request", f"{where}.approval_request_id"
        )
    approve = value.get("approve")
    if not isinstance(approve, bool):
        raise invalid(f"'{where}.approve' must be true or false", f"{where}.approve")
    return Approval(request_id, approve)


def check_approvals(approvals: tuple[Approval, ...], answered: dict[str, Any]) -> None:
    """Each approval must answer one of the `mcp_approval_request` items of the response it
    names (`previous_response_id`, retrieved as `answered`); else 400 `unknown_approval`."""
    output = answered.get("output")
    asked = {
        item.get("id")
        for item in (output if isinstance(output, list) else [])
        if isinstance(item, dict) and item.get("type") == "mcp_approval_request"
    }
    for index, approval in enumerate(approvals):
        if approval.approval_request_id not in asked:
            message = f"'approvals[{index}]' answers no approval request of the response in 'previous_response_id'"
            raise HttpError(UNKNOWN_APPROVAL, message, param=f"approvals[{index}]")


def response_id_or_none(value: Any, where: str) -> str | None:
    """A response id given in the field `where` (None when absent); 400 when it is not one."""
    return _parse_id(value, _RESPONSE_ID, where, "resp_abc123")


def _parse_id(value: Any, shape: re.Pattern[str], field: str, example: str) -> str | None:
    """An optional id field of the body: None, or an id of `shape` (`example`: one, for the message)."""
    if value is None:
        return None
    if not isinstance(value, str) or not shape.fullmatch(value):
        raise invalid(f"'{field}' must be an id such as '{example}'", field)
    return value


def check_conversation_id(conversation_id: str) -> None:
    """A conversation id in a route: checked before anything is looked up."""
    if not CONVERSATION_ID.fullmatch(conversation_id):
        raise HttpError(INVALID_CONVERSATION_ID, "The conversation id must look like 'conv_abc123'")


def check_response_id(response_id: str) -> None:
    """A response id in a route: checked before anything is sent upstream."""
    if not _RESPONSE_ID.fullmatch(response_id):
        raise HttpError(INVALID_RESPONSE_ID, "The response id must look like 'resp_abc123'")


def cursor(request: Request) -> int | None:
    """Where a resumed stream continues: after the sequence number in `?after=N` or in the
    `Last-Event-ID` header (what EventSource sends when it reconnects: it keeps its URL, so its
    header can be ahead of the URL's `after`); the later of the two; None: from the start."""
    given = [request.query_params.get("after"), request.headers.get("last-event-id")]
    numbers = [_event_id(raw) for raw in given if raw not in (None, "")]
    return max(numbers) if numbers else None


def _event_id(raw: str) -> int:
    if not _CURSOR.fullmatch(raw):
        raise HttpError(INVALID_CURSOR, "The cursor (after, or Last-Event-ID) must be an event id such as 42")
    return int(raw)


def _quote(name: str) -> str:
    """A caller-chosen name, shortened and escaped so it cannot break a message or log line."""
    return repr(name[:40])


def invalid(message: str, param: str | None) -> HttpError:
    """400 `invalid_request`, naming the field at fault."""
    if param is not None:
        param = param[:100] if param.isprintable() else None
    return HttpError(INVALID_REQUEST, message, param=param)


def _too_large(limit: int) -> HttpError:
    return HttpError(BODY_TOO_LARGE, f"The body is larger than {limit} bytes")
