"""AG-UI 1.0: a `RunAgentInput` decoded into the relay's chat request, and the relay's events
encoded as AG-UI events (`data: <event JSON>`, `\\n` line endings, an `id:` line each).

A run is one answer. Each round's text is a message named by the round's response id (so the next
run's messages say which response to continue), its function calls are tool calls of that message,
reasoning summaries are reasoning messages, citations, web searches and MCP calls are `CUSTOM`
events. The run ends with `RUN_FINISHED`: outcome `success` (with the client's tool calls still
pending), `interrupt` (MCP approvals, answered by the next run's `resume`) or `cancelled`, the
result `{responseId, status}` and the usage; or with `RUN_ERROR` `{message, code}`.

Resume, beyond AG-UI: each event's id says where it stands in the run (`Cursor`), so a stream cut
or handed off continues after the last id received, exactly once: `GET /api/ag-ui/{threadId}/runs/
{runId}` with `Last-Event-ID` reads that round again from its start and sends only what follows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from ..chat_request import Approval, ChatRequest, check_content, check_text, invalid
from ..errors import INVALID_CURSOR, HttpError
from ..events import APPROVAL_REQUEST, MCP_CALL_EVENTS, TOOL_CALL, TOOL_RESULT, WEB_SEARCH_EVENTS, RelayEvent
from ..settings import Settings

NO_ROUND = "-"  # where events stand before the first response is known
RUN_ID = re.compile(r"[^\x00-\x1f\x7f/\\?#]{1,200}")  # a thread or run id: one path segment
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_CLIENT_TOOLS = 64
_CURSOR = re.compile(r"(resp_[A-Za-z0-9_-]{1,200})\.(-1|[0-9]{1,15})\.([0-9]{1,15})(?:\.([0-9a-f]{1,64}))?")
# What `resume` entries answer: the MCP approval, as the interrupt's responseSchema says.
APPROVAL_SCHEMA: Mapping[str, Any] = MappingProxyType(
    {"type": "object", "properties": {"approved": {"type": "boolean"}}, "required": ["approved"]}
)
_TEXT_KINDS = {"response.output_text.delta": "", "response.refusal.delta": "-refusal"}  # message id suffixes
_RESPONSE = re.compile(r"resp_[A-Za-z0-9_-]{1,200}")
_ROLES = ("user", "assistant", "tool", "activity", "reasoning")


class Cursor(NamedTuple):
    """Where an event stands in its run: the round (response) it belongs to, the id of the last
    relay event whose content it follows (-1: none yet), how many events came since, and, for a
    tool result, the calls of the round whose results were sent (bits in the calls' order)."""

    round: str
    position: int
    since: int
    results: int | None = None

    def __str__(self) -> str:
        head = f"{self.round}.{self.position}.{self.since}"
        return head if self.results is None else f"{head}.{self.results:x}"


def parse_cursor(raw: str) -> Cursor:
    """A `Last-Event-ID` this relay gave; 400 `invalid_cursor` otherwise."""
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise HttpError(INVALID_CURSOR, "Last-Event-ID must be the id of an event of the run")
    results = int(match[4], 16) if match[4] is not None else None
    return Cursor(match[1], int(match[2]), int(match[3]), results)


def _sse(event: dict[str, Any], cursor: str) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\nid: " + cursor.encode() + b"\n\n"


class AgUiEncoder:
    """One stream's events. `after`: a resume's cursor; the round it names is read again from its
    start, and only the events after it are sent."""

    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(self, thread_id: str, run_id: str, *, after: Cursor | None = None) -> None:
        self._run = {"threadId": thread_id, "runId": run_id}
        self._after = after
        self._out: list[bytes] = []
        self._started = after is not None  # a resumed run has started already
        self._round = NO_ROUND
        self._position = -1
        self._count = 0
        self._model: str | None = None
        self._text: str | None = None  # the open text message's id
        self._text_kind: str | None = None  # the relay event type it is made of (text or refusal)
        self._text_prefix = b""  # its TEXT_MESSAGE_CONTENT before the delta
        self._cursor_prefix = b""  # its content's `id:` line before the position
        self._reasoning_span: str | None = None
        self._reasoning: tuple[str, tuple[int, int]] | None = None  # the open reasoning message: id, summary part
        self._calls: list[str] = []  # this round's tool calls, in order
        self._results = 0  # bits: this round's calls whose results were sent
        self._interrupts: list[dict[str, Any]] = []

    def open(self) -> bytes:
        return b""

    def close(self) -> bytes:
        return b""

    def encode(self, events: Sequence[RelayEvent]) -> bytes:
        if len(events) == 1 and events[0][0] == self._text_kind and self._after is None:  # most reads
            return self._content(events[0][1], events[0][2])
        for kind, payload, event_id in events:
            if kind == self._text_kind and self._after is None:
                self._out.append(self._content(payload, event_id))
                continue
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, payload, event_id)
        encoded = b"".join(self._out)
        self._out.clear()
        return encoded

    def _content(self, payload: dict[str, Any], event_id: int | None) -> bytes:
        """A text delta of the open message, as TEXT_MESSAGE_CONTENT (made without a dict: one per read)."""
        if event_id is not None:
            self._position = event_id
        self._count = 1
        return self._text_prefix + orjson.dumps(payload["delta"]) + self._cursor_prefix + b"%d.0\n\n" % self._position

    def _emit(self, event: dict[str, Any], *, results: int | None = None, call: int = 0) -> None:
        """Send `event` unless a resume's caller has it. A tool result's cursor carries the round's
        results sent so far (`results`), its own call's bit among them (`call`)."""
        cursor = Cursor(self._round, self._position, self._count, results)
        self._count += 1
        if self._after is None or not self._received(cursor, call):
            self._out.append(_sse(event, str(cursor)))

    def _received(self, cursor: Cursor, call: int) -> bool:
        """The resume's caller has the event at `cursor`. Tool results arrive as their calls end, so
        a resume that stops among them names which it has; other events are in order."""
        after = self._after
        assert after is not None
        if cursor.round != after.round:
            return False
        if call and after.results is not None and cursor.position == after.position:
            return bool(call & after.results)
        return (cursor.position, cursor.since) <= (after.position, after.since)

    def _at(self, event_id: int | None) -> None:
        """The following events carry the relay event `event_id`'s content."""
        if event_id is not None:
            self._position, self._count = event_id, 0

    def _created(self, payload: dict[str, Any], event_id: int | None) -> None:
        response_id = payload.get("response_id") or NO_ROUND
        if self._round != NO_ROUND:
            self._close_parts()  # the last round's, as its own events
        self._round, self._position, self._count = response_id, -1, 0
        self._cursor_prefix = b"}\nid: " + response_id.encode() + b"."
        self._calls, self._results, self._interrupts = [], 0, []
        self._model = payload.get("model")
        if not self._started:
            self._started = True
            self._emit({"type": "RUN_STARTED", **self._run, "metadata": {"responseId": response_id}})
        self._at(event_id)

    def _text_delta(self, payload: dict[str, Any], event_id: int | None) -> None:
        kind = payload["type"]
        if self._text_kind != kind:
            self._close_parts()
            self._text = self._round + _TEXT_KINDS[kind]
            self._text_kind = kind
            start: dict[str, Any] = {"type": "TEXT_MESSAGE_START", "messageId": self._text, "role": "assistant"}
            if kind == "response.refusal.delta":
                start["metadata"] = {"refusal": True}
            self._emit(start)
            content = orjson.dumps({"type": "TEXT_MESSAGE_CONTENT", "messageId": self._text, "delta": ""})
            self._text_prefix = b"data: " + content[: -len(b'"delta":""}')] + b'"delta":'
        self._at(event_id)
        self._emit({"type": "TEXT_MESSAGE_CONTENT", "messageId": self._text, "delta": payload["delta"]})

    def _reasoning_delta(self, payload: dict[str, Any], event_id: int | None) -> None:
        part = (payload.get("output_index", 0), payload.get("summary_index", 0))
        if self._reasoning is None or self._reasoning[1] != part:
            self._close_text()
            self._close_reasoning_message()
            if self._reasoning_span is None:
                self._reasoning_span = f"{self._round}-reasoning"
                self._emit({"type": "REASONING_START", "messageId": self._reasoning_span})
            self._reasoning = (f"{self._round}-reasoning-{part[0]}-{part[1]}", part)
            self._emit({"type": "REASONING_MESSAGE_START", "messageId": self._reasoning[0], "role": "reasoning"})
        self._at(event_id)
        self._emit({"type": "REASONING_MESSAGE_CONTENT", "messageId": self._reasoning[0], "delta": payload["delta"]})

    def _close_text(self) -> None:
        if self._text is not None:
            self._emit({"type": "TEXT_MESSAGE_END", "messageId": self._text})
            self._text = self._text_kind = None

    def _close_reasoning_message(self) -> None:
        if self._reasoning is not None:
            self._emit({"type": "REASONING_MESSAGE_END", "messageId": self._reasoning[0]})
            self._reasoning = None

    def _close_parts(self) -> None:
        self._close_text()
        self._close_reasoning_message()
        if self._reasoning_span is not None:
            self._emit({"type": "REASONING_END", "messageId": self._reasoning_span})
            self._reasoning_span = None

    def _custom(self, name: str, value: dict[str, Any], event_id: int | None) -> None:
        self._at(event_id)
        self._emit({"type": "CUSTOM", "name": name, "value": value})

    def _citation(self, payload: dict[str, Any], event_id: int | None) -> None:
        self._custom("citation", payload["annotation"], event_id)

    def _web_search(self, payload: dict[str, Any], event_id: int | None) -> None:
        self._custom("web_search", {"status": payload["type"].rsplit(".", 1)[1]}, event_id)

    def _mcp_call(self, payload: dict[str, Any], event_id: int | None) -> None:
        value = {"status": payload["type"].rsplit(".", 1)[1], "itemId": payload.get("item_id"),
                 "name": payload.get("name"), "serverLabel": payload.get("server_label")}  # fmt: skip
        self._custom("mcp_call", value, event_id)

    def _tool_call_events(self, call_id: str, name: str, arguments: str, event_id: int | None) -> None:
        self._at(event_id)
        self._close_parts()
        self._calls.append(call_id)
        self._emit(
            {"type": "TOOL_CALL_START", "toolCallId": call_id, "toolCallName": name, "parentMessageId": self._round}
        )
        self._emit({"type": "TOOL_CALL_ARGS", "toolCallId": call_id, "delta": arguments})
        self._emit({"type": "TOOL_CALL_END", "toolCallId": call_id})

    def _tool_call(self, payload: dict[str, Any], event_id: int | None) -> None:
        self._tool_call_events(payload["call_id"], payload["name"], payload["arguments"], event_id)

    def _approval_request(self, payload: dict[str, Any], event_id: int | None) -> None:
        approval_id = payload["approval_request_id"]
        self._tool_call_events(approval_id, payload["name"], payload["arguments"], event_id)
        self._interrupts.append({
            "id": approval_id,
            "reason": "tool_approval",
            "toolCallId": approval_id,
            "message": f"Allow {payload['server_label']}'s tool {payload['name']} to run with {payload['arguments']}?",
            "responseSchema": dict(APPROVAL_SCHEMA),
            "metadata": {"serverLabel": payload["server_label"], "name": payload["name"]},
        })  # fmt: skip

    def _tool_result(self, payload: dict[str, Any], event_id: int | None) -> None:
        call_id = payload["call_id"]
        result = {"type": "TOOL_CALL_RESULT", "messageId": f"{call_id}-result", "toolCallId": call_id,
                  "content": payload["output"], "role": "tool"}  # fmt: skip
        if call_id not in self._calls:  # not a call of this round: in order with the rest
            self._emit(result)
            return
        call = 1 << self._calls.index(call_id)
        self._results |= call
        self._emit(result, results=self._results, call=call)

    def _completed(self, payload: dict[str, Any], event_id: int | None) -> None:
        self._at(event_id)
        self._close_parts()
        status = payload["status"]
        result: dict[str, Any] = {"responseId": payload.get("response_id"), "status": status}
        outcome: dict[str, Any] = {"type": "success"}
        if status == "requires_approval":
            outcome = {"type": "interrupt", "interrupts": self._interrupts}
        elif status == "cancelled":
            outcome = {"type": "cancelled"}
        else:
            pending = [call for index, call in enumerate(self._calls) if not self._results >> index & 1]
            if pending:  # the client's tools: the next run carries their results
                outcome["pendingToolCallIds"] = pending
            if status == "incomplete":
                result["incompleteReason"] = payload.get("incomplete_reason")
        finished: dict[str, Any] = {"type": "RUN_FINISHED", **self._run, "outcome": outcome, "result": result}
        usage = _token_usage(payload.get("usage"), self._model)
        if usage is not None:
            finished["usage"] = [usage]
        self._emit(finished)

    def _error(self, payload: dict[str, Any], event_id: int | None) -> None:
        self._at(event_id)
        self._emit({"type": "RUN_ERROR", "message": payload["message"], "code": payload["code"]})


