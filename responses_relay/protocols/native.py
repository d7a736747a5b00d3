"""The relay's own format (docs/api.md): each relay event is one SSE event named by its type,
its JSON object as data and its id as `id:` when it has one. Nothing opens or closes the
stream: its terminal event ends it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import orjson

from ..events import RelayEvent
from ..sse import encode_event


class NativeEncoder:
    headers: Mapping[str, str] = MappingProxyType({})

    def open(self) -> bytes:
        return b""

    def encode(self, events: Sequence[RelayEvent]) -> bytes:
        if len(events) == 1:  # most reads carry one event (merged deltas): no list, no join
            kind, payload, event_id = events[0]
            return encode_event(kind, orjson.dumps(payload), event_id)
        return b"".join([encode_event(kind, orjson.dumps(payload), event_id) for kind, payload, event_id in events])

    def close(self) -> bytes:
        return b""
