"""The relay's hooks (observer.py) as OpenTelemetry spans and metrics, in the GenAI semantic
conventions (names.py says which version). Imported only with telemetry on.

Per request: a SERVER span, the one the host's server made when it made one (FastAPI's own
telemetry does under the Functions worker; the span is current while the response is sent),
else the relay's own, continuing the caller's `traceparent`. Under the worker a function runs
in another task than the server that sends its response, so which span it is is known only
when the response starts to be sent: spans and events that come before that wait for it, each
with the time it happened. Inside the request span: a CLIENT span per model call (`chat
{model}`), an INTERNAL span per tool call (`execute_tool {name}`), and span events for heals,
hand-offs, cancels and disconnects. Nothing is done per delta.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from time import monotonic, time_ns
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..errors import BUDGET_EXCEEDED, INTERNAL_ERROR
from ..trace_context import TraceParent, trace_parent
from . import content, names
from .observer import ModelCallObserver, Observer, RequestObserver

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..chat_request import ChatRequest
    from ..settings import Settings
    from ..tools import FunctionCall, ToolResult

# GenAI's provider name for each kind of upstream; the demo speaks OpenAI's API.
PROVIDERS = {"azure-openai": "azure.ai.openai", "openai-compatible": "openai", "demo": "openai"}
# A response's status (or an incomplete one's reason) as the conventions' finish reason.
_FINISH_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
_DEFAULT_PORTS = {"https": 443, "http": 80}
# On a heal event: why the stream was cut (an error code), and the last sequence number relayed
# (error.type would do, but Application Insights leaves it out of an event's properties).
_HEAL_CAUSE = "relay.heal.cause"
_CURSOR = "relay.cursor"
HANDED_OFF = "handed_off"
# The outcomes that are events on the request span too, when the stream ends so.
_STREAM_EVENTS = {HANDED_OFF: "relay.hand_off", "cancelled": "relay.cancel", "client_disconnected": "relay.disconnect"}
_USER = "enduser.pseudo.id"  # the owner's keyed hash: Application Insights' user id

Instrument = metrics.Histogram | metrics.Counter | metrics.UpDownCounter


class Recorder(Observer):
    def __init__(self, settings: Settings) -> None:
        self.tracer = trace.get_tracer("responses_relay", schema_url=names.SCHEMA_URL)
        meter = metrics.get_meter("responses_relay", schema_url=names.SCHEMA_URL)
        self.instruments = {metric.name: _instrument(meter, metric) for metric in names.METRICS}
        self.provider = PROVIDERS[settings.upstream_kind]
        self.model = settings.model
        self.capture = settings.telemetry.capture_content
        self.instructions = settings.instructions

    def request(self, route: str, request: Request) -> RequestRecording:
        return RequestRecording(self, route, request)

    def add(self, metric: names.Metric, value: float, attributes: Mapping[str, Any]) -> None:
        instrument = self.instruments[metric.name]
        if isinstance(instrument, metrics.Histogram):
            instrument.record(value, attributes)
        else:
            instrument.add(value, attributes)


class RequestRecording(RequestObserver):
    def __init__(self, recorder: Recorder, route: str, request: Request) -> None:
        super().__init__(route, trace_parent(request))
        self.recorder = recorder
        self._started = time_ns()
        self._started_monotonic = monotonic()
        self._method = request.method
        self._route_template = _route_template(request.url.path, request.path_params)
        self._span: Span | None = None  # the request span, once the response starts to be sent
        self._own_span = False
        self._waiting: list[Callable[[Span], None]] = []  # what needs the request span, in order
        self._open_calls: list[ModelCallRecording] = []
        self._model_calls = 0
        self._streaming = False
        self._error: str | None = None

    @property
    def trace_id(self) -> str | None:
        if self._span is not None:
            return format(self._span.get_span_context().trace_id, "032x")
        return super().trace_id

    @property
    def route_attributes(self) -> dict[str, Any]:
        return {names.ROUTE: self.route}

    def model_call(self, base_url: str, request: ChatRequest | None) -> ModelCallObserver:
        self._model_calls += 1
        if self._model_calls > 1:  # the answer goes on after tool calls
            self.recorder.add(names.TOOL_ROUNDS, 1, self.route_attributes)
        call = ModelCallRecording(self, base_url, request)
        self._open_calls.append(call)
        return call

    def tool_call(self, call: FunctionCall, running: Awaitable[ToolResult]) -> Awaitable[ToolResult]:
        return self._tool_call(call, running)

    async def _tool_call(self, call: FunctionCall, running: Awaitable[ToolResult]) -> ToolResult:
        started = time_ns()
        result: ToolResult | None = None
        try:
            result = await running
            return result
        finally:
            ended = time_ns()
            self.with_span(lambda parent: self._tool_span(parent, call, result, started, ended))

    def _tool_span(self, parent: Span, call: FunctionCall, result: ToolResult | None, started: int, ended: int) -> None:
        attributes: dict[str, Any] = {
            names.OPERATION: "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.call_id,
            "gen_ai.tool.type": "function",
        }
        error = "cancelled" if result is None else result.error
        if error is not None:
            attributes[names.ERROR_TYPE] = error
        if self.recorder.capture:
            attributes[content.TOOL_ARGUMENTS] = call.arguments
            if result is not None:
                attributes[content.TOOL_RESULT] = result.output
        span = self.recorder.tracer.start_span(
            f"execute_tool {call.name}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=started,
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=ended)

    def healed(self, error: str, after: int | None) -> None:
        self.recorder.add(names.HEALS, 1, self.route_attributes)
        self._event("relay.heal", {_HEAL_CAUSE: error, _CURSOR: -1 if after is None else after})

    def _event(self, name: str, attributes: Mapping[str, Any]) -> None:
        at = time_ns()
        self.with_span(lambda span: span.add_event(name, attributes, timestamp=at))

    def stream_started(self) -> None:
        self._streaming = True
        self.recorder.add(names.ACTIVE_STREAMS, 1, self.route_attributes)

    def stream_ended(self, outcome: str, *, failed: bool, first_delta_at: float | None, owner: str | None) -> None:
        code = outcome.split(":")[0]  # incomplete:max_output_tokens counts as incomplete
        first_delta_seconds = None if first_delta_at is None else first_delta_at - self._started_monotonic
        if self._streaming:
            self._streaming = False
            self.recorder.add(names.ACTIVE_STREAMS, -1, self.route_attributes)
        counted = {**self.route_attributes, names.OUTCOME: code, **({names.ERROR_TYPE: code} if failed else {})}
        self.recorder.add(names.STREAM_OUTCOMES, 1, counted)
        if first_delta_seconds is not None:
            self.recorder.add(names.FIRST_DELTA, first_delta_seconds, self.route_attributes)
        if code == BUDGET_EXCEEDED.code:
            self.recorder.add(names.BUDGET_REFUSALS, 1, self.route_attributes)
        if code == HANDED_OFF:
            self.recorder.add(names.HAND_OFFS, 1, self.route_attributes)
        if code in _STREAM_EVENTS:
            self._event(_STREAM_EVENTS[code], {})
        self._end_calls(code, failed=failed)
        figures: dict[str, Any] = {names.OUTCOME: outcome}
        if first_delta_seconds is not None:
            figures[names.TIME_TO_FIRST_DELTA] = first_delta_seconds
        if owner is not None:
            figures[_USER] = owner
        self.with_span(lambda span: _finish_stream(span, figures, outcome if failed else None))

    def error(self, code: str) -> None:
        self._error = code
        if code == BUDGET_EXCEEDED.code:
            self.recorder.add(names.BUDGET_REFUSALS, 1, self.route_attributes)
        self._end_calls(code, failed=True)
        self.with_span(lambda span: span.set_attribute(names.OUTCOME, code))

    def _end_calls(self, outcome: str, *, failed: bool) -> None:
        """Model calls that did not end by themselves end with the stream (or the request)."""
        for call in list(self._open_calls):
            call.finish(outcome, error=outcome if failed or call.failed else None)

    def closing(self, call: ModelCallRecording) -> bool:
        """True the first time a call ends: a call ends once."""
        if call not in self._open_calls:
            return False
        self._open_calls.remove(call)
        return True

    def respond(self, response: Response) -> Response:
        return ObservedResponse(response, self)

    def with_span(self, use: Callable[[Span], None]) -> None:
        """Use the request span now, or once it is known."""
        if self._span is None:
            self._waiting.append(use)
        else:
            use(self._span)

    def serving(self, scope: Scope) -> Span:
        """The response starts to be sent: the request span is the server's, when it made one, else the
        relay's own (from the request's start); what waited for it is done now."""
        name = f"{self._method} {self._route_template}"
        current = trace.get_current_span()
        if current.is_recording() and getattr(current, "kind", None) is SpanKind.SERVER:
            self._span = current
            current.update_name(name)
            # FastAPI's own telemetry names the worker's catch-all route (/{path}) at the request's end.
            server = scope.get("fastapi.telemetry")
            if server is not None and hasattr(server, "route"):
                server.route = self._route_template
        else:
            self._own_span = True
            self._span = self.recorder.tracer.start_span(
                name,
                context=_caller_context(self.caller),
                kind=SpanKind.SERVER,
                attributes={"http.request.method": self._method, "url.path": scope.get("path", "")},
                start_time=self._started,
            )
        self._span.set_attributes({"http.route": self._route_template, **self.route_attributes})
        waiting, self._waiting = self._waiting, []
        for use in waiting:
            use(self._span)
        return self._span

    def served(self, status: int, failure: BaseException | None) -> None:
        if self._open_calls:  # the response ended without saying how (it raised)
            self._end_calls(self._error or INTERNAL_ERROR.code, failed=True)
        span = self._span
        if span is None or not self._own_span:
            return
        span.set_attribute("http.response.status_code", status)
        if failure is not None or status >= 500:
            span.set_attribute(names.ERROR_TYPE, type(failure).__qualname__ if failure is not None else str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class ModelCallRecording(ModelCallObserver):
    """A `chat {model}` span, made when the call ends (with the time it started)."""

    def __init__(self, request: RequestRecording, base_url: str, chat_request: ChatRequest | None) -> None:
        self._request = request
        self._recorder = request.recorder
        self._started = time_ns()
        self._ended: int | None = None
        url = urlsplit(base_url)
        self._host = url.hostname or ""
        self._port = url.port or _DEFAULT_PORTS.get(url.scheme, 80)
        self._default_port = url.port is None or url.port == _DEFAULT_PORTS.get(url.scheme)
        captured = chat_request is not None and self._recorder.capture
        self._input = content.input_messages(chat_request) if captured and chat_request is not None else None
        self._response: Mapping[str, Any] = {}
        self._terminal: Mapping[str, Any] = {}
        self.failed = False  # its terminal event was a failure, whose code is the stream's outcome

    def created(self, response: Mapping[str, Any]) -> None:
        self._response = response

    def ended(self, terminal: Mapping[str, Any]) -> None:
        self._ended = time_ns()
        self._terminal = terminal
        response = terminal.get("response")
        if isinstance(response, Mapping):
            self._response = {**self._response, **response}
        if terminal.get("type") == "error" or self._response.get("status") == "failed":
            self.failed = True  # ends with the stream, which says its code
        else:
            self.finish(None, error=None)

    def healed(self, error: str, after: int | None) -> None:
        self._request.healed(error, after)

    def finish(self, outcome: str | None, *, error: str | None) -> None:
        if not self._request.closing(self):
            return
        ended = self._ended or time_ns()
        self._request.with_span(lambda parent: self._record(parent, ended, outcome, error))

    def _record(self, parent: Span, ended: int, outcome: str | None, error: str | None) -> None:
        recorder, response = self._recorder, self._response
        measured: dict[str, Any] = {
            names.OPERATION: "chat",
            names.PROVIDER: recorder.provider,
            names.REQUEST_MODEL: recorder.model,
            names.SERVER_ADDRESS: self._host,
            names.SERVER_PORT: self._port,
        }
        if isinstance(response.get("model"), str):
            measured[names.RESPONSE_MODEL] = response["model"]
        attributes = {**measured, **self._attributes(outcome, error)}
        span = recorder.tracer.start_span(
            f"chat {recorder.model}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=self._started,
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=ended)
        recorder.add(names.OPERATION_DURATION, (ended - self._started) / 1e9, _with_error(measured, error))
        usage = response.get("usage")
        for kind in ("input", "output"):
            tokens = usage.get(f"{kind}_tokens") if isinstance(usage, Mapping) else None
            if type(tokens) is int:
                recorder.add(names.TOKEN_USAGE, tokens, {**measured, names.TOKEN_TYPE: kind})

    def _attributes(self, outcome: str | None, error: str | None) -> dict[str, Any]:
        """What the span has besides the metrics' dimensions."""
        recorder, response = self._recorder, self._response
        attributes: dict[str, Any] = {
            names.SYSTEM: recorder.provider,
            names.PEER_NAME: self._host,
            "gen_ai.request.stream": True,
            "openai.api.type": "responses",
        }
        if not self._default_port:
            attributes[names.PEER_PORT] = self._port
        if isinstance(response.get("id"), str):
            attributes["gen_ai.response.id"] = response["id"]
        usage = response.get("usage")
        for kind in ("input", "output"):
            tokens = usage.get(f"{kind}_tokens") if isinstance(usage, Mapping) else None
            if type(tokens) is int:
                attributes[f"gen_ai.usage.{kind}_tokens"] = tokens
        finish_reason = _finish_reason(response, error)
        if finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = (finish_reason,)
        if error is not None:
            attributes[names.ERROR_TYPE] = error
        if outcome is not None or error is not None:
            attributes[names.OUTCOME] = error or outcome
        if recorder.capture:
            attributes[content.SYSTEM_INSTRUCTIONS] = content.system_instructions(recorder.instructions)
            if self._input is not None:
                attributes[content.INPUT_MESSAGES] = self._input
            output = response.get("output")
            if isinstance(output, list):
                attributes[content.OUTPUT_MESSAGES] = content.to_json(content.output_messages(output, finish_reason))
        return attributes


