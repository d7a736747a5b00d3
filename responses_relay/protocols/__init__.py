"""The protocols the relay speaks, at the edge of its one core: the core produces relay events
(`events.RelayEvent`), and a protocol's encoder, made for each stream, turns them into its bytes.

`native.py` is the relay's own format (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from ..events import RelayEvent


class Encoder(Protocol):
    """One stream's encoder. It may keep state for its stream (parts opened, events numbered);
    the relay calls `open` once, `encode` for each batch, and `close` once when it ends the stream."""

    @property
    def headers(self) -> Mapping[str, str]:
        """The protocol's response headers, beside the SSE ones."""

    def open(self) -> bytes:
        """The protocol's bytes before any event."""

    def encode(self, events: Sequence[RelayEvent]) -> bytes:
        """A batch of events (those of one network read, or those ending the stream); b"" for none."""

    def close(self) -> bytes:
        """The protocol's bytes after the stream's last event, once the relay has ended the stream
        (not when the caller left)."""
