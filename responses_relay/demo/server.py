"""The demo upstream: a real HTTP server on 127.0.0.1 speaking the Responses API.

It runs uvicorn on its own event loop in a daemon thread, so the relay reaches it
through the real openai SDK exactly as it would reach Azure. An answer may come
with a reasoning summary (also whenever the request asks for one), a web search
with url citations, or be a refusal. Requests with `background: true` get background
mode (see `background.py`): stored, resumable from any point, retrievable and
cancellable. It also has the Conversations API (see `conversations.py`). It keeps nothing of a
request but a bounded number of background responses and of conversations and their
responses, so a deployment left in demo mode does not grow.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from ..disconnect import until_disconnected
from .background import StoredResponse
from .conversations import ConversationStore
from .script import Script
from .wire import error_body, sse

# POST /responses, GET /responses/{id}, POST /responses/{id}/cancel; the rest: conversations.py's, or DELETE
_RESPONSE = re.compile(r"/responses/(?P<id>resp_[A-Za-z0-9_-]+)$")
_ROUTE = re.compile(r"/responses(?:/(?P<id>resp_[A-Za-z0-9_-]+)(?P<cancel>/cancel)?)?$")
_ROUTES = {("POST", True, True), ("GET", False, True), ("POST", False, False)}
STORED_RESPONSES = 1000  # responses kept, the oldest dropped first
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


@dataclass(frozen=True)
class Call:
    """One request to the upstream, parsed."""

    method: str
    response_id: str | None  # GET /responses/{id}, POST /responses/{id}/cancel
    cancel: bool
    query: dict[str, list[str]]
    request: dict[str, Any]  # the JSON body
    headers: dict[str, str]

    @property
    def after(self) -> int | None:
        """`starting_after` of a stored response's stream."""
        after = self.query.get("starting_after", [None])[0]
        return int(after) if after is not None else None