class ObservedResponse(Response):
    """A response sent with its request span current (the server's, or the relay's own, ended after it)."""

    def __init__(self, response: Response, recording: RequestRecording) -> None:
        # Not Response.__init__: the response is the one given, sent as it is.
        self.response = response
        self.recording = recording
        self.status_code = response.status_code
        self.background = None  # a task the server may add, run after the response as Starlette does
        self.raw_headers = response.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = self.recording.serving(scope)
        token = otel_context.attach(trace.set_span_in_context(span))
        failure: BaseException | None = None
        try:
            await self.response(scope, receive, send)
            if self.background is not None:
                await self.background()
        except BaseException as error:
            failure = error
            raise
        finally:
            self.recording.served(self.status_code, failure)
            otel_context.detach(token)


def _instrument(meter: metrics.Meter, metric: names.Metric) -> Instrument:
    if metric.instrument == "histogram":
        return meter.create_histogram(
            metric.name,
            unit=metric.unit,
            description=metric.description,
            explicit_bucket_boundaries_advisory=list(metric.buckets) or None,
        )
    if metric.instrument == "counter":
        return meter.create_counter(metric.name, unit=metric.unit, description=metric.description)
    return meter.create_up_down_counter(metric.name, unit=metric.unit, description=metric.description)


def _caller_context(caller: TraceParent | None) -> otel_context.Context | None:
    """The caller's trace context as the parent of the relay's request span; None starts a new trace."""
    if caller is None:
        return None
    flags = TraceFlags(TraceFlags.SAMPLED if caller.sampled else TraceFlags.DEFAULT)
    state = TraceState.from_header([caller.tracestate]) if caller.tracestate else None
    parent = SpanContext(int(caller.trace_id, 16), int(caller.parent_id, 16), True, flags, state)
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _finish_stream(span: Span, figures: Mapping[str, Any], failure: str | None) -> None:
    span.set_attributes(figures)
    if failure is not None:  # the HTTP answer was 200, but the answer did not come
        span.set_status(Status(StatusCode.ERROR, failure))


def _finish_reason(response: Mapping[str, Any], error: str | None) -> str | None:
    """The conventions' finish reason: stop, length, content_filter, tool_call or error (else the status)."""
    status = response.get("status")
    if error is not None or status == "failed":
        return "error"
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, Mapping) else None
        return _FINISH_REASONS.get(str(reason), str(reason))
    if status == "completed":
        output = response.get("output")
        asks = isinstance(output, list) and any(
            isinstance(item, Mapping) and item.get("type") in ("function_call", "mcp_approval_request")
            for item in output
        )
        return "tool_call" if asks else "stop"
    return status if isinstance(status, str) else None


def _route_template(path: str, parameters: Mapping[str, Any]) -> str:
    """The route the path matched: `/api/chat/resp_1/cancel` -> `/api/chat/{response_id}/cancel`."""
    segments = {str(value): f"{{{name}}}" for name, value in parameters.items()}
    return "/".join(segments.get(segment, segment) for segment in path.split("/"))


def _with_error(attributes: Mapping[str, Any], error: str | None) -> dict[str, Any]:
    return {**attributes, names.ERROR_TYPE: error} if error is not None else dict(attributes)
