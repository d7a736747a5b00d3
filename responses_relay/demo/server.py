"""The demo upstream: a real HTTP server on 127.0.0.1 speaking the Responses stream.

It runs uvicorn on its own event loop in a daemon thread, so the relay reaches it
through the real openai SDK exactly as it would reach Azure. An answer may come
with a reasoning summary (also whenever the request asks for one), a web search
with url citations, or be a refusal. A `Scenario` turns it into a fault injector
for the tests: an HTTP error before the stream, an error event (flat or nested),
`response.failed`, `response.incomplete`, a cut connection, a stall, or a stream
that just stops. Requests with `background: true` get background mode (see
`background.py`): stored, resumable from any point, retrievable and cancellable.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from ..disconnect import until_disconnected
from .answers import Answer, answer_for, reasoning_for, split_deltas
from .background import StoredResponse
from .wire import ResponseEvents, error_body, sse

Ending = Literal[
    "completed", "incomplete", "failed", "error_flat", "error_nested", "cut", "stall", "silent_end", "bad_json"
]

_STATUS_ERRORS = {
    400: ("content_filter", "The response was filtered due to the prompt triggering the content management policy."),
    401: ("401", "Access denied due to invalid subscription key or wrong API endpoint."),
    403: ("403", "Public access is disabled. Please configure private endpoint."),
    404: ("DeploymentNotFound", "The API deployment for this resource does not exist."),
    429: ("429", "Requests to the Responses API have exceeded the rate limit."),
    500: ("server_error", "The server had an error while processing your request."),
    503: ("server_error", "The service is temporarily unable to process your request."),
}
# POST /responses, GET /responses/{id}, POST /responses/{id}/cancel
_ROUTE = re.compile(r"/responses(?:/(?P<id>resp_[A-Za-z0-9_-]+)(?P<cancel>/cancel)?)?$")
_ROUTES = {("POST", True, True), ("GET", False, True), ("POST", False, False)}
_STORED_RESPONSES = 1000
_SEARCH_DELTAS = 20  # a web search takes as long as this many deltas


@dataclass
class Scenario:
    """What the next responses look like. The defaults give a normal, paced answer."""

    text: str | None = None  # None: the canned answer for the question
    answer: Answer | None = None  # the whole answer (reasoning, search, citations, refusal); wins over `text`
    status: int | None = None  # answer with this HTTP error instead of a stream
    error_code: str | None = None  # overrides the error body's code
    retry_after: str | None = None  # Retry-After header with `status`
    delta_seconds: float | None = None  # None: the server's pacing
    ending: Ending = "completed"
    after_deltas: int | None = None  # how many deltas come before `ending` (None: all)
    incomplete_reason: str = "max_output_tokens"
    hold_headers: bool = False  # send nothing until `release()` (or the client leaves)
    split_utf8: bool = False  # write each event in two pieces, split inside a character
    noise: bool = False  # after each delta: a malformed SSE line, a comment, an unknown event type
    chunk_chars: int | None = None  # deltas of this many characters (None: token-sized)
    hold_search: bool = False  # a web search runs until `release()`
    stall_when: str | None = None  # questions containing this stall after `after_deltas`, the others do not
    burst: bool = False  # the whole stream in one write, so the relay reads it at once (not with ending="cut")


@dataclass
class StreamRecord:
    """What the upstream saw of one request, for tests to assert on."""

    request: dict[str, Any]
    authorization: str | None
    method: str = "POST"
    path: str = ""
    query: str = ""
    ended_at: float | None = None
    client_left: bool = False  # the relay closed the connection before the body ended
    ended: threading.Event = field(default_factory=threading.Event)


async def _follow(stored: StoredResponse, after: int | None, send: Send, cut_after: int | None = None) -> None:
    """Stream a stored response after `after`; with `cut_after`, drop the connection after that many text deltas."""
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    deltas = 0
    async for frame in stored.follow(after):
        await send({"type": "http.response.body", "body": frame, "more_body": True})
        deltas += b'"response.output_text.delta"' in frame
        if cut_after is not None and deltas >= cut_after:
            raise CutConnection
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class CutConnection(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-body."""