class DemoUpstream:
    def __init__(self, delta_seconds: float = 0.03) -> None:
        self.delta_seconds = delta_seconds
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stored: list[StoredResponse] = []  # stored responses, the latest last
        self.conversations = ConversationStore()

    @property
    def base_url(self) -> str:
        assert self._socket is not None, "start() the demo upstream first"
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/openai/v1/"

    def start(self) -> str:
        """Serve on a free port of 127.0.0.1 in a daemon thread; returns the base URL."""
        if self._thread is not None:
            return self.base_url
        self._socket = socket.create_server(("127.0.0.1", 0))
        config = uvicorn.Config(self, log_level="warning", lifespan="off", access_log=False, timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="demo-upstream", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the demo upstream did not start")
        return self.base_url

    def _run(self, started: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        assert self._server is not None
        assert self._socket is not None
        loop.call_soon(started.set)
        loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        loop.close()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._thread = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        try:
            request = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            await send_json(send, 400, error_body("invalid_json", "The body is not JSON"))
            return
        route = _ROUTE.search(scope["path"]) if scope["method"] in ("GET", "POST") else None
        if route is None or (scope["method"], route["id"] is None, route["cancel"] is None) not in _ROUTES:
            await self.answer_other(scope, request if isinstance(request, dict) else {}, send)
            return
        call = Call(
            method=scope["method"],
            response_id=route["id"],
            cancel=route["cancel"] is not None,
            query=parse_qs(scope["query_string"].decode()),
            request=request if isinstance(request, dict) else {},
            headers={key.decode().lower(): value.decode() for key, value in scope["headers"]},
        )
        await self.answer_until_left(call, receive, send)

    async def answer_until_left(self, call: Call, receive: Receive, send: Send) -> bool:
        """Answer `call`; stop when the client leaves. True when it left first."""
        loop = asyncio.get_running_loop()
        left = loop.create_task(until_disconnected(receive))
        respond = loop.create_task(self.handle(call, send))
        await asyncio.wait({left, respond}, return_when=asyncio.FIRST_COMPLETED)
        client_left = not respond.done()
        (respond if client_left else left).cancel()
        await asyncio.gather(left, respond, return_exceptions=True)
        error = None if respond.cancelled() else respond.exception()
        if error is not None:
            raise error  # uvicorn drops the connection
        return client_left

    async def answer_other(self, scope: Scope, request: dict[str, Any], send: Send) -> None:
        """The Conversations API, a response's input items, and a response's deletion."""
        method, path = scope["method"], scope["path"]
        deleted = _RESPONSE.search(path) if method == "DELETE" else None
        if deleted is not None:
            stored = self.stored(deleted["id"])
            if stored is not None:
                self._stored.remove(stored)
            if self.conversations.forget(deleted["id"]) or stored is not None:
                await send_json(send, 200, orjson.dumps({"id": deleted["id"], "object": "response", "deleted": True}))
                return
        answer = None if deleted else self.conversations.answer(method, path, scope["query_string"].decode(), request)
        if answer is None:
            await send_json(send, 404, error_body("404", "Resource not found"))
        else:
            await send_json(send, *answer)

    async def handle(self, call: Call, send: Send) -> None:
        if call.response_id is None:
            refusal = self.conversations.refusal(call.request)
            if refusal is not None:
                await send_json(send, *refusal)
            else:
                await self.create(call.request, send)
            return
        stored = self.stored(call.response_id)
        if stored is None:
            await send_json(send, 404, error_body("not_found", f"Response with id '{call.response_id}' not found."))
        elif (call.cancel or call.query.get("stream") == ["true"]) and not stored.background:
            message = "Only background responses can be cancelled or streamed again."
            await send_json(send, 400, error_body("invalid_request_error", message))
        elif call.cancel and stored.done:
            message = f"Cannot cancel a response with status '{stored.status}'."
            await send_json(send, 400, error_body("invalid_request_error", message))
        elif call.cancel:
            await stored.cancel()
            await send_json(send, 200, orjson.dumps(stored.response()))
        elif call.query.get("stream") == ["true"]:
            await self.follow(stored, call.after, send)
        else:
            await send_json(send, 200, orjson.dumps(stored.response()))

    def stored(self, response_id: str) -> StoredResponse | None:
        return next((stored for stored in self._stored if stored.id == response_id), None)

    def keep(self, stored: StoredResponse) -> StoredResponse:
        """Store a response (the oldest are dropped past STORED_RESPONSES)."""
        self._stored.append(stored)
        del self._stored[:-STORED_RESPONSES]
        return stored

    async def create(self, request: dict[str, Any], send: Send) -> None:
        """POST /responses: the answer's stream; in background mode, generated on its own and
        streamed from the store, whoever is connected."""
        if not request.get("background"):
            await self.respond(request, self.keep(StoredResponse(background=False)).tap(send))
            return
        stored = self.keep(StoredResponse())
        stored.generation = asyncio.get_running_loop().create_task(self.respond(request, stored))
        await self.follow(stored, None, send)

    async def respond(self, request: dict[str, Any], send: Send) -> None:
        """Generate one answer to `request` as a stream, paced like a model."""
        send = self.conversations.generation(request, send)
        script = Script(request)
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for step in script.body():
            await self.pace(step.pause)
            await send_event(send, step.payload)
        for payload in script.ending():
            await send_event(send, payload)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def follow(self, stored: StoredResponse, after: int | None, send: Send) -> None:
        """Stream a stored response after sequence number `after` (None: from the start)."""
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        async for frame in stored.follow(after):
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def pace(self, deltas: int) -> None:
        """Wait as long as the model takes for this many deltas."""
        if deltas and self.delta_seconds:
            await asyncio.sleep(self.delta_seconds * deltas)


async def send_event(send: Send, payload: dict[str, Any]) -> None:
    await send({"type": "http.response.body", "body": sse(payload), "more_body": True})


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    start_headers = [(b"content-type", b"application/json"), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message: Message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)
