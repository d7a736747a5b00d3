"""The Server-Sent Events wire format: pure encoding, and an incremental decoder.

Neither side does I/O. The decoder takes bytes exactly as they came off the
network (split anywhere, even inside a UTF-8 character or between CR and LF)
and returns each event once its terminating blank line has arrived.
"""

from __future__ import annotations

from typing import NamedTuple


def encode_event(event: str, data: bytes, event_id: int | None = None) -> bytes:
    """One SSE event. `data` may hold newlines; each line becomes a `data:` field."""
    if b"\n" in data or b"\r" in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        body = b"".join(b"data: " + line + b"\n" for line in lines)
    else:
        body = b"data: " + data + b"\n"
    head = b"" if event_id is None else b"id: %d\n" % event_id
    return head + b"event: " + _one_line(event) + b"\n" + body + b"\n"


def encode_comment(text: str) -> bytes:
    """A comment line, ignored by clients: used to flush headers and as a heartbeat."""
    return b": " + _one_line(text) + b"\n\n"


def _one_line(text: str) -> bytes:
    return text.replace("\r", " ").replace("\n", " ").encode()


class Event(NamedTuple):
    event: str | None
    data: bytes
    id: str | None


class Decoder:
    """Incremental SSE decoder (WHATWG rules for lines, fields and dispatch)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes already known to hold no complete event
        self._trailing_cr = False

    def feed(self, chunk: bytes) -> list[Event]:
        if self._trailing_cr:
            chunk = b"\r" + chunk
            self._trailing_cr = False
        if chunk.endswith(b"\r"):
            # It may be the first half of CRLF: decide when the next byte arrives.
            chunk = chunk[:-1]
            self._trailing_cr = True
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer
        buffer += chunk
        events: list[Event] = []
        start = 0
        while (end := buffer.find(b"\n\n", max(start, self._scanned - 1))) >= 0:
            event = _parse_block(bytes(buffer[start:end]))
            if event is not None:
                events.append(event)
            start = end + 2
        if start:
            del buffer[:start]
        self._scanned = len(buffer)
        return events

    def close(self) -> list[Event]:
        """End of stream: a lone CR still counts as a line end; an unterminated event is dropped."""
        if self._trailing_cr:
            self._trailing_cr = False
            return self.feed(b"\n")
        return []


def _parse_block(block: bytes) -> Event | None:
    event: str | None = None
    event_id: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            event_id = value.decode("utf-8", "replace")
    joined = b"\n".join(data)
    return Event(event, joined, event_id) if joined else None
