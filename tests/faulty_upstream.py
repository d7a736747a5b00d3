"""The tests' upstream: the demo upstream with faults injected, and a record of every request.

A `Scenario` says what the next responses look like: an HTTP error before the stream, an
error event (flat or nested), `response.failed`, `response.incomplete`, a cut connection, a
stall, a stream that just stops, bad JSON, a whole stream in one write, events split inside
a UTF-8 character, noise between events; in background mode, cuts of each stream of a
stored response at chosen points.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from weakref import WeakKeyDictionary

from starlette.types import Message, Receive, Send

from responses_relay.demo.answers import Answer
from responses_relay.demo.background import StoredResponse
from responses_relay.demo.script import TEXT_DELTA, Script, last_user_text
from responses_relay.demo.server import SSE_HEADERS, Call, DemoUpstream, send_event, send_json
from responses_relay.demo.wire import error_body, sse

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
# A line without a colon is a field with no value, ignored by SSE parsers; so are comments
# and unknown fields. None of it may end or corrupt the stream.
_NOISE = b"this line is not an sse field\n: a comment\nretry: 1000\nweird-field: x\n\n"


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
    # Background mode: each stream of a stored response in turn (the creating POST's, then each
    # GET ?stream=true) is cut after this many SSE frames of its own (None, or past the tuple: whole).
    stream_cuts: tuple[int | None, ...] = ()
    queued_seconds: float = 0.0  # background mode: the response is queued this long before response.created
    hold_queued: bool = False  # background mode: the response stays queued (no response.created) until `release()`
    headers: tuple[tuple[str, str], ...] = ()  # more response headers on a stream


@dataclass
class StreamRecord:
    """What the upstream saw of one request, for tests to assert on."""

    request: dict[str, Any]
    authorization: str | None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    path: str = ""
    query: str = ""
    started_at: float = field(default_factory=time.monotonic)
    ended_at: float | None = None
    client_left: bool = False  # the relay closed the connection before the body ended
    ended: threading.Event = field(default_factory=threading.Event)


class CutConnection(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-body."""


class _DropCutTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], CutConnection))


logging.getLogger("uvicorn.error").addFilter(_DropCutTraceback())


