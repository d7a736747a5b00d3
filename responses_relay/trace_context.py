"""The W3C trace context a caller sends (`traceparent`, and `tracestate` with it), which the
relay continues: the page sends one per question, so the question, its resumes on any
instance and the model calls are one trace, and the stream record carries its trace id.

Only the W3C format is accepted (https://www.w3.org/TR/trace-context/#traceparent-header):
anything else, or the header given twice, is no trace context, and the relay starts a new
trace. Pure: nothing of OpenTelemetry is imported here, so the record has the trace id with
telemetry off too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.ASCII | re.DOTALL)
_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16


@dataclass(frozen=True)
class TraceParent:
    trace_id: str  # 32 lowercase hex digits
    parent_id: str  # 16 lowercase hex digits: the caller's span
    sampled: bool
    tracestate: str | None  # the vendors' list that comes with it, passed on unread


def parse_traceparent(value: str) -> TraceParent | None:
    """The header's fields, or None when it is not W3C's format: version `00` is exactly the four
    fields; a later version may add fields after a `-`; version `ff`, an all-zero trace id or
    parent id, and upper-case hex are invalid."""
    match = _FORMAT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _NO_TRACE or parent_id == _NO_SPAN:
        return None
    return TraceParent(trace_id, parent_id, sampled=bool(int(flags, 16) & 1), tracestate=None)


def trace_parent(request: Request) -> TraceParent | None:
    """The request's trace context: its one `traceparent`, with its `tracestate`; None without a valid one."""
    values = request.headers.getlist(TRACEPARENT)
    parent = parse_traceparent(values[0].strip()) if len(values) == 1 else None
    if parent is None:
        return None
    states = [state.strip() for state in request.headers.getlist(TRACESTATE) if state.strip()]
    return TraceParent(parent.trace_id, parent.parent_id, parent.sampled, ",".join(states) or None)
