"""Stored responses for the demo upstream, as the Responses API keeps them. In background
mode (`background: true`) the response is generated on its own, whoever is connected; its
events are stored with their `sequence_number`, so any client can stream them from any point
(`GET /responses/{id}?stream=true&starting_after=N`), retrieve the response
(`GET /responses/{id}`) or cancel it (`POST /responses/{id}/cancel`). Any other response is
stored too (`store` defaults to true), as its caller streams it: it can be retrieved, but not
streamed again or cancelled.

A `StoredResponse` is also the ASGI `send` its generation writes to: the demo's normal
answer, with every fault knob, becomes the stored stream (`tap` keeps what a caller is sent).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.types import Message, Send

TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})
_STATUS_OF = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
    "error": "failed",
}


class StoredResponse:
    def __init__(self, *, background: bool = True) -> None:
        self.background = background  # False: kept as its caller is sent it; neither streamed again nor cancelled
        self.id: str | None = None
        self.status = "queued"
        self.frames: list[tuple[int | None, bytes]] = []  # (sequence number, SSE frame); None: not an event
        self._response: dict[str, Any] = {}  # the response object, as the events last showed it
        self._partial = b""
        self._changed = asyncio.Condition()
        self.generation: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    async def __call__(self, message: Message) -> None:
        """The generation's `send`: store each whole SSE frame."""
        if message["type"] != "http.response.body":
            return
        self._partial += message.get("body", b"")
        *frames, self._partial = self._partial.split(b"\n\n")
        for frame in frames:
            self._store(frame + b"\n\n")
        if not message.get("more_body", False) and not self.done:
            self.status = "failed"  # the stream ended without a terminal event
        async with self._changed:
            self._changed.notify_all()

    def _store(self, frame: bytes) -> None:
        payload = frame_payload(frame)
        sequence = payload.get("sequence_number") if payload else None
        self.frames.append((sequence if type(sequence) is int else None, frame))
        if not payload:
            return
        response = payload.get("response")
        if isinstance(response, dict):
            self._response = response
            self.id = self.id or response.get("id")
        kind = payload.get("type")
        if self.status == "queued":
            self.status = "in_progress"
        if kind in _STATUS_OF:
            self.status = _STATUS_OF[kind]

    def tap(self, send: Send) -> Send:
        """`send`, also storing what it sends."""

        async def tapped(message: Message) -> None:
            await send(message)
            await self(message)

        return tapped

    async def follow(self, after: int | None) -> AsyncIterator[bytes]:
        """The stored frames after sequence number `after`, then new ones as they come, until the
        response ends (or is cancelled: then the stream just stops, without a terminal event)."""
        index = 0
        passed = after is None
        while True:
            while index < len(self.frames):
                sequence, frame = self.frames[index]
                index += 1
                passed = passed or (sequence is not None and after is not None and sequence > after)
                if passed:
                    yield frame
            if self.done:
                return
            await self._wait_beyond(index)

    async def _wait_beyond(self, frames: int) -> None:
        """Until there are more than `frames` frames, or the response is done."""
        async with self._changed:
            await self._changed.wait_for(lambda: frames < len(self.frames) or self.done)

    def response(self) -> dict[str, Any]:
        """The response object, as `GET /responses/{id}` returns it."""
        return {**self._response, "id": self.id, "status": self.status, "background": self.background}

    async def cancel(self) -> None:
        if not self.done:
            self.status = "cancelled"
            if self.generation is not None:
                self.generation.cancel()
        async with self._changed:
            self._changed.notify_all()


def frame_payload(frame: bytes) -> dict[str, Any] | None:
    for line in frame.splitlines():
        if line.startswith(b"data: "):
            try:
                payload = orjson.loads(line[6:])
            except orjson.JSONDecodeError:
                return None
            return payload if isinstance(payload, dict) else None
    return None