class FaultyUpstream(DemoUpstream):
    def __init__(self, delta_seconds: float = 0.03) -> None:
        super().__init__(delta_seconds)
        self.scenario = Scenario()
        self.records: list[StreamRecord] = []
        self._recorded = threading.Condition()
        self._generated = threading.Condition()  # notified as background responses are generated
        self._released = asyncio.Event()  # bound to the server's loop at first use
        self._streams_of: WeakKeyDictionary[StoredResponse, int] = WeakKeyDictionary()  # streams served of each

    def set_scenario(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._streams_of.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._released.clear)

    def release(self) -> None:
        """Let held headers or a stall go on."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    def wait_for_requests(self, count: int, timeout: float = 10) -> list[StreamRecord]:
        """Block until `count` requests have arrived (since records were last cleared); the records."""
        with self._recorded:
            if not self._recorded.wait_for(lambda: len(self.records) >= count, timeout):
                raise TimeoutError(f"{len(self.records)} requests arrived, not {count}")
            return list(self.records)

    def wait_for_record(self, matches: Callable[[StreamRecord], bool], timeout: float = 10) -> StreamRecord:
        """Block until a request that `matches` has arrived (since records were last cleared); its record."""
        with self._recorded:
            if not self._recorded.wait_for(lambda: any(matches(record) for record in self.records), timeout):
                raise TimeoutError("no such request arrived")
            return next(record for record in self.records if matches(record))

    def latest_stored(self) -> StoredResponse:
        """The response created last."""
        return self._stored[-1]

    def stored_responses(self) -> list[StoredResponse]:
        """Every response created and kept, the latest last."""
        return list(self._stored)

    def relay_cancelled_the_orphan(self) -> StoredResponse:
        """Block until the second request, the relay's cancel of the background response the first
        created (whose id never reached the caller), has been answered; the stored response."""
        created, cancelled = self.wait_for_requests(2)[:2]
        assert (created.method, created.request.get("background")) == ("POST", True)
        assert (cancelled.method, cancelled.path.rsplit("/", 1)[-1]) == ("POST", "cancel")
        assert cancelled.ended.wait(5)
        stored = self.stored(cancelled.path.split("/")[-2])
        assert stored is not None
        return stored

    async def answer_until_left(self, call: Call, receive: Receive, send: Send) -> bool:
        record = StreamRecord(
            request=call.request,
            authorization=call.headers.get("authorization"),
            headers=call.headers,
            method=call.method,
            path=f"/openai/v1/responses{'' if call.response_id is None else '/' + call.response_id}"
            + ("/cancel" if call.cancel else ""),
            query="&".join(f"{key}={value}" for key, values in call.query.items() for value in values),
        )
        with self._recorded:
            self.records.append(record)
            self._recorded.notify_all()
        try:
            record.client_left = await super().answer_until_left(call, receive, send)
            return record.client_left
        finally:
            record.ended_at = time.monotonic()
            record.ended.set()

    async def create(self, request: dict[str, Any], send: Send) -> None:
        scenario = self.scenario
        if scenario.stall_when is not None and scenario.stall_when in last_user_text(request):
            scenario = replace(scenario, ending="stall")
        elif scenario.stall_when is not None:
            scenario = replace(scenario, after_deltas=None)
        if scenario.hold_headers:
            await self._released.wait()
        if scenario.status is not None:
            await self._send_status_error(scenario, send)
        elif request.get("background"):
            await self._create_in_background(scenario, request, send)
        else:
            await self._respond(scenario, request, self.keep(StoredResponse(background=False)).tap(send))

    async def _create_in_background(self, scenario: Scenario, request: dict[str, Any], send: Send) -> None:
        """Generate on its own (a cut only cuts this connection), and stream it from the start."""
        stored = self.keep(StoredResponse())
        cut = scenario.ending == "cut"
        generated = replace(scenario, ending="completed", after_deltas=None) if cut else scenario
        stored.generation = asyncio.get_running_loop().create_task(self._generate(generated, request, stored))
        await self._follow_cut(stored, None, send, cut_deltas=scenario.after_deltas if cut else None)

    async def _generate(self, scenario: Scenario, request: dict[str, Any], stored: StoredResponse) -> None:
        if scenario.queued_seconds:
            await asyncio.sleep(scenario.queued_seconds)
        if scenario.hold_queued:
            await self._released.wait()

        async def storing(message: Message) -> None:
            await stored(message)
            with self._generated:
                self._generated.notify_all()

        await self._respond(scenario, request, storing)

    def wait_until_ended(self, response_id: str, timeout: float = 10) -> StoredResponse:
        """Block until the background response has ended (whoever reads it); the stored response."""
        with self._generated:
            ended = self._generated.wait_for(
                lambda: (found := self.stored(response_id)) is not None and found.done, timeout
            )
        found = self.stored(response_id)
        if not ended or found is None:
            raise TimeoutError(f"{response_id} did not end within {timeout} s")
        return found

    async def follow(self, stored: StoredResponse, after: int | None, send: Send) -> None:
        await self._follow_cut(stored, after, send, cut_deltas=None)

    async def _follow_cut(
        self, stored: StoredResponse, after: int | None, send: Send, *, cut_deltas: int | None
    ) -> None:
        """Stream a stored response after `after`, cut where the scenario says."""
        index = self._streams_of.get(stored, 0)
        self._streams_of[stored] = index + 1
        cuts = self.scenario.stream_cuts
        cut_frames = cuts[index] if index < len(cuts) else None
        await send({"type": "http.response.start", "status": 200, "headers": self._stream_headers()})
        frames = deltas = 0
        if cut_frames == 0:
            raise CutConnection
        async for frame in stored.follow(after):
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            frames += 1
            deltas += f'"{TEXT_DELTA}"'.encode() in frame
            if frames == cut_frames or (cut_deltas is not None and deltas >= cut_deltas):
                raise CutConnection
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _respond(self, scenario: Scenario, request: dict[str, Any], send: Send) -> None:
        if scenario.burst:
            send = _Burst(send)
        send = self.conversations.generation(request, send)
        answer = scenario.answer or (Answer(scenario.text) if scenario.text is not None else None)
        script = Script(request, answer, scenario.chunk_chars)
        await send({"type": "http.response.start", "status": 200, "headers": self._stream_headers()})
        for step in script.head():
            if step.payload["type"] == "response.web_search_call.completed" and scenario.hold_search:
                await self._released.wait()
            else:
                await self._pace(scenario, step.pause)
            await _send_event(send, step.payload, scenario.split_utf8)
        deltas = script.deltas()
        limit = len(deltas) if scenario.after_deltas is None else scenario.after_deltas
        for delta in deltas[:limit]:
            for step in script.content(delta):
                await self._pace(scenario, step.pause)
                await _send_event(send, step.payload, scenario.split_utf8)
            if scenario.noise:
                await send({"type": "http.response.body", "body": _NOISE, "more_body": True})
                await _send_event(send, script.events.unknown(), False)
        await self._end(scenario, script, deltas[limit:], send)

    async def _end(self, scenario: Scenario, script: Script, rest: list[str], send: Send) -> None:
        events = script.events
        ending = scenario.ending
        if ending == "stall":
            await self._released.wait()
            for delta in rest:
                for step in script.content(delta):
                    await send_event(send, step.payload)
        if ending in ("completed", "stall"):
            for payload in script.ending():
                await send_event(send, payload)
        elif ending == "incomplete":
            await send_event(send, events.incomplete(scenario.incomplete_reason))
        elif ending == "failed":
            await send_event(send, events.failed())
        elif ending in ("error_flat", "error_nested"):
            await send_event(send, events.error(nested=ending == "error_nested"))
        elif ending == "bad_json":
            await send({"type": "http.response.body", "body": b"data: {not json\n\n", "more_body": True})
        elif ending == "cut":
            raise CutConnection
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _stream_headers(self) -> list[tuple[bytes, bytes]]:
        return SSE_HEADERS + [(name.encode(), value.encode()) for name, value in self.scenario.headers]

    async def _pace(self, scenario: Scenario, deltas: int) -> None:
        delay = self.delta_seconds if scenario.delta_seconds is None else scenario.delta_seconds
        if deltas and delay and not scenario.burst:
            await asyncio.sleep(delay * deltas)

    async def _send_status_error(self, scenario: Scenario, send: Send) -> None:
        status = scenario.status
        assert status is not None
        code, message = _STATUS_ERRORS.get(status, (str(status), "The request failed."))
        headers = []
        if scenario.retry_after is not None:
            headers.append((b"retry-after", scenario.retry_after.encode()))
        await send_json(send, status, error_body(scenario.error_code or code, message), headers)


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
