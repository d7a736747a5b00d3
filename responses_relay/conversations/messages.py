"""A conversation's items as the messages the page draws, each as its stream showed it.

A user message is its text and its attachments (an image as its `data:` URL, a PDF by its
file name). An assistant message is one answer as one stream brought it, from
the question (or the approvals) that started it to the next: the text of its messages, their
url citations (checked as the stream checks them), a refusal, a reasoning summary in parts,
and its calls in order (function calls with their outputs, MCP calls, approval requests with
the decision the next request gave). Its `response_id` is the last response whose items it
holds: each response's items start at its first output item (`first_outputs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..events import url_citation


class _Answer:
    def __init__(self) -> None:
        self.response_id: str | None = None
        self.text: list[str] = []
        self.refusal: list[str] = []
        self.citations: list[dict[str, Any]] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def add(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Take an output item; a call whose outcome a later item gives (a function call's output,
        an approval's decision) is returned, to be found by its id."""
        kind = item.get("type")
        if kind == "message":
            for part in _list(item.get("content")):
                self._part(part)
        elif kind == "reasoning":
            self.reasoning += [text for part in _list(item.get("summary")) if (text := _text(part.get("text")))]
        elif kind == "function_call":
            return self._call({"type": "function_call", **_strings(item, ("call_id", "name", "arguments")),
                               "output": None})  # fmt: skip
        elif kind == "mcp_call":
            fields = _strings(item, ("name", "server_label"))
            status = "failed" if item.get("error") else "completed"
            self._call({"type": "mcp_call", "item_id": _text(item.get("id")), **fields, "status": status})
        elif kind == "mcp_approval_request":
            fields = _strings(item, ("server_label", "name", "arguments"))
            return self._call({"type": "approval_request", "approval_request_id": _text(item.get("id")), **fields,
                               "approve": None})  # fmt: skip
        return None

    def _call(self, call: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(call)
        return call

    def _part(self, part: dict[str, Any]) -> None:
        if part.get("type") == "refusal":
            self.refusal.append(_text(part.get("refusal")) or "")
        elif part.get("type") == "output_text":
            self.text.append(_text(part.get("text")) or "")
            self.citations += [found for given in _list(part.get("annotations")) if (found := url_citation(given))]

    def message(self) -> dict[str, Any] | None:
        if not (self.text or self.refusal or self.reasoning or self.calls):
            return None
        message: dict[str, Any] = {"role": "assistant", "response_id": self.response_id, "text": "".join(self.text)}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        message |= {"citations": self.citations, "reasoning": self.reasoning, "calls": self.calls}
        return message


def messages(items: list[dict[str, Any]], first_outputs: Mapping[str, str]) -> list[dict[str, Any]]:
    """The messages of `items` (oldest first); `first_outputs`: response ids by their first output item's id."""
    drawn: list[dict[str, Any]] = []
    answer = _Answer()
    response_id: str | None = None
    awaiting: dict[str, dict[str, Any]] = {}  # function calls by call id, approval requests by id

    def close_answer() -> None:
        nonlocal answer
        message = answer.message()
        if message is not None:
            drawn.append(message)
        answer = _Answer()

    for item in items:
        response_id = first_outputs.get(str(item.get("id")), response_id)
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            close_answer()
            drawn.append(_user(item.get("content")))
        elif kind == "function_call_output" and item.get("call_id") in awaiting:
            awaiting[item["call_id"]]["output"] = _text(item.get("output"))
        elif kind == "mcp_approval_response":
            if item.get("approval_request_id") in awaiting and isinstance(item.get("approve"), bool):
                awaiting[item["approval_request_id"]]["approve"] = item["approve"]
            close_answer()  # the answer after approvals is a stream, and a message, of its own
        elif kind not in ("function_call_output", "message") or item.get("role") == "assistant":
            call = answer.add(item)
            answer.response_id = response_id
            if call is not None:
                awaiting[call.get("call_id") or call.get("approval_request_id") or ""] = call
    close_answer()
    return drawn


def _user(content: Any) -> dict[str, Any]:
    """A user message: its text, and its photos and PDFs."""
    if isinstance(content, str):
        return {"role": "user", "text": content, "attachments": []}
    parts = _list(content)
    text = "".join(_text(part.get("text")) or "" for part in parts if part.get("type") == "input_text")
    attachments: list[dict[str, str]] = []
    for part in parts:
        url = _text(part.get("image_url")) or ""
        if part.get("type") == "input_image" and url.startswith("data:image/"):
            attachments.append({"kind": "image", "url": url})
        elif part.get("type") == "input_file":
            attachments.append({"kind": "pdf", "name": _text(part.get("filename")) or "document.pdf"})
    return {"role": "user", "text": text, "attachments": attachments}


def _list(value: Any) -> list[dict[str, Any]]:
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _strings(item: dict[str, Any], names: tuple[str, ...]) -> dict[str, str | None]:
    return {name: _text(item.get(name)) for name in names}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