def _token_usage(usage: Any, model: str | None) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    names = {"input_tokens": "inputTokens", "output_tokens": "outputTokens", "total_tokens": "totalTokens"}
    counts = {names[key]: value for key, value in usage.items() if key in names}
    return {"model": model, **counts} if model else counts


_HANDLERS = {
    "response.created": AgUiEncoder._created,
    **dict.fromkeys(_TEXT_KINDS, AgUiEncoder._text_delta),
    "response.reasoning_summary_text.delta": AgUiEncoder._reasoning_delta,
    "response.output_text.annotation.added": AgUiEncoder._citation,
    **dict.fromkeys(WEB_SEARCH_EVENTS, AgUiEncoder._web_search),
    **dict.fromkeys(MCP_CALL_EVENTS, AgUiEncoder._mcp_call),
    TOOL_CALL: AgUiEncoder._tool_call,
    TOOL_RESULT: AgUiEncoder._tool_result,
    APPROVAL_REQUEST: AgUiEncoder._approval_request,
    "response.completed": AgUiEncoder._completed,
    "error": AgUiEncoder._error,
}


@dataclass(frozen=True)
class AgUiRun:
    """A decoded `POST /api/ag-ui`: the thread and run, and what to ask upstream."""

    thread_id: str
    run_id: str
    request: ChatRequest