class DemoUpstream:
    def __init__(self, delta_seconds: float = 0.03) -> None:
        self.delta_seconds = delta_seconds
        self.scenario = Scenario()
        self.records: list[StreamRecord] = []
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._released: asyncio.Event | None = None
        self._stored: list[StoredResponse] = []  # background responses, the latest last

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
        self._released = asyncio.Event()
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

    def set_scenario(self, scenario: Scenario) -> None:
        self.scenario = scenario
        if self._loop is not None and self._released is not None:
            self._loop.call_soon_threadsafe(self._released.clear)

    def release(self) -> None:
        """Let held headers or a stall go on."""
        if self._loop is not None and self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        route = _ROUTE.search(scope["path"]) if scope["method"] in ("GET", "POST") else None
        if route is None or (scope["method"], route["id"] is None, route["cancel"] is None) not in _ROUTES:
            await _send_json(send, 404, error_body("404", "Resource not found"))
            return
        body = await _read_body(receive)
        try:
            request = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            await _send_json(send, 400, error_body("invalid_json", "The body is not JSON"))
            return
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        record = StreamRecord(
            request=request,
            authorization=headers.get("authorization"),
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode(),
        )
        self.records.append(record)
        query = parse_qs(scope["query_string"].decode())
        left = asyncio.get_running_loop().create_task(until_disconnected(receive))
        handling = self._handle(self.scenario, request, route["id"], route["cancel"] is not None, query, send)
        respond = asyncio.get_running_loop().create_task(handling)
        try:
            await asyncio.wait({left, respond}, return_when=asyncio.FIRST_COMPLETED)
            if not respond.done():
                record.client_left = True
                respond.cancel()
            else:
                left.cancel()
            await asyncio.gather(left, respond, return_exceptions=True)
            error = respond.exception() if not respond.cancelled() else None
            if isinstance(error, CutConnection):
                raise error
        finally:
            record.ended_at = time.monotonic()
            record.ended.set()

    async def _handle(
        self,
        scenario: Scenario,
        request: dict[str, Any],
        response_id: str | None,
        cancel: bool,
        query: dict[str, list[str]],
        send: Send,
    ) -> None:
        if response_id is None:
            if scenario.stall_when is not None and scenario.stall_when in _last_user_text(request):
                scenario = replace(scenario, ending="stall")
            elif scenario.stall_when is not None:
                scenario = replace(scenario, after_deltas=None)
            if request.get("background") and scenario.status is None:
                await self._create_in_background(scenario, request, send)
            else:
                await self._respond(scenario, request, send)
            return
        stored = next((stored for stored in self._stored if stored.id == response_id), None)
        if stored is None:
            await _send_json(send, 404, error_body("not_found", f"Response with id '{response_id}' not found."))
        elif cancel and stored.done:
            message = f"Cannot cancel a response with status '{stored.status}'."
            await _send_json(send, 400, error_body("invalid_request_error", message))
        elif cancel:
            await stored.cancel()
            await _send_json(send, 200, orjson.dumps(stored.response()))
        elif query.get("stream") == ["true"]:
            after = query.get("starting_after", [None])[0]
            await _follow(stored, int(after) if after is not None else None, send)
        else:
            await _send_json(send, 200, orjson.dumps(stored.response()))

    async def _create_in_background(self, scenario: Scenario, request: dict[str, Any], send: Send) -> None:
        """Generate on its own (a cut only cuts this connection), and stream it from the start."""
        stored = StoredResponse()
        self._stored.append(stored)
        del self._stored[:-_STORED_RESPONSES]
        cut = scenario.ending == "cut"
        generated = replace(scenario, ending="completed", after_deltas=None) if cut else scenario
        stored.generation = asyncio.get_running_loop().create_task(self._respond(generated, request, stored))
        await _follow(stored, None, send, cut_after=scenario.after_deltas if cut else None)

    async def _respond(self, scenario: Scenario, request: dict[str, Any], send: Send) -> None:
        assert self._released is not None
        if scenario.hold_headers:
            await self._released.wait()
        if scenario.status is not None:
            await self._send_status_error(scenario, send)
            return
        if scenario.burst:
            send = _Burst(send)
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        events = ResponseEvents(request)
        question = _last_user_text(request)
        answer = scenario.answer or (Answer(scenario.text) if scenario.text is not None else answer_for(question))
        for payload in events.start():
            await _send_event(send, payload, scenario.split_utf8)
        reasoning = answer.reasoning or (reasoning_for(question) if _asks_for_summary(request) else ())
        await self._before_message(scenario, events, answer, reasoning, send)
        for payload in events.message(refusal=answer.refusal, annotations=answer.annotations()):
            await _send_event(send, payload, scenario.split_utf8)
        deltas = split_deltas(answer.text, scenario.chunk_chars)
        limit = len(deltas) if scenario.after_deltas is None else scenario.after_deltas
        for delta in deltas[:limit]:
            await self._pace(scenario, 1)
            for payload in events.content(delta):
                await _send_event(send, payload, scenario.split_utf8)
            if scenario.noise:
                await send({"type": "http.response.body", "body": _NOISE, "more_body": True})
                await _send_event(send, events.unknown(), False)
        await self._end(scenario, events, deltas[limit:], send)

    async def _before_message(
        self, scenario: Scenario, events: ResponseEvents, answer: Answer, reasoning: tuple[str, ...], send: Send
    ) -> None:
        """The output items before the message: a reasoning summary, then a web search."""
        if reasoning:
            for payload in events.reasoning([split_deltas(part, scenario.chunk_chars) for part in reasoning]):
                if payload["type"].endswith(".delta"):
                    await self._pace(scenario, 1)
                await _send_event(send, payload, scenario.split_utf8)
        if answer.search is not None:
            for payload in events.web_search(answer.search, [citation.url for citation in answer.citations]):
                if payload["type"] == "response.web_search_call.completed":
                    await self._search(scenario)
                await _send_event(send, payload, scenario.split_utf8)

    async def _pace(self, scenario: Scenario, deltas: int) -> None:
        """Wait as long as the model takes for this many deltas."""
        delay = self.delta_seconds if scenario.delta_seconds is None else scenario.delta_seconds
        if delay and not scenario.burst:
            await asyncio.sleep(delay * deltas)

    async def _search(self, scenario: Scenario) -> None:
        assert self._released is not None
        if scenario.hold_search:
            await self._released.wait()
        else:
            await self._pace(scenario, _SEARCH_DELTAS)

    async def _end(self, scenario: Scenario, events: ResponseEvents, rest: list[str], send: Send) -> None:
        assert self._released is not None
        ending = scenario.ending
        if ending == "stall":
            await self._released.wait()
            for delta in rest:
                for payload in events.content(delta):
                    await _send_event(send, payload, False)
        if ending in ("completed", "stall"):
            for payload in events.completion():
                await _send_event(send, payload, False)
        elif ending == "incomplete":
            await _send_event(send, events.incomplete(scenario.incomplete_reason), False)
        elif ending == "failed":
            await _send_event(send, events.failed(), False)
        elif ending in ("error_flat", "error_nested"):
            await _send_event(send, events.error(nested=ending == "error_nested"), False)
        elif ending == "bad_json":
            await send({"type": "http.response.body", "body": b"data: {not json\n\n", "more_body": True})
        elif ending == "cut":
            raise CutConnection
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_status_error(self, scenario: Scenario, send: Send) -> None:
        status = scenario.status
        assert status is not None
        code, message = _STATUS_ERRORS.get(status, (str(status), "The request failed."))
        headers = []
        if scenario.retry_after is not None:
            headers.append((b"retry-after", scenario.retry_after.encode()))
        await _send_json(send, status, error_body(scenario.error_code or code, message), headers)


