"""Translation of upstream Responses API events into the relay's events.

Pure and incremental: `feed` the upstream events of one network read (parsed by
`parse_event`) and the relay's own tool results, then `take` the relay events to send, which
an encoder of `protocols/` turns into a protocol's bytes. Consecutive deltas of one kind (and
one part) within a read become one event whose id is the sequence number of the last upstream
event it carries; deltas of different kinds never merge, and the upstream's order is kept. A
function call becomes `tool.call` once its arguments are complete, an MCP approval request
`approval.request` (and the response then ends with status `requires_approval`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

from .errors import RESPONSE_FAILED, UPSTREAM_ERROR, ErrorCode
from .sse import Event
from .tools import ToolResult

TEXT_DELTA = "response.output_text.delta"
STREAM_RESUME = "stream.resume"
ANNOTATION_ADDED = "response.output_text.annotation.added"
WEB_SEARCH_EVENTS = frozenset(
    {"response.web_search_call.in_progress", "response.web_search_call.searching", "response.web_search_call.completed"}
)
MCP_CALL_EVENTS = ("response.mcp_call.in_progress", "response.mcp_call.completed", "response.mcp_call.failed")
# The relay's own event types: a call whose arguments are complete, what it gave, and an MCP
# call the model service waits to have approved.
TOOL_CALL = "tool.call"
TOOL_RESULT = "tool.result"
APPROVAL_REQUEST = "approval.request"
# The delta kinds relayed, each with the fields that name the part a delta belongs to:
# a reasoning summary comes in parts (paragraphs), and deltas of two parts never merge.
DELTA_PARTS: dict[str, tuple[str, ...]] = {
    TEXT_DELTA: (),
    "response.refusal.delta": (),
    "response.reasoning_summary_text.delta": ("output_index", "summary_index"),
}
# Bounds on a relayed url citation. A longer URL is dropped, never cut (a cut URL is
# another URL); a longer title is cut.
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 300

# The upstream events that end a response's stream.
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
_FINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})
_CODE_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_NO_PART: dict[str, int] = {}


# One event of the relay's own stream, as the native format has it: (type, payload, id). The
# payload is its JSON object, whose `type` is the same; the id is the sequence number of the last
# upstream event it carries, None for an event the relay makes itself. A plain tuple: one is made
# per network read, and a NamedTuple's constructor costs several times as much.
RelayEvent = tuple[str, dict[str, Any], int | None]


class UpstreamProtocolError(Exception):
    """The upstream sent something that is not a Responses API event."""


def parse_event(event: Event) -> dict[str, Any] | None:
    """An upstream SSE event's JSON object, its `type` defaulting to the SSE event name;
    None for the `[DONE]` sentinel."""
    if event.data == b"[DONE]":
        return None
    try:
        payload = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("an upstream event's data is not JSON") from None
    if not isinstance(payload, dict):
        raise UpstreamProtocolError("an upstream event's data is not a JSON object")
    if not payload.get("type") and event.event:
        payload["type"] = event.event
    return payload


class Translator:
    def __init__(self, redact: Callable[[str], str] = str, *, response_id: str | None = None) -> None:
        self._redact = redact
        self._events: list[RelayEvent] = []
        self._pending: list[str] = []  # deltas not sent yet, all of one kind and part
        self._pending_kind = TEXT_DELTA
        self._pending_part = _NO_PART
        self._pending_id: int | None = None
        self.response_id = response_id
        self.model: str | None = None
        self.outcome: str | None = None  # completed, incomplete:<reason>, or an error code
        self.usage: dict[str, int] | None = None
        self.deltas = 0  # upstream deltas relayed, of every kind
        self._mcp_calls: dict[str, dict[str, str | None]] = {}  # this response's MCP calls by item id: name, label
        self._approval_asked = False  # this response asked for an approval

    @property
    def finished(self) -> bool:
        """True once the terminal event is out: nothing after it is relayed."""
        return self.outcome is not None

    def feed(self, payload: dict[str, Any] | ToolResult) -> None:
        if self.finished:
            return
        if isinstance(payload, ToolResult):
            self._flush_deltas()
            result = {"type": TOOL_RESULT, "call_id": payload.call_id, "name": payload.name, "output": payload.output}
            self._emit(TOOL_RESULT, result, None)  # the relay's own: no id
            return
        kind = payload.get("type")
        if not isinstance(kind, str):
            return
        sequence = payload.get("sequence_number")
        event_id = sequence if type(sequence) is int else None
        part_fields = DELTA_PARTS.get(kind)
        if part_fields is not None:
            self._delta(kind, payload, part_fields, event_id)
            return
        handler = _HANDLERS.get(kind)
        if handler is not None:
            self._flush_deltas()
            handler(self, payload, event_id)
        elif kind in WEB_SEARCH_EVENTS:  # progress only: the type says it all
            self._flush_deltas()
            self._emit(kind, {"type": kind}, event_id)

    def fail(self, error: ErrorCode, message: str) -> None:
        """End the stream with an `error` the relay makes itself (so it has no id)."""
        if not self.finished:
            self._flush_deltas()
            self._error(error.code, message, None)

    def finish_with(self, response: dict[str, Any]) -> None:
        """End the stream from a retrieved response object, when its status is terminal (the
        upstream's stream ended without saying so, as it may after a cancel)."""
        status = response.get("status")
        if self.finished or status not in _FINAL_STATUSES:
            return
        self._flush_deltas()
        wrapped = {"response": response}
        if status == "failed":
            self._failed(wrapped, None)
        elif status == "incomplete":
            self._incomplete(wrapped, None)
        else:
            self._end(wrapped, None, str(status), None)

    def hand_off(self, after: int | None) -> None:
        """End this stream short of the response's end: `stream.resume` tells the caller where to
        continue it (`GET /api/chat/{response_id}?after=N`). Not a terminal event: the response goes on."""
        if not self.finished:
            self._flush_deltas()
            self.outcome = "handed_off"
            body = {"type": STREAM_RESUME, "response_id": self.response_id, "after": after}
            self._emit(STREAM_RESUME, body, None)

    def cancel(self) -> None:
        """End the stream as cancelled, as the relay decided (so the event has no id)."""
        if not self.finished:
            self._flush_deltas()
            self._end({}, None, "cancelled", None)

    def take(self) -> list[RelayEvent]:
        """The events made since the last `take`, pending deltas included."""
        self._flush_deltas()
        events = self._events
        self._events = []
        return events

    def _delta(self, kind: str, payload: dict[str, Any], part_fields: tuple[str, ...], event_id: int | None) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, str) or not delta:
            return
        part = _part(payload, part_fields) if part_fields else _NO_PART
        if kind != self._pending_kind or part != self._pending_part:
            self._flush_deltas()
            self._pending_kind = kind
            self._pending_part = part
        self._pending.append(delta)
        self._pending_id = event_id
        self.deltas += 1

    def _flush_deltas(self) -> None:
        if self._pending:
            delta = self._pending[0] if len(self._pending) == 1 else "".join(self._pending)
            kind = self._pending_kind
            self._emit(kind, {"type": kind, "delta": delta, **self._pending_part}, self._pending_id)
            self._pending.clear()

    def _emit(self, kind: str, payload: dict[str, Any], event_id: int | None) -> None:
        self._events.append((kind, payload, event_id))

    def _error(self, code: str, message: str, event_id: int | None) -> None:
        code = _CODE_UNSAFE.sub("_", code)[:64]
        self.outcome = code
        self._emit("error", {"type": "error", "code": code, "message": self._redact(message)}, event_id)

    def _annotation(self, payload: dict[str, Any], event_id: int | None) -> None:
        # Only url citations are relayed; other kinds (file citations) and citations that
        # fail the checks are dropped, so nothing that is not a web link reaches the page.
        annotation = url_citation(payload.get("annotation"))
        if annotation is not None:
            self._emit(ANNOTATION_ADDED, {"type": ANNOTATION_ADDED, "annotation": annotation}, event_id)

    def _item_added(self, payload: dict[str, Any], event_id: int | None) -> None:
        item = _object(payload.get("item"))
        item_id = _text(item.get("id"))
        if item.get("type") == "mcp_call" and item_id is not None:
            self._mcp_calls[item_id] = {
                "name": _text(item.get("name")),
                "server_label": _text(item.get("server_label")),
            }

    def _item_done(self, payload: dict[str, Any], event_id: int | None) -> None:
        """A function call whose arguments are complete, or an MCP call that needs an approval."""
        item = _object(payload.get("item"))
        kind = item.get("type")
        if kind == "function_call":
            call = {"type": TOOL_CALL, **_strings(item, ("call_id", "name", "arguments"))}
            if len(call) == 4:
                self._emit(TOOL_CALL, call, event_id)
        elif kind == "mcp_approval_request":
            fields = _strings(item, ("id", "server_label", "name", "arguments"))
            if len(fields) == 4:
                self._approval_asked = True
                request = {"type": APPROVAL_REQUEST, "approval_request_id": fields.pop("id"), **fields}
                self._emit(APPROVAL_REQUEST, request, event_id)

    def _mcp_progress(self, payload: dict[str, Any], event_id: int | None) -> None:
        kind = str(payload["type"])
        item_id = _text(payload.get("item_id"))
        call = self._mcp_calls.get(item_id or "", {"name": None, "server_label": None})
        self._emit(kind, {"type": kind, "item_id": item_id, **call}, event_id)

    def _created(self, payload: dict[str, Any], event_id: int | None) -> None:
        self._mcp_calls.clear()  # a new round: a new response's items
        self._approval_asked = False
        response = _object(payload.get("response"))
        self.response_id = _text(response.get("id"))
        self.model = _text(response.get("model"))
        body = {"type": "response.created", "response_id": self.response_id, "model": self.model}
        self._emit("response.created", body, event_id)

    def _completed(self, payload: dict[str, Any], event_id: int | None) -> None:
        # A response that asks for an approval waits for the caller: the stream ends, and says why.
        output = _object(payload.get("response")).get("output")
        items = output if isinstance(output, list) else []
        asks = self._approval_asked or any(_object(item).get("type") == "mcp_approval_request" for item in items)
        self._end(payload, event_id, "requires_approval" if asks else "completed", None)

    def _incomplete(self, payload: dict[str, Any], event_id: int | None) -> None:
        details = _object(_object(payload.get("response")).get("incomplete_details"))
        self._end(payload, event_id, "incomplete", _text(details.get("reason")) or "unknown")

    def _end(self, payload: dict[str, Any], event_id: int | None, status: str, reason: str | None) -> None:
        response = _object(payload.get("response"))
        self.response_id = _text(response.get("id")) or self.response_id
        self.usage = _usage(response.get("usage"))
        self.outcome = status if reason is None else f"{status}:{reason}"
        body: dict[str, Any] = {"type": "response.completed", "response_id": self.response_id, "status": status}
        if reason is not None:
            body["incomplete_reason"] = reason
        body["usage"] = self.usage
        self._emit("response.completed", body, event_id)

    def _failed(self, payload: dict[str, Any], event_id: int | None) -> None:
        error = _object(_object(payload.get("response")).get("error"))
        code = _text(error.get("code")) or RESPONSE_FAILED.code
        self._error(code, _text(error.get("message")) or "The model failed to produce a response", event_id)

    def _upstream_error(self, payload: dict[str, Any], event_id: int | None) -> None:
        # Two shapes exist: {"code", "message"} and {"error": {"code", "message"}}.
        error = _object(payload.get("error")) or payload
        code = _text(error.get("code")) or _text(error.get("type")) or UPSTREAM_ERROR.code
        if code == "error":
            code = UPSTREAM_ERROR.code
        self._error(code, _text(error.get("message")) or "The upstream reported an error", event_id)