def check_run_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not RUN_ID.fullmatch(value):
        raise invalid(f"'{where}' must be an id of 1 to 200 characters, without '/' or control characters", where)
    return value


def decode_run(document: Any, settings: Settings, relay_tools: frozenset[str]) -> AgUiRun:
    """A `RunAgentInput` as the relay's chat request. `state`, `context` and `forwardedProps` are
    accepted and ignored; `tools` are offered to the model beside the relay's own (`relay_tools`),
    and the client runs them; `resume` answers the last run's interrupts."""
    if not isinstance(document, dict):
        raise invalid("The body must be a RunAgentInput object", None)
    thread_id = check_run_id(document.get("threadId"), "threadId")
    run_id = check_run_id(document.get("runId"), "runId")
    messages = document.get("messages")
    if not isinstance(messages, list):
        raise invalid("'messages' must be a list of messages", "messages")
    tools = _client_tools(document.get("tools", []), relay_tools)
    approvals = _approvals(document.get("resume"))
    previous, start = None, 0
    # The last answer's message is named after its response, which the run continues where responses
    # are stored, and always when it answers that response's approval requests.
    continues = settings.stores_responses or bool(approvals)
    for index in range(len(messages) - 1, -1, -1):
        message = _message(messages[index], index)
        if continues and message["role"] == "assistant" and _RESPONSE.fullmatch(message["id"]):
            previous, start = message["id"], index + 1
            break
    if approvals and previous is None:
        raise invalid("'resume' answers the interrupts of the last run: its assistant message is missing", "resume")
    items = _items(messages, start, settings)
    if not items and not approvals:
        raise invalid("The run has nothing to answer: add a user message or a tool result", "messages")
    if len(items) > settings.max_messages:
        raise invalid(f"The run sends {len(items)} messages; at most {settings.max_messages} are allowed", "messages")
    request = ChatRequest(items, previous_response_id=previous, approvals=approvals, client_tools=tools)
    return AgUiRun(thread_id, run_id, request)


