"""A second, independent test upstream: a small Responses API server (uvicorn on 127.0.0.1, in
the test's event loop) that answers each `POST /responses` with the next scripted reply, built
here from items (function calls, text, MCP approval requests and calls), not by the demo.

Each reply is one streamed response: `response.created`, `response.in_progress`, each item's
events as the Responses API sends them, then `response.completed` with the output and usage.
A reply may instead be an HTTP status, answered with an error body. Every request body is kept,
and every response it streamed can be retrieved (`GET /responses/{id}`) as it ended, or deleted.
It has the Conversations API too (scripted_conversations.py).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

from .scripted_conversations import ScriptedConversations

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


@dataclass(frozen=True)
class FunctionCall:
    name: str
    arguments: str  # JSON as the model writes it (or not JSON at all)


@dataclass(frozen=True)
class Text:
    text: str
    annotations: tuple[dict[str, Any], ...] = ()  # url citations, each sent once its text is out


@dataclass(frozen=True)
class ApprovalRequest:
    server_label: str
    name: str
    arguments: str


@dataclass(frozen=True)
class McpCall:
    server_label: str
    name: str
    arguments: str
    output: str


Item = FunctionCall | Text | ApprovalRequest | McpCall


@dataclass(frozen=True)
class Reply:
    items: tuple[Item, ...]
    usage: tuple[int, int] = (20, 10)  # input and output tokens
    status: int = 200  # other than 200: an HTTP error instead of a stream


def reply(*items: Item, usage: tuple[int, int] = (20, 10)) -> Reply:
    return Reply(items, usage)


def refusal(status: int) -> Reply:
    """An HTTP error instead of a stream."""
    return Reply((), status=status)


class ScriptedUpstream:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.stored: dict[str, dict[str, Any]] = {}  # each streamed response's object, by id
        self.conversations = ScriptedConversations()
        self.failing_deletes: set[str] = set()  # stored responses whose DELETE fails (500) while here
        self.base_url = ""
        self._numbers = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def script(self, *replies: Reply) -> None:
        self.replies += replies

    async def start(self) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/"
        config = uvicorn.Config(self, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))

    async def aclose(self) -> None:
        assert self._server is not None
        assert self._task is not None
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 10)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        stored = self.stored.get(path.removeprefix("/v1/responses/"))
        if method == "DELETE" and stored is not None and stored["id"] in self.failing_deletes:
            await _json(send, 500, {"error": {"code": "server_error", "message": "Scripted."}})
            return
        if method in ("GET", "DELETE") and stored is not None:
            if method == "DELETE":
                del self.stored[stored["id"]]
                self.conversations.inputs.pop(stored["id"], None)
            await _json(send, 200, stored)
            return
        other = self.conversations.answer(method, path, scope["query_string"], orjson.loads(body or b"{}"))
        if other is not None:
            await _json(send, *other)
            return
        if (method, path) != ("POST", "/v1/responses") or not self.replies:
            await _json(send, 404 if self.replies else 500, {"error": {"code": "unscripted", "message": path}})
            return
        request = orjson.loads(body)
        self.requests.append(request)
        refused = self.conversations.refusal(request)
        if refused is not None:
            await _json(send, *refused)
            return
        scripted = self.replies.pop(0)
        if scripted.status != 200:
            await _json(send, scripted.status, {"error": {"code": str(scripted.status), "message": "Scripted."}})
            return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for payload in _Response(f"resp_scripted{next(self._numbers)}", request, scripted).events():
            if payload["type"] == "response.completed":
                self.stored[payload["response"]["id"]] = payload["response"]
                self.conversations.completed(request, payload["response"])
            frame = b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Response:
    """One reply's events, numbered."""

    def __init__(self, response_id: str, request: dict[str, Any], scripted: Reply) -> None:
        self.id = response_id
        self.request = request
        self.scripted = scripted
        self.output: list[dict[str, Any]] = []
        self._sequence = itertools.count()

    def events(self) -> Iterator[dict[str, Any]]:
        yield self._event("response.created", response=self._object("in_progress"))
        yield self._event("response.in_progress", response=self._object("in_progress"))
        for index, item in enumerate(self.scripted.items):
            yield from self._item(index, item)
        tokens = self.scripted.usage
        usage = {"input_tokens": tokens[0], "output_tokens": tokens[1], "total_tokens": sum(tokens)}
        yield self._event("response.completed", response={**self._object("completed"), "usage": usage})

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(self._sequence), **fields}

    def _object(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "response",
            "status": status,
            "model": self.request.get("model"),
            "output": list(self.output),
            "previous_response_id": self.request.get("previous_response_id"),
            "metadata": self.request.get("metadata") or {},
            "conversation": {"id": given} if isinstance(given := self.request.get("conversation"), str) else given,
        }

    def _item(self, index: int, item: Item) -> Iterator[dict[str, Any]]:
        where = {"output_index": index}
        done: dict[str, Any]
        if isinstance(item, FunctionCall):
            done = {"type": "function_call", "id": f"fc_{self.id}_{index}", "call_id": f"call_{self.id}_{index}",
                    "name": item.name, "arguments": item.arguments, "status": "completed"}  # fmt: skip
            yield self._event(
                "response.output_item.added", **where, item={**done, "arguments": "", "status": "in_progress"}
            )
            for piece in (item.arguments[:5], item.arguments[5:]):
                yield self._event("response.function_call_arguments.delta", **where, item_id=done["id"], delta=piece)
            yield self._event(
                "response.function_call_arguments.done", **where, item_id=done["id"], arguments=item.arguments
            )
        elif isinstance(item, Text):
            text = {"type": "output_text", "text": item.text, "annotations": list(item.annotations)}
            done = {"type": "message", "id": f"msg_{self.id}_{index}", "role": "assistant", "status": "completed",
                    "content": [text]}  # fmt: skip
            part = {**where, "item_id": done["id"], "content_index": 0}
            yield self._event(
                "response.output_item.added", **where, item={**done, "content": [], "status": "in_progress"}
            )
            yield self._event("response.content_part.added", **part, part={"type": "output_text", "text": ""})
            words = item.text.split(" ")
            for delta in [word + " " for word in words[:-1]] + words[-1:]:
                yield self._event("response.output_text.delta", **part, delta=delta)
            for number, annotation in enumerate(item.annotations):
                yield self._event(
                    "response.output_text.annotation.added", **part, annotation_index=number, annotation=annotation
                )
            yield self._event("response.output_text.done", **part, text=item.text)
        elif isinstance(item, ApprovalRequest):
            done = {"type": "mcp_approval_request", "id": f"mcpr_{self.id}_{index}", "server_label": item.server_label,
                    "name": item.name, "arguments": item.arguments}  # fmt: skip
            yield self._event("response.output_item.added", **where, item=done)
        else:
            done = {"type": "mcp_call", "id": f"mcp_{self.id}_{index}", "server_label": item.server_label,
                    "name": item.name, "arguments": item.arguments, "output": item.output, "error": None}  # fmt: skip
            yield self._event("response.output_item.added", **where, item={**done, "output": None, "arguments": ""})
            yield self._event("response.mcp_call.in_progress", **where, item_id=done["id"])
            yield self._event("response.mcp_call.completed", **where, item_id=done["id"])
        self.output.append(done)
        yield self._event("response.output_item.done", **where, item=done)


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})