_HANDLERS: dict[str, Callable[[Translator, dict[str, Any], int | None], None]] = {
    "response.created": Translator._created,
    "response.output_item.added": Translator._item_added,
    "response.output_item.done": Translator._item_done,
    **dict.fromkeys(MCP_CALL_EVENTS, Translator._mcp_progress),
    ANNOTATION_ADDED: Translator._annotation,
    "response.completed": Translator._completed,
    "response.incomplete": Translator._incomplete,
    "response.failed": Translator._failed,
    "error": Translator._upstream_error,
}


def _part(payload: dict[str, Any], fields: tuple[str, ...]) -> dict[str, int]:
    return {name: payload[name] for name in fields if type(payload.get(name)) is int}


def url_citation(value: Any) -> dict[str, Any] | None:
    """The url citation's relayed fields, or None when it is not a bounded http(s) citation."""
    annotation = _object(value)
    url, start, end = annotation.get("url"), annotation.get("start_index"), annotation.get("end_index")
    if annotation.get("type") != "url_citation" or not _is_web_url(url):
        return None
    if type(start) is not int or type(end) is not int or not 0 <= start <= end:
        return None
    title = annotation.get("title")
    title = title[:MAX_TITLE_CHARS] if isinstance(title, str) else ""
    return {"type": "url_citation", "url": url, "title": title, "start_index": start, "end_index": end}


def _is_web_url(value: Any) -> bool:
    """An absolute http(s) URL with a host, without spaces or control characters, within the bound."""
    if not isinstance(value, str) or len(value) > MAX_URL_CHARS or " " in value or not value.isprintable():
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed host, such as an unclosed IPv6 bracket
        return False


def _strings(item: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The fields among `names` that are strings."""
    return {name: item[name] for name in names if isinstance(item.get(name), str)}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _usage(value: Any) -> dict[str, int] | None:
    usage = _object(value)
    keys = ("input_tokens", "output_tokens", "total_tokens")
    picked = {key: usage[key] for key in keys if type(usage.get(key)) is int}
    return picked or None
