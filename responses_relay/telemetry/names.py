"""Every metric the relay emits, with its unit and dimensions, and the attributes of its request
spans that queries read: the one list that the recorder makes its instruments from, the README
lists, and the template's workbook and alert rules are checked against (tests/test_infra.py).

The GenAI names are those of OpenTelemetry's semantic conventions 1.41.0
(`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`); the newer GenAI conventions
(the semantic-conventions-genai repository) rename them, and the relay keeps 1.41.0's until
Application Insights reads the new ones. The relay's own are under `relay.`, and stable: a
rename would break the workbook, the alerts and any query an operator saved.
"""

from __future__ import annotations

from dataclasses import dataclass

SEMANTIC_CONVENTIONS = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMANTIC_CONVENTIONS}"

# Attributes and dimensions (OpenTelemetry's, then the relay's own).
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # the older name of the provider, which Application Insights still reads
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
TOKEN_TYPE = "gen_ai.token.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
PEER_NAME = "net.peer.name"  # the older name of the server's address: Application Insights' dependency target
PEER_PORT = "net.peer.port"
ERROR_TYPE = "error.type"
# chat, resume, cancel, feedback, conversations or conversation: the request's (a stream's: chat or resume)
ROUTE = "relay.route"
# completed, incomplete, cancelled, requires_approval, handed_off, client_disconnected, or an error code
OUTCOME = "relay.outcome"
TIME_TO_FIRST_DELTA = "relay.stream.time_to_first_delta"

_GEN_AI = (OPERATION, PROVIDER, REQUEST_MODEL, RESPONSE_MODEL, SERVER_ADDRESS, SERVER_PORT)


@dataclass(frozen=True)
class Metric:
    name: str
    instrument: str  # histogram, counter or up_down_counter
    unit: str  # UCUM, as OpenTelemetry writes it
    dimensions: tuple[str, ...]
    description: str
    buckets: tuple[float, ...] = ()  # a histogram's bucket boundaries, where the conventions give them


TOKEN_USAGE = Metric(
    "gen_ai.client.token.usage",
    "histogram",
    "{token}",
    (*_GEN_AI, TOKEN_TYPE),
    "Tokens used by a model call",
    tuple(4.0**power for power in range(14)),  # 1, 4, 16, ... 67108864
)
OPERATION_DURATION = Metric(
    "gen_ai.client.operation.duration",
    "histogram",
    "s",
    (*_GEN_AI, ERROR_TYPE),
    "Duration of a model call",
    tuple(0.01 * 2.0**power for power in range(14)),  # 0.01, 0.02, 0.04, ... 81.92
)
FIRST_DELTA = Metric(
    TIME_TO_FIRST_DELTA, "histogram", "s", (ROUTE,), "From the request to the first delta sent to the caller"
)
ACTIVE_STREAMS = Metric("relay.stream.active", "up_down_counter", "{stream}", (ROUTE,), "Streams being sent")
STREAM_OUTCOMES = Metric(
    "relay.stream.outcomes", "counter", "{stream}", (ROUTE, OUTCOME, ERROR_TYPE), "Streams ended, by outcome"
)
HEALS = Metric("relay.stream.heals", "counter", "{heal}", (ROUTE,), "Cut upstream streams continued by the relay")
HAND_OFFS = Metric(
    "relay.stream.hand_offs", "counter", "{stream}", (ROUTE,), "Streams handed off to a resume at their time limit"
)
TOOL_ROUNDS = Metric("relay.tool_rounds", "counter", "{round}", (ROUTE,), "Model calls that continue after tool calls")
BUDGET_REFUSALS = Metric(
    "relay.budget.refusals", "counter", "{request}", (ROUTE,), "Requests refused for a spent daily token budget"
)

METRICS = (
    TOKEN_USAGE,
    OPERATION_DURATION,
    FIRST_DELTA,
    ACTIVE_STREAMS,
    STREAM_OUTCOMES,
    HEALS,
    HAND_OFFS,
    TOOL_ROUNDS,
    BUDGET_REFUSALS,
)
# Per-stream figures on each request span (Application Insights' `requests`, as custom dimensions),
# where percentiles can be taken: a histogram reaches Application Insights as sums and counts only.
REQUEST_ATTRIBUTES = (ROUTE, OUTCOME, TIME_TO_FIRST_DELTA)
# Span events on the request span (Application Insights' `traces`, in the operation).
EVENTS = ("relay.heal", "relay.hand_off", "relay.cancel", "relay.disconnect")


def dimensions() -> frozenset[str]:
    """Every dimension of the metrics and every request attribute: what queries may name."""
    return frozenset(name for metric in METRICS for name in metric.dimensions) | frozenset(REQUEST_ATTRIBUTES)
