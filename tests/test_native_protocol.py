"""The native format's encoder: relay events as the SSE events docs/api.md describes, byte for byte."""

from __future__ import annotations

import orjson

from responses_relay.events import RelayEvent
from responses_relay.protocols.native import NativeEncoder
from responses_relay.sse import Decoder

EVENTS: list[RelayEvent] = [
    ("response.created", {"type": "response.created", "response_id": "resp_1", "model": "m"}, 0),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "滋賀\n湖"}, 5),
    ("tool.result", {"type": "tool.result", "call_id": "c", "name": "n", "output": "{}"}, None),
    ("error", {"type": "error", "code": "x", "message": "line\r\nbreak"}, None),
]


def test_each_event_is_one_sse_event_named_by_its_type_with_its_id() -> None:
    assert NativeEncoder().encode(EVENTS) == (
        b'id: 0\nevent: response.created\ndata: {"type":"response.created","response_id":"resp_1","model":"m"}\n\n'
        b'id: 5\nevent: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"delta":"\xe6\xbb\x8b\xe8\xb3\x80\\n\xe6\xb9\x96"}\n\n'
        b'event: tool.result\ndata: {"type":"tool.result","call_id":"c","name":"n","output":"{}"}\n\n'
        b'event: error\ndata: {"type":"error","code":"x","message":"line\\r\\nbreak"}\n\n'
    )


def test_nothing_opens_or_closes_the_stream_and_batches_join_as_one() -> None:
    encoder = NativeEncoder()
    assert (encoder.open(), encoder.close(), dict(encoder.headers)) == (b"", b"", {})
    assert encoder.encode([]) == b""
    assert encoder.encode(EVENTS[:1]) + encoder.encode(EVENTS[1:]) == NativeEncoder().encode(EVENTS)


def test_the_bytes_split_anywhere_decode_to_the_same_events() -> None:
    encoded = NativeEncoder().encode(EVENTS)
    expected = [(kind, payload, None if event_id is None else str(event_id)) for kind, payload, event_id in EVENTS]
    for cut in range(len(encoded) + 1):
        decoder = Decoder()
        decoded = decoder.feed(encoded[:cut]) + decoder.feed(encoded[cut:])
        assert [(event.event, orjson.loads(event.data), event.id) for event in decoded] == expected, cut