def _message(message: Any, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        raise invalid(f"'{where}' must be a message with an 'id' and a 'role'", where)
    role = message.get("role")
    if role in ("system", "developer"):
        raise invalid(f"'{where}': {role} messages are not accepted (instructions are set by the server)", where)
    if role not in _ROLES:
        raise invalid(f"'{where}.role' must be user, assistant, tool, activity or reasoning", f"{where}.role")
    return message


def _items(messages: list[Any], start: int, settings: Settings) -> list[dict[str, Any]]:
    """The Responses input of the messages from `start` on: user and assistant text, the function
    calls that have results, and the results (activity and reasoning messages are not input)."""
    answered = {message.get("toolCallId") for message in messages[start:] if message.get("role") == "tool"}
    items: list[dict[str, Any]] = []
    for index in range(start, len(messages)):
        message, where = messages[index], f"messages[{index}]"
        role = message["role"]
        if role == "user":
            items.append({"role": "user", "content": _user_content(message, where, settings)})
        elif role == "assistant":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                items.append({"role": "assistant", "content": check_text(content, where, settings)})
            calls = enumerate(message.get("toolCalls") or [])
            items += [
                _call_item(call, f"{where}.toolCalls[{n}]")
                for n, call in calls
                if isinstance(call, dict) and call.get("id") in answered
            ]
        elif role == "tool":
            items.append(_output_item(message, where))
    return items


def _user_content(message: dict[str, Any], where: str, settings: Settings) -> str | list[dict[str, Any]]:
    """A user message's content: its text, or its text, image and document parts as Responses
    content parts (an attachment's data checked by its bytes)."""
    content = message.get("content")
    if isinstance(content, str):
        return check_text(content, where, settings)
    if not isinstance(content, list):
        raise invalid(f"'{where}.content' must be text or a list of content parts", f"{where}.content")
    parts = [(f"{where}.content[{number}]", _content_part(part, f"{where}.content[{number}]"))
             for number, part in enumerate(content)]  # fmt: skip
    if all(part["type"] == "input_text" for _, part in parts):
        return check_text("\n\n".join(part["text"] for _, part in parts), where, settings)
    return check_content(parts, f"{where}.content", settings)


def _content_part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "input_text", "text": part["text"]}
    if kind not in ("image", "document"):
        raise invalid(f"'{where}' must be a text, image or document part", where)
    source = part.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("value"), str):
        raise invalid(f"'{where}.source' must carry the data", f"{where}.source")
    if source.get("type") == "data":
        url = f"data:{source.get('mimeType') or 'application/octet-stream'};base64,{source['value']}"
    elif source.get("type") == "url":
        url = source["value"]  # a data: URL is taken; any other address is refused, never fetched
    else:
        url = None
    if kind == "image":
        return {"type": "input_image", "image_url": url} if url is not None else {"type": "input_image", "file_id": ""}
    metadata = part.get("metadata")
    filename = metadata.get("filename") if isinstance(metadata, dict) else None
    document = {"type": "input_file", "filename": filename if isinstance(filename, str) else "document.pdf"}
    return {**document, "file_data": url} if url is not None else {**document, "file_id": ""}


