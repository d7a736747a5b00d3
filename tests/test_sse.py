"""The SSE wire format: exact bytes out, and a decoder that survives any split."""

from __future__ import annotations

import pytest

from responses_relay.sse import Decoder, Event, encode_comment, encode_event


def test_encode_event_exact_bytes() -> None:
    data = '{"type":"response.output_text.delta","delta":"滋賀"}'.encode()
    assert encode_event("response.output_text.delta", data, 4) == (
        b"id: 4\nevent: response.output_text.delta\ndata: " + data + b"\n\n"
    )


def test_encode_event_without_id() -> None:
    assert encode_event("error", b'{"code":"x"}') == b'event: error\ndata: {"code":"x"}\n\n'


def test_encode_event_splits_multiline_data_into_data_fields() -> None:
    assert encode_event("x", b"a\r\nb\nc") == b"event: x\ndata: a\ndata: b\ndata: c\n\n"


def test_newlines_cannot_forge_fields() -> None:
    assert encode_event("a\ndata: forged", b"1") == b"event: a data: forged\ndata: 1\n\n"
    assert encode_comment("ping\n\nevent: x") == b": ping  event: x\n\n"


STREAM = (
    ": stream open\r\n\r\n"
    'id: 0\r\nevent: response.created\r\ndata: {"a":1}\r\n\r\n'
    'event: response.output_text.delta\ndata: {"delta":"滋賀県は琵琶湖"}\n\n'
    ": ping\n\n"
    "data: line one\rdata: line two\r\r"
    "id: 7\ndata:no-space\n\n"
    "data\n\n"
    "event: ignored-without-data\n\n"
).encode()
EXPECTED = [
    Event("response.created", b'{"a":1}', "0"),
    Event("response.output_text.delta", '{"delta":"滋賀県は琵琶湖"}'.encode(), None),
    Event(None, b"line one\nline two", None),
    Event(None, b"no-space", "7"),
]


def decode(pieces: list[bytes]) -> list[Event]:
    decoder = Decoder()
    events = [event for piece in pieces for event in decoder.feed(piece)]
    return events + decoder.close()


def test_decoder_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_decoder_same_events_when_split_anywhere(cut: int) -> None:
    # Every cut position: inside UTF-8 characters, inside events, between CR and LF.
    assert decode([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_decoder_byte_by_byte() -> None:
    assert decode([bytes([byte]) for byte in STREAM]) == EXPECTED


def test_decoder_lone_cr_at_end_of_stream_ends_the_line() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: x\r\r"[:-1]) == []
    assert decoder.feed(b"\r") == []  # could still be CRLF
    assert decoder.close() == [Event(None, b"x", None)]
