"""What the relay tells telemetry, at a few points of a request: the model calls (and their heals),
the tool calls, and how the stream (handed off, cancelled, its caller gone, ...) or the request ended.

These classes are what listens with telemetry off: they do nothing (besides knowing the
caller's trace id, which the stream record carries either way), and nothing of OpenTelemetry
is imported. `recorder.py` subclasses them into spans and metrics when Application Insights
is configured. Each hook is called once per occurrence, never per delta.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from ..trace_context import TraceParent, trace_parent

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from ..chat_request import ChatRequest
    from ..tools import FunctionCall, ToolResult


class ModelCallObserver:
    """One upstream response, from before its request is sent: `UpstreamEvents` tells it of the
    response's `response.created` and terminal events and of each heal of its stream."""

    def created(self, response: Mapping[str, Any]) -> None:
        """`response.created` came: its response object (id, model)."""

    def ended(self, terminal: Mapping[str, Any]) -> None:
        """The response's terminal event came (or its stored response, as `{"response": ...}`)."""

    def healed(self, error: str, after: int | None) -> None:
        """Its stream was cut (`error`) and continued after sequence number `after`."""


class RequestObserver:
    """One request to chat, resume, cancel or give feedback, and the stream it answers with."""

    def __init__(self, route: str, caller: TraceParent | None = None) -> None:
        self.route = route  # chat, resume, cancel or feedback
        self.caller = caller  # the trace context the caller sent, if valid

    @property
    def trace_id(self) -> str | None:
        """The trace the request belongs to: the caller's, when it sent a valid `traceparent`."""
        return self.caller.trace_id if self.caller is not None else None

    def model_call(self, base_url: str, request: ChatRequest | None) -> ModelCallObserver:
        """A model call starts: its request (None: a stored response read again) is about to go to `base_url`."""
        return NO_MODEL_CALL

    def tool_call(self, call: FunctionCall, running: Awaitable[ToolResult]) -> Awaitable[ToolResult]:
        """`running` runs the call; what is awaited in its place."""
        return running

    def stream_started(self) -> None:
        """The stream's body started."""

    def stream_ended(self, outcome: str, *, failed: bool, first_delta_at: float | None, owner: str | None) -> None:
        """The stream's body ended: its outcome (an error code when `failed`), when its first delta came
        (`time.monotonic()`), whose it was (the owner's keyed hash)."""

    def error(self, code: str) -> None:
        """The request was answered with an error before any stream."""

    def respond(self, response: Response) -> Response:
        """What is sent in place of `response` (the same response, observed while it is sent)."""
        return response


class Observer:
    """Makes each request's observer."""

    def request(self, route: str, request: Request) -> RequestObserver:
        return RequestObserver(route, trace_parent(request))


NO_MODEL_CALL = ModelCallObserver()
UNOBSERVED = RequestObserver("chat")  # the defaults of what is made without an observer (some tests)
