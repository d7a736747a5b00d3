"""The caller's W3C trace context: only W3C's format is a trace to continue (the relay's request
span and the stream record follow it); anything else starts a new trace. The relay's parser
agrees with OpenTelemetry's own (which FastAPI's request spans use under the worker) on every
header, so a trace is continued, or not, alike on every host."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from responses_relay.trace_context import TraceParent, parse_traceparent

HEX = "0123456789abcdef"


def digits(count: int) -> st.SearchStrategy[str]:
    """`count` hex digits; now and then with upper-case ones, a digit too few or too many, or all zero."""
    lower = st.text(alphabet=HEX, min_size=count, max_size=count)
    mixed = st.text(alphabet=HEX + "ABCDEF", min_size=count - 1, max_size=count + 1)
    return st.one_of(lower, lower, lower, lower.map(str.upper), mixed, st.just("0" * count))


traceparents = st.builds(
    lambda version, trace_id, parent_id, flags, rest: f"{version}-{trace_id}-{parent_id}-{flags}{rest}",
    st.one_of(st.just("00"), digits(2)),
    digits(32),
    digits(16),
    digits(2),
    st.sampled_from(["", "", "-", "-x", "x"]),
)


def test_a_w3c_traceparent_is_read() -> None:
    parsed = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert parsed == TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", sampled=True, tracestate=None)
    unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    assert unsampled is not None
    assert not unsampled.sampled
    # A later version may carry more fields.
    assert parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")


def _opentelemetry_reads(value: str) -> tuple[str, str] | None:
    context = TraceContextTextMapPropagator().extract({"traceparent": value})
    span = trace.get_current_span(context).get_span_context()
    return (format(span.trace_id, "032x"), format(span.span_id, "016x")) if span.is_valid else None


@settings(max_examples=500)
@given(st.one_of(traceparents, st.text(max_size=80)))
@example("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
@example("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
@example("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01")
@example("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01")
@example("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A")
@example("00-00000000000000000000000000000000-00f067aa0ba902b7-01")
@example("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01")
@example("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")
@example("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0")
def test_the_relay_continues_a_trace_exactly_when_opentelemetry_does(value: str) -> None:
    parsed = parse_traceparent(value.strip())
    assert ((parsed.trace_id, parsed.parent_id) if parsed else None) == _opentelemetry_reads(value)
