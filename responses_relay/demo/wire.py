"""Responses API streaming events, shaped as Azure OpenAI and OpenAI send them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import orjson


def sse(payload: dict[str, Any]) -> bytes:
    kind: str = payload["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class ResponseEvents:
    """Builds one response's events, numbering them with `sequence_number`.

    The output items come in the API's order: a reasoning item, a web search call, function
    calls, MCP approval requests or calls, then the message (`message`, then its deltas, then
    `completion`); a response that calls functions or asks for an approval has no message.
    """

    def __init__(self, request: dict[str, Any]) -> None:
        self.request = request
        self.id = "resp_" + uuid.uuid4().hex
        self.item_id = "msg_" + uuid.uuid4().hex
        self.created_at = int(time.time())
        self.sequence = 0
        self.output: list[dict[str, Any]] = []  # the finished output items
        self.message_index = 0
        self.text: list[str] = []
        self.refusal: list[str] | None = None  # the message is a refusal
        self.annotations: list[dict[str, Any]] = []
        self.reasoning_tokens = 0
        self.tool_tokens = 0  # the pieces of function call arguments
        self.has_message = False
        self._due: list[dict[str, Any]] = []  # annotations waiting for their text
        self._length = 0  # characters of text so far

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return payload

    def response(self, status: str, **fields: Any) -> dict[str, Any]:
        request = self.request
        conversation = conversation_of(request)
        output = list(self.output)
        if (self.text or self.refusal) and len(output) == self.message_index:
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
            "metadata": request.get("metadata") or {},
            "model": request.get("model", "gpt-4o-mini"),
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": request.get("previous_response_id"),
            "conversation": None if conversation is None else {"id": conversation},
            "reasoning": request.get("reasoning"),
            "temperature": request.get("temperature"),
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": request.get("tools") or [],
            "top_p": request.get("top_p"),
            "usage": None,
            **fields,
        }

    def _part(self) -> dict[str, Any]:
        if self.refusal is not None:
            return {"type": "refusal", "refusal": "".join(self.refusal)}
        return {"type": "output_text", "annotations": list(self.annotations), "text": "".join(self.text)}

    def _message(self, status: str) -> dict[str, Any]:
        return {"id": self.item_id, "type": "message", "status": status, "role": "assistant", "content": [self._part()]}

    def usage(self) -> dict[str, Any]:
        input_tokens = max(1, len(orjson.dumps(self.request.get("input"))) // 3)
        output_tokens = len(self.text) + len(self.refusal or ()) + self.reasoning_tokens + self.tool_tokens
        return {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": input_tokens + output_tokens,
        }

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.response("in_progress")),
            self._event("response.in_progress", response=self.response("in_progress")),
        ]

    def opening(self) -> list[dict[str, Any]]:
        """The start of a response whose only output is a text message."""
        return [*self.start(), *self.message()]

    def reasoning(self, parts: Sequence[Sequence[str]]) -> Iterator[dict[str, Any]]:
        """A reasoning item whose summary streams part by part (each part given as its deltas)."""
        item_id, index = "rs_" + uuid.uuid4().hex, len(self.output)
        yield self._event("response.output_item.added", output_index=index, item=_reasoning(item_id, []))
        summary = []
        for summary_index, deltas in enumerate(parts):
            where = {"item_id": item_id, "output_index": index, "summary_index": summary_index}
            yield self._event("response.reasoning_summary_part.added", **where, part=_summary(""))
            for delta in deltas:
                self.reasoning_tokens += 1
                yield self._event("response.reasoning_summary_text.delta", **where, delta=delta)
            summary.append(_summary("".join(deltas)))
            yield self._event("response.reasoning_summary_text.done", **where, text=summary[-1]["text"])
            yield self._event("response.reasoning_summary_part.done", **where, part=summary[-1])
        self.output.append(_reasoning(item_id, summary))
        yield self._event("response.output_item.done", output_index=index, item=self.output[-1])

    def web_search(self, query: str, sources: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        """A web search call: in progress, searching, completed."""
        item_id, index = "ws_" + uuid.uuid4().hex, len(self.output)
        action = {"type": "search", "query": query}
        item = {"id": item_id, "type": "web_search_call", "status": "in_progress", "action": action}
        yield self._event("response.output_item.added", output_index=index, item=item)
        for stage in ("in_progress", "searching", "completed"):
            yield self._event(f"response.web_search_call.{stage}", item_id=item_id, output_index=index)
        found = {**action, "sources": [{"type": "url", "url": url} for url in sources]}
        self.output.append({**item, "status": "completed", "action": found})
        yield self._event("response.output_item.done", output_index=index, item=self.output[-1])

    def function_call(self, call_id: str, name: str, arguments: Sequence[str]) -> Iterator[dict[str, Any]]:
        """A function call whose arguments stream in pieces."""
        item_id, index = "fc_" + uuid.uuid4().hex, len(self.output)
        where = {"item_id": item_id, "output_index": index}
        item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": name, "arguments": ""}
        yield self._event("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
        for piece in arguments:
            self.tool_tokens += 1
            yield self._event("response.function_call_arguments.delta", **where, delta=piece)
        whole = "".join(arguments)
        yield self._event("response.function_call_arguments.done", **where, name=name, arguments=whole)
        self.output.append({**item, "arguments": whole, "status": "completed"})
        yield self._event("response.output_item.done", output_index=index, item=self.output[-1])

    def approval_request(self, item_id: str, server_label: str, name: str, arguments: str) -> Iterator[dict[str, Any]]:
        """An MCP call the model wants to make, waiting for the caller's approval."""
        index = len(self.output)
        item = {"id": item_id, "type": "mcp_approval_request", "server_label": server_label, "name": name}
        self.output.append({**item, "arguments": arguments})
        yield self._event("response.output_item.added", output_index=index, item=self.output[-1])
        yield self._event("response.output_item.done", output_index=index, item=self.output[-1])

    def mcp_call(
        self, item_id: str, server_label: str, name: str, arguments: str, output: str
    ) -> Iterator[dict[str, Any]]:
        """An MCP call the model service makes: in progress, then completed with its output."""
        index = len(self.output)
        where = {"item_id": item_id, "output_index": index}
        item = {"id": item_id, "type": "mcp_call", "server_label": server_label, "name": name, "arguments": arguments}
        yield self._event("response.output_item.added", output_index=index, item={**item, "status": "in_progress"})
        yield self._event("response.mcp_call_arguments.done", **where, arguments=arguments)
        yield self._event("response.mcp_call.in_progress", **where)
        yield self._event("response.mcp_call.completed", **where)
        self.output.append({**item, "output": output, "error": None, "status": "completed"})
        yield self._event("response.output_item.done", output_index=index, item=self.output[-1])

    def message(self, *, refusal: bool = False, annotations: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        """The message item and its content part; `annotations` are sent once their text is out."""
        self.has_message = True
        self.message_index = len(self.output)
        self.refusal = [] if refusal else None
        self._due = sorted(annotations, key=lambda annotation: annotation["end_index"])
        item = {"id": self.item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        return [
            self._event("response.output_item.added", output_index=self.message_index, item=item),
            self._event("response.content_part.added", **self._where(), part=self._part()),
        ]

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": self.message_index, "content_index": 0}

    def delta(self, text: str) -> dict[str, Any]:
        self.text.append(text)
        return self._event("response.output_text.delta", **self._where(), delta=text, logprobs=[])

    def content(self, text: str) -> list[dict[str, Any]]:
        """The message's next piece: a refusal delta, or a text delta and the citations it completes."""
        if self.refusal is not None:
            self.refusal.append(text)
            return [self._event("response.refusal.delta", **self._where(), delta=text)]
        events = [self.delta(text)]
        self._length += len(text)
        while self._due and self._due[0]["end_index"] <= self._length:
            self.annotations.append(self._due.pop(0))
            events.append(
                self._event(
                    "response.output_text.annotation.added",
                    **self._where(),
                    annotation_index=len(self.annotations) - 1,
                    annotation=self.annotations[-1],
                )
            )
        return events

    def completion(self) -> list[dict[str, Any]]:
        if not self.has_message:
            return [self._event("response.completed", response=self.response("completed", usage=self.usage()))]
        part = self._part()
        if part["type"] == "refusal":
            done = self._event("response.refusal.done", **self._where(), refusal=part["refusal"])
        else:
            done = self._event("response.output_text.done", **self._where(), text=part["text"], logprobs=[])
        self.output.append(self._message("completed"))
        return [
            done,
            self._event("response.content_part.done", **self._where(), part=part),
            self._event("response.output_item.done", output_index=self.message_index, item=self.output[-1]),
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


def _reasoning(item_id: str, summary: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": summary}


def _summary(text: str) -> dict[str, Any]:
    return {"type": "summary_text", "text": text}


def conversation_of(request: dict[str, Any]) -> str | None:
    """The id in a request's `conversation` (`"conv_..."` or `{"id": "conv_..."}`)."""
    value = request.get("conversation")
    value = value.get("id") if isinstance(value, dict) else value
    return value if isinstance(value, str) else None


def error_body(code: str, message: str) -> bytes:
    """An HTTP error body as Azure OpenAI sends it."""
    return orjson.dumps({"error": {"code": code, "message": message, "param": None, "type": None}})
