"""Responses API streaming events, shaped as Azure OpenAI and OpenAI send them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson


def sse(payload: dict[str, Any]) -> bytes:
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ResponseEvents:
    """Builds one response's events, numbering them with `sequence_number`."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        self.id = "resp_" + uuid.uuid4().hex
        self.item_id = "msg_" + uuid.uuid4().hex
        self.created_at = int(time.time())
        self.sequence = 0
        self.text: list[str] = []

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return payload

    def response(self, status: str, **fields: Any) -> dict[str, Any]:
        request = self.request
        output = []
        if self.text:
            output.append(self._message("completed" if status == "completed" else "incomplete"))
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "model": request.get("model", "gpt-4o-mini"),
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": request.get("previous_response_id"),
            "temperature": request.get("temperature"),
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": request.get("top_p"),
            "usage": None,
            **fields,
        }

    def _message(self, status: str) -> dict[str, Any]:
        part = {"type": "output_text", "annotations": [], "text": "".join(self.text)}
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}

    def usage(self) -> dict[str, Any]:
        input_tokens = max(1, len(orjson.dumps(self.request.get("input"))) // 3)
        output_tokens = len(self.text)
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }

    def opening(self) -> list[dict[str, Any]]:
        in_progress = {
            "id": self.item_id,
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        return [
            self._event("response.created", response=self.response("in_progress")),
            self._event("response.in_progress", response=self.response("in_progress")),
            self._event("response.output_item.added", output_index=0, item=in_progress),
            self._event(
                "response.content_part.added",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                part={"type": "output_text", "annotations": [], "text": ""},
            ),
        ]

    def delta(self, text: str) -> dict[str, Any]:
        self.text.append(text)
        return self._event(
            "response.output_text.delta", item_id=self.item_id, output_index=0, content_index=0, delta=text, logprobs=[]
        )

    def completion(self) -> list[dict[str, Any]]:
        text = "".join(self.text)
        part = {"type": "output_text", "annotations": [], "text": text}
        return [
            self._event(
                "response.output_text.done",
                item_id=self.item_id,
                output_index=0,
                content_index=0,
                text=text,
                logprobs=[],
            ),
            self._event("response.content_part.done", item_id=self.item_id, output_index=0, content_index=0, part=part),
            self._event("response.output_item.done", output_index=0, item=self._message("completed")),
            self._event("response.completed", response=self.response("completed", usage=self.usage())),
        ]

    def unknown(self) -> dict[str, Any]:
        """An event type a newer API version might send; relays must ignore it."""
        return self._event("response.future_feature.delta", item_id=self.item_id, delta="not text")

    def incomplete(self, reason: str) -> dict[str, Any]:
        response = self.response("incomplete", incomplete_details={"reason": reason}, usage=self.usage())
        return self._event("response.incomplete", response=response)

    def failed(self) -> dict[str, Any]:
        error = {"code": "server_error", "message": "The model failed to generate a response."}
        return self._event("response.failed", response=self.response("failed", error=error, usage=self.usage()))

    def error(self, nested: bool) -> dict[str, Any]:
        message = "The server had an error while processing your request."
        if nested:
            return self._event("error", error={"type": "server_error", "code": "server_error", "message": message})
        return self._event("error", code="server_error", message=message, param=None)


def error_body(code: str, message: str) -> bytes:
    """An HTTP error body as Azure OpenAI sends it."""
    return orjson.dumps({"error": {"code": code, "message": message, "param": None, "type": None}})
