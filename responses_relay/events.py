"""Translation of upstream Responses API events into the relay's SSE events.

Pure and incremental: `feed` the upstream events of one network read, then `take`
the bytes to send. Consecutive text deltas of a read become one SSE event whose
`id:` is the sequence number of the last upstream event it carries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from .sse import Event, encode_event

DELTA = "response.output_text.delta"
_CODE_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class UpstreamProtocolError(Exception):
    """The upstream sent something that is not a Responses API event."""


class Translator:
    def __init__(self, redact: Callable[[str], str] = str) -> None:
        self._redact = redact
        self._frames: list[bytes] = []
        self._text: list[str] = []
        self._text_id: int | None = None
        self.response_id: str | None = None
        self.model: str | None = None
        self.outcome: str | None = None  # completed, incomplete:<reason>, or an error code
        self.usage: dict[str, int] | None = None
        self.deltas = 0

    @property
    def finished(self) -> bool:
        """True once the terminal event is out: nothing after it is relayed."""
        return self.outcome is not None

    def feed(self, event: Event) -> None:
        if self.finished:
            return
        if event.data == b"[DONE]":
            return
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError("an upstream event's data is not JSON") from None
        if not isinstance(payload, dict):
            raise UpstreamProtocolError("an upstream event's data is not a JSON object")
        kind = payload.get("type") or event.event
        sequence = payload.get("sequence_number")
        event_id = sequence if type(sequence) is int else None
        if kind == DELTA:
            delta = payload.get("delta")
            if isinstance(delta, str) and delta:
                self._text.append(delta)
                self._text_id = event_id
                self.deltas += 1
            return
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            self._flush_text()
            handler(self, payload, event_id)

    def fail(self, code: str, message: str) -> None:
        """End the stream with an `error` the relay makes itself (so it has no id)."""
        if not self.finished:
            self._flush_text()
            self._error(code, message, None)

    def take(self) -> bytes:
        self._flush_text()
        frames = b"".join(self._frames)
        self._frames.clear()
        return frames

    def _flush_text(self) -> None:
        if self._text:
            delta = self._text[0] if len(self._text) == 1 else "".join(self._text)
            self._emit(DELTA, {"type": DELTA, "delta": delta}, self._text_id)
            self._text.clear()

    def _emit(self, kind: str, payload: dict[str, Any], event_id: int | None) -> None:
        self._frames.append(encode_event(kind, orjson.dumps(payload), event_id))

    def _error(self, code: str, message: str, event_id: int | None) -> None:
        code = _CODE_UNSAFE.sub("_", code)[:64]
        self.outcome = code
        self._emit("error", {"type": "error", "code": code, "message": self._redact(message)}, event_id)

    def _created(self, payload: dict[str, Any], event_id: int | None) -> None:
        response = _object(payload.get("response"))
        self.response_id = _text(response.get("id"))
        self.model = _text(response.get("model"))
        body = {"type": "response.created", "response_id": self.response_id, "model": self.model}
        self._emit("response.created", body, event_id)

    def _completed(self, payload: dict[str, Any], event_id: int | None) -> None:
        self._end(payload, event_id, "completed", None)

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
        code = _text(error.get("code")) or "response_failed"
        self._error(code, _text(error.get("message")) or "The model failed to produce a response", event_id)

    def _upstream_error(self, payload: dict[str, Any], event_id: int | None) -> None:
        # Two shapes exist: {"code", "message"} and {"error": {"code", "message"}}.
        error = _object(payload.get("error")) or payload
        code = _text(error.get("code")) or _text(error.get("type")) or "upstream_error"
        if code == "error":
            code = "upstream_error"
        self._error(code, _text(error.get("message")) or "The upstream reported an error", event_id)


_HANDLERS: dict[str, Callable[[Translator, dict[str, Any], int | None], None]] = {
    "response.created": Translator._created,
    "response.completed": Translator._completed,
    "response.incomplete": Translator._incomplete,
    "response.failed": Translator._failed,
    "error": Translator._upstream_error,
}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _usage(value: Any) -> dict[str, int] | None:
    usage = _object(value)
    keys = ("input_tokens", "output_tokens", "total_tokens")
    picked = {key: usage[key] for key in keys if type(usage.get(key)) is int}
    return picked or None