def _call_item(call: dict[str, Any], where: str) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise invalid(f"'{where}.function' must have a 'name' and 'arguments'", f"{where}.function")
    arguments = function.get("arguments")
    return {"type": "function_call", "call_id": call["id"], "name": function["name"],
            "arguments": arguments if isinstance(arguments, str) else "{}"}  # fmt: skip


def _output_item(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, content = message.get("toolCallId"), message.get("content")
    if not isinstance(call_id, str) or not call_id:
        raise invalid(f"'{where}.toolCallId' must name the tool call it answers", f"{where}.toolCallId")
    if isinstance(content, list):
        if not all(isinstance(part, dict) and isinstance(part.get("text"), str) for part in content):
            raise invalid(f"'{where}.content': a tool's result goes back as text parts", f"{where}.content")
        content = "\n\n".join(part["text"] for part in content)
    if not isinstance(content, str):
        raise invalid(f"'{where}.content' must be the tool's result as text", f"{where}.content")
    return {"type": "function_call_output", "call_id": call_id, "output": content}


def _client_tools(value: Any, relay_tools: frozenset[str]) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or len(value) > MAX_CLIENT_TOOLS:
        raise invalid(f"'tools' must be a list of at most {MAX_CLIENT_TOOLS} tools", "tools")
    tools = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not TOOL_NAME.fullmatch(tool["name"]):
            raise invalid(f"'{where}.name' must be 1 to 64 letters, digits, '_' or '-'", f"{where}.name")
        if tool["name"] in relay_tools:
            raise invalid(f"'{where}.name': the relay has a tool of that name", f"{where}.name")
        parameters = tool.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or not isinstance(tool.get("description", ""), str):
            raise invalid(f"'{where}' needs a 'description' and a JSON schema as 'parameters'", where)
        tools.append({"type": "function", "name": tool["name"], "description": tool.get("description", ""),
                      "parameters": parameters, "strict": False})  # fmt: skip
    return tuple(tools)


def _approvals(value: Any) -> tuple[Approval, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("'resume' must be a list of {interruptId, status, payload}", "resume")
    approvals = []
    for index, entry in enumerate(value):
        where = f"resume[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("interruptId"), str):
            raise invalid(f"'{where}.interruptId' must name the interrupt it answers", f"{where}.interruptId")
        status, payload = entry.get("status"), entry.get("payload")
        if status == "cancelled":
            approvals.append(Approval(entry["interruptId"], False))
            continue
        approved = payload.get("approved") if isinstance(payload, dict) else None
        if status != "resolved" or not isinstance(approved, bool):
            message = f"'{where}' must be resolved with payload {{approved: true|false}}, or cancelled"
            raise invalid(message, where)
        approvals.append(Approval(entry["interruptId"], approved))
    return tuple(approvals)