# A line without a colon is a field with no value, ignored by SSE parsers; so are comments
# and unknown fields. None of it may end or corrupt the stream.
_NOISE = b"this line is not an sse field\n: a comment\nretry: 1000\nweird-field: x\n\n"

_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class _Burst:
    """A `send` that holds the body back and writes it in one piece when it ends."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] != "http.response.body":
            await self._send(message)
            return
        self._body += message.get("body", b"")
        if not message.get("more_body", False):
            await self._send({"type": "http.response.body", "body": bytes(self._body), "more_body": True})
            await self._send(message)


class _DropCutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], CutConnection))


logging.getLogger("uvicorn.error").addFilter(_DropCutTraceback())


async def _send_event(send: Send, payload: dict[str, Any], split_utf8: bool) -> None:
    frame = sse(payload)
    cut = _inside_a_character(frame) if split_utf8 else None
    if cut is None:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
        return
    await send({"type": "http.response.body", "body": frame[:cut], "more_body": True})
    await asyncio.sleep(0.001)  # lets the first piece leave as its own TCP segment
    await send({"type": "http.response.body", "body": frame[cut:], "more_body": True})


def _inside_a_character(frame: bytes) -> int | None:
    """An offset that falls after the first byte of a multi-byte UTF-8 character."""
    for index, byte in enumerate(frame):
        if byte >= 0xC0:
            return index + 1
    return None


async def _send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
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


def _asks_for_summary(request: dict[str, Any]) -> bool:
    reasoning = request.get("reasoning")
    return isinstance(reasoning, dict) and reasoning.get("summary") in ("auto", "concise", "detailed")


def _last_user_text(request: dict[str, Any]) -> str:
    value = request.get("input")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for message in reversed(value):
            if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
                return str(message["content"])
    return ""
