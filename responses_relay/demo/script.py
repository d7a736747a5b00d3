"""One demo response as a script: its events in the API's order, each with the pause the
model would take before it (in deltas' worth of time)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .answers import Answer, answer_for, reasoning_for, split_deltas
from .attachments import attachment_answer
from .tool_turns import tool_answer
from .wire import ResponseEvents

SEARCH_PAUSE = 20  # a web search (or a remote MCP call) takes as long as this many deltas
ARGUMENT_CHARS = 8  # function call arguments stream in pieces of this many characters
TEXT_DELTA = "response.output_text.delta"


@dataclass(frozen=True)
class Step:
    pause: int  # deltas' worth of time before the event
    payload: dict[str, Any]


class Script:
    """The events of one answer to `request`: `body()` (`head()`, then `content()` for each of
    `deltas()`), then `ending()`. Each event is built when its step is reached."""

    def __init__(self, request: dict[str, Any], answer: Answer | None = None, chunk_chars: int | None = None) -> None:
        self.events = ResponseEvents(request)
        question = last_user_text(request)
        self.answer = answer or tool_answer(request, question) or attachment_answer(request) or answer_for(question)
        self._reasoning = self.answer.reasoning or (reasoning_for(question) if _asks_for_summary(request) else ())
        self._chunk_chars = chunk_chars
        limit = request.get("max_output_tokens")
        self._max_output_tokens = limit if type(limit) is int and limit > 0 else None
        self._cut_short = False  # the message did not fit in max_output_tokens

    def deltas(self) -> list[str]:
        """The message's deltas (each an output token), within `max_output_tokens` with what came before."""
        deltas = split_deltas(self.answer.text, self._chunk_chars)
        if self._max_output_tokens is not None:
            fit = max(0, self._max_output_tokens - self.events.reasoning_tokens - self.events.tool_tokens)
            self._cut_short = len(deltas) > fit
            deltas = deltas[:fit]
        return deltas

    def body(self) -> Iterator[Step]:
        yield from self.head()
        for delta in self.deltas():
            yield from self.content(delta)

    def head(self) -> Iterator[Step]:
        """What comes before the message's deltas: the response's start, a reasoning summary, a
        web search, function calls, MCP approval requests or calls, the message item."""
        events, answer = self.events, self.answer
        yield from (Step(0, payload) for payload in events.start())
        if self._reasoning:
            parts = [split_deltas(part, self._chunk_chars) for part in self._reasoning]
            for payload in events.reasoning(parts):
                yield Step(1 if payload["type"].endswith(".delta") else 0, payload)
        if answer.search is not None:
            for payload in events.web_search(answer.search, [citation.url for citation in answer.citations]):
                yield Step(SEARCH_PAUSE if payload["type"] == "response.web_search_call.completed" else 0, payload)
        for call in answer.calls:
            for payload in events.function_call(call.call_id, call.name, split_deltas(call.arguments, ARGUMENT_CHARS)):
                yield Step(1 if payload["type"].endswith(".delta") else 0, payload)
        for ask in answer.approvals:
            payloads = events.approval_request(ask.item_id, ask.server_label, ask.name, ask.arguments)
            yield from (Step(0, payload) for payload in payloads)
        for made in answer.remote_calls:
            for payload in events.mcp_call(made.item_id, made.server_label, made.name, made.arguments, made.output):
                yield Step(SEARCH_PAUSE if payload["type"] == "response.mcp_call.completed" else 0, payload)
        if answer.text:
            for payload in events.message(refusal=answer.refusal, annotations=answer.annotations()):
                yield Step(0, payload)

    def content(self, delta: str) -> Iterator[Step]:
        """One delta of the message, and the citations it completes."""
        for index, payload in enumerate(self.events.content(delta)):
            yield Step(1 if index == 0 else 0, payload)

    def ending(self) -> list[dict[str, Any]]:
        if self._cut_short:
            return [self.events.incomplete("max_output_tokens")]
        return self.events.completion()


def last_user_text(request: dict[str, Any]) -> str:
    value = request.get("input")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for message in reversed(value):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text_of(message.get("content"))
    return ""


def _text_of(content: Any) -> str:
    """A message's text: its content string, or its text parts."""
    if isinstance(content, list):
        texts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "input_text"]
        return " ".join(text for text in texts if isinstance(text, str))
    return content if isinstance(content, str) else ""


def _asks_for_summary(request: dict[str, Any]) -> bool:
    reasoning = request.get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("summary") in ("auto", "concise", "detailed")
