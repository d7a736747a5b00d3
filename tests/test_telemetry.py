"""Telemetry: off unless APPLICATIONINSIGHTS_CONNECTION_STRING is set (and then not even
imported: tests/test_imports.py); on, what reaches Application Insights: one trace per
question from the caller's `traceparent`, a request, a `chat {model}` dependency per model
call and an `execute_tool {name}` one per tool call in the GenAI semantic conventions, the
token-usage and duration metrics and the relay's own, no question or answer text unless
asked for, and the per-stream record.

The endpoint is a capture server on 127.0.0.1 speaking the Application Insights ingestion
protocol; the relay runs as the local host's process (OpenTelemetry's state is process-wide),
against the tests' upstream, and exports every 50 ms. Each test sends its own trace id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx2
import orjson
import pytest

from .azurite import Azurite
from .conftest import FAKE_KEY, OWNER_SECRET, RESUMABLE
from .faulty_upstream import FaultyUpstream, Scenario
from .host_process import HostProcess
from .ingestion import Envelope, Ingestion
from .sse_client import Received, chat, read_sse

ROOT = Path(__file__).resolve().parent.parent
KEY = "telemetry-test-key"
EXPORT_AT_ONCE = {
    "OTEL_BSP_SCHEDULE_DELAY": "50",
    "OTEL_BLRP_SCHEDULE_DELAY": "50",
    "OTEL_METRIC_EXPORT_INTERVAL": "200",
}
CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
EMIT = """
import logging
from opentelemetry._logs import get_logger_provider
from responses_relay import telemetry
from responses_relay.settings import load_settings
from responses_relay.telemetry.recorder import Recorder
assert isinstance(telemetry.configure(load_settings()), Recorder)
logging.getLogger("responses_relay.relay").warning(
    "stream ended: outcome=upstream_timeout", extra={"stream_outcome": "upstream_timeout", "stream_deltas": 12}
)
get_logger_provider().force_flush()
"""


def run_python(code: str, environ: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("APPLICATIONINSIGHTS", "OTEL"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "PYTHONPATH": str(ROOT), **environ},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def traceparent(trace_id: str) -> str:
    """A caller's W3C traceparent in trace `trace_id`, from a span of its own."""
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


@pytest.fixture(params=["in-process", "worker"])
def back_end(request: pytest.FixtureRequest) -> str:
    """Where the app runs: in the local host's process, or on the real Functions worker (where the
    server's request span is FastAPI's, and the function runs in another task than the response)."""
    return str(request.param)


@asynccontextmanager
async def relay_host(
    ingestion: Ingestion, upstream: FaultyUpstream, back_end: str, **environ: str
) -> AsyncIterator[httpx2.AsyncClient]:
    """The local host on `back_end` exporting to `ingestion`, and a client with its function key."""
    settings = {"OPENAI_ENDPOINT": upstream.base_url, "OPENAI_API_KEY": FAKE_KEY, "LOCAL_FUNCTION_KEY": KEY}
    arguments = ["--worker"] if back_end == "worker" else []
    host = HostProcess(*arguments, environ={**settings, **ingestion.environ, **EXPORT_AT_ONCE, **environ})
    await asyncio.to_thread(host.start)
    try:
        async with httpx2.AsyncClient(base_url=host.url, timeout=30, headers={"x-functions-key": KEY}) as client:
            yield client
    finally:
        await asyncio.to_thread(host.stop)


async def operation(ingestion: Ingestion, trace_id: str, wanted: Callable[[list[Envelope]], bool]) -> list[Envelope]:
    """The envelopes of trace `trace_id` once they are what is `wanted` (requests, dependencies, records)."""

    def items() -> list[Envelope]:
        return [item for item in (Envelope(raw) for raw in ingestion.received) if item.operation == trace_id]

    await ingestion.wait_until(lambda: wanted(items()), 20)
    return items()


def of_type(items: list[Envelope], base_type: str, name: str | None = None) -> list[Envelope]:
    chosen = [item for item in items if item.item["data"]["baseType"] == base_type]
    return [item for item in chosen if name is None or item.name == name]


def records(items: list[Envelope]) -> list[Envelope]:
    """The stream records among `items`."""
    return [item for item in of_type(items, "MessageData") if item.name.startswith("stream ended")]


def model_calls(items: list[Envelope]) -> list[Envelope]:
    """The `chat` dependencies among `items`, in the order they started."""
    return sorted(of_type(items, "RemoteDependencyData", "chat gpt-4o-mini"), key=lambda item: str(item.item["time"]))


def answered(items: list[Envelope]) -> bool:
    """The request and its model calls have arrived."""
    return bool(of_type(items, "RequestData") and model_calls(items))


def with_response(ingestion: Ingestion, response_id: str) -> list[Envelope]:
    """The model calls, in any trace, that read the response `response_id`."""
    calls = ingestion.envelopes("RemoteDependencyData")
    return [call for call in calls if call.properties.get("gen_ai.response.id") == response_id]


def points(ingestion: Ingestion, name: str, **dimensions: str) -> list[Envelope]:
    """A metric's points whose dimensions include `dimensions` (dots written as __)."""
    wanted = {key.replace("__", "."): value for key, value in dimensions.items()}
    return [
        point
        for point in ingestion.metric_points(name)
        if all(point.properties.get(key) == value for key, value in wanted.items())
    ]


def total(ingestion: Ingestion, name: str, **dimensions: str) -> float:
    return float(sum(point.data["metrics"][0]["value"] for point in points(ingestion, name, **dimensions)))


def usage(received: Received) -> dict[str, int]:
    completed = received.payloads("response.completed")
    return dict(completed[-1]["usage"])


async def test_stream_records_reach_application_insights(ingestion: Ingestion) -> None:
    result = await asyncio.to_thread(run_python, EMIT, ingestion.environ)
    assert result.returncode == 0, result.stderr
    messages = ingestion.messages()
    assert messages, ingestion.received
    data = messages[0]
    assert data["message"] == "stream ended: outcome=upstream_timeout"
    assert data["properties"]["stream_outcome"] == "upstream_timeout"
    assert data["properties"]["stream_deltas"] == "12"


async def test_a_question_is_one_trace_with_its_model_call_and_its_metrics(
    ingestion: Ingestion, upstream: FaultyUpstream, back_end: str
) -> None:
    trace_id = secrets.token_hex(16)
    caller = traceparent(trace_id)
    upstream.set_scenario(Scenario(text="琵琶湖は日本最大の湖です。", delta_seconds=0.001))
    async with relay_host(ingestion, upstream, back_end) as client:
        received = await chat(client, {"input": "滋賀"}, headers={"traceparent": caller})

        def whole(items: list[Envelope]) -> bool:
            return bool(of_type(items, "RequestData") and model_calls(items) and records(items))

        items = await operation(ingestion, trace_id, whole)
        await ingestion.wait_until(lambda: bool(ingestion.metric_points("gen_ai.client.token.usage")), 10)
    [request] = of_type(items, "RequestData")
    [model_call] = model_calls(items)
    [record] = records(items)
    created = received.payloads("response.created")[0]
    port = str(httpx2.URL(upstream.base_url).port)
    # The request continues the caller's span; the model call and the record are inside it.
    assert (request.name, request.parent) == ("POST /api/chat", caller.split("-")[2])
    assert (request.data["responseCode"], request.data["success"]) == ("200", True)
    assert request.properties["relay.route"] == "chat"
    assert request.properties["relay.outcome"] == "completed"
    assert 0 < float(request.properties["relay.stream.time_to_first_delta"]) < 10
    assert model_call.parent == request.data["id"] == record.parent
    assert record.properties["stream_trace_id"] == trace_id
    # The model call: a GenAI dependency whose target is the server (from net.peer.name and its port).
    assert (model_call.data["type"], model_call.data["target"]) == ("GenAI | openai", f"127.0.0.1:{port}")
    assert model_call.data["success"] is True
    assert model_call.properties == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": created["model"],
        "gen_ai.response.id": created["response_id"],
        "gen_ai.request.stream": "True",
        "openai.api.type": "responses",
        "gen_ai.usage.input_tokens": str(usage(received)["input_tokens"]),
        "gen_ai.usage.output_tokens": str(usage(received)["output_tokens"]),
        "gen_ai.response.finish_reasons": "('stop',)",  # a list attribute, as the exporter writes it
    }
    # The metrics of semantic conventions 1.41, with their dimensions.
    model = {"gen_ai__operation__name": "chat", "gen_ai__provider__name": "openai", "server__port": port}
    model |= {"gen_ai__request__model": "gpt-4o-mini", "server__address": "127.0.0.1"}
    assert (
        total(ingestion, "gen_ai.client.token.usage", **model, gen_ai__token__type="input")
        == usage(received)["input_tokens"]
    )
    assert (
        total(ingestion, "gen_ai.client.token.usage", **model, gen_ai__token__type="output")
        == usage(received)["output_tokens"]
    )
    assert points(ingestion, "gen_ai.client.operation.duration", **model)
    # The relay's own.
    assert total(ingestion, "relay.stream.outcomes", relay__route="chat", relay__outcome="completed") == 1
    assert points(ingestion, "relay.stream.time_to_first_delta", relay__route="chat")
    assert points(ingestion, "relay.stream.active", relay__route="chat")


async def test_a_tool_call_is_a_span_between_its_model_calls(
    ingestion: Ingestion, upstream: FaultyUpstream, back_end: str
) -> None:
    trace_id = secrets.token_hex(16)
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    async with relay_host(ingestion, upstream, back_end) as client:
        received = await chat(client, {"input": "京都は今何時？"}, headers={"traceparent": traceparent(trace_id)})

        def whole(items: list[Envelope]) -> bool:
            tools = of_type(items, "RemoteDependencyData", "execute_tool local_time")
            return len(model_calls(items)) == 2 and bool(tools and of_type(items, "RequestData"))

        items = await operation(ingestion, trace_id, whole)
        await ingestion.wait_until(lambda: bool(ingestion.metric_points("relay.tool_rounds")), 10)
    [call] = received.payloads("tool.call")
    [request] = of_type(items, "RequestData")
    first, second = model_calls(items)
    [tool] = of_type(items, "RemoteDependencyData", f"execute_tool {call['name']}")
    assert tool.parent == first.parent == second.parent == request.data["id"]
    assert tool.properties == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call["name"],
        "gen_ai.tool.call.id": call["call_id"],
        "gen_ai.tool.type": "function",
    }
    assert tool.data["success"] is True
    assert first.item["time"] <= tool.item["time"] <= second.item["time"]
    assert first.properties["gen_ai.response.finish_reasons"] == "('tool_call',)"
    assert second.properties["gen_ai.response.finish_reasons"] == "('stop',)"
    assert total(ingestion, "relay.tool_rounds", relay__route="chat") == 1


FAILURES = [
    (Scenario(status=500), "upstream_error", 502),  # refused before the stream
    (Scenario(ending="error_nested", after_deltas=3), "server_error", 200),  # an error event mid-stream
    (Scenario(ending="cut", after_deltas=3), "upstream_connection_lost", 200),  # a cut stream
]


async def test_a_failed_model_call_says_its_error_type(
    ingestion: Ingestion, upstream: FaultyUpstream, back_end: str
) -> None:
    async with relay_host(ingestion, upstream, back_end, UPSTREAM_MAX_RETRIES="0") as client:
        for scenario, code, status in FAILURES:
            trace_id = secrets.token_hex(16)
            upstream.set_scenario(scenario)
            received = await chat(client, {"input": "滋賀"}, headers={"traceparent": traceparent(trace_id)})
            items = await operation(ingestion, trace_id, answered)
            failed = partial(points, ingestion, "gen_ai.client.operation.duration", error__type=code)
            await ingestion.wait_until(failed, 10)
            assert received.status == status
            [request] = of_type(items, "RequestData")
            [model_call] = model_calls(items)
            # Application Insights keeps a GenAI dependency's result code at 0 and leaves error.type out
            # of its properties: the failure is the dependency's success, and its code the relay's outcome.
            assert (model_call.data["success"], model_call.properties["relay.outcome"]) == (False, code)
            assert model_call.properties["gen_ai.response.finish_reasons"] == "('error',)"
            assert (request.data["responseCode"], request.data["success"]) == (str(status), False)
            assert request.properties["relay.outcome"] == code
            if status == 200:
                assert total(ingestion, "relay.stream.outcomes", relay__outcome=code, error__type=code) == 1


@pytest.mark.parametrize("capture", [None, "SPAN_ONLY"])
async def test_no_question_or_answer_text_unless_the_content_switch_asks(
    ingestion: Ingestion, upstream: FaultyUpstream, back_end: str, capture: str | None
) -> None:
    trace_id, question, answer = secrets.token_hex(16), "琵琶湖の秘密を教えて", "湖底には古い遺跡が眠っています。"
    upstream.set_scenario(Scenario(text=answer, delta_seconds=0.001))
    switch = {CAPTURE: capture} if capture is not None else {}
    instructions = {"MODEL_INSTRUCTIONS": "観光ガイドとして答える", **switch}
    async with relay_host(ingestion, upstream, back_end, **instructions) as client:
        received = await chat(client, {"input": question}, headers={"traceparent": traceparent(trace_id)})

        def whole(items: list[Envelope]) -> bool:
            return bool(of_type(items, "RequestData") and model_calls(items) and records(items))

        items = await operation(ingestion, trace_id, whole)
    assert received.text == answer
    everything = orjson.dumps(ingestion.received).decode()
    [model_call] = model_calls(items)
    if capture is None:
        for text in (question, answer, "観光ガイドとして答える"):
            assert text not in everything
        assert not {name for name in model_call.properties if name.endswith(("messages", "instructions"))}
        return
    messages = orjson.loads(model_call.properties["gen_ai.input.messages"])
    assert messages == [{"role": "user", "parts": [{"type": "text", "content": question}]}]
    output = orjson.loads(model_call.properties["gen_ai.output.messages"])
    assert output == [{"role": "assistant", "parts": [{"type": "text", "content": answer}], "finish_reason": "stop"}]
    instructions = orjson.loads(model_call.properties["gen_ai.system_instructions"])
    assert instructions == [{"type": "text", "content": "観光ガイドとして答える"}]


async def test_a_question_and_its_resume_on_another_instance_are_one_trace(
    ingestion: Ingestion, upstream: FaultyUpstream, azurite: Azurite
) -> None:
    trace_id = secrets.token_hex(16)
    answer = "".join(f"湖東の{i}番目の寺です。" for i in range(20))
    # The resume's own stream is cut after 8 frames: healed by the instance it resumed on.
    upstream.set_scenario(Scenario(text=answer, delta_seconds=0.005, chunk_chars=4, stream_cuts=(None, 8)))
    resumable = {**RESUMABLE, "AzureWebJobsStorage": azurite.connection_string}  # the instances' shared storage
    async with (
        relay_host(ingestion, upstream, "in-process", **resumable) as a,
        relay_host(ingestion, upstream, "worker", **resumable) as b,
    ):
        first = await chat(a, {"input": "滋賀"}, stop_after=3, headers={"traceparent": traceparent(trace_id)})
        response_id = first.payloads("response.created")[0]["response_id"]
        last_id = [event.id for event in first.events if event.id is not None][-1]
        resumed = {"traceparent": traceparent(trace_id), "last-event-id": str(last_id)}
        rest = await read_sse(b, "GET", f"/api/chat/{response_id}", headers=resumed)

        def whole(items: list[Envelope]) -> bool:
            return len(of_type(items, "RequestData")) == len(records(items)) == len(model_calls(items)) == 2

        items = await operation(ingestion, trace_id, whole)
        await ingestion.wait_until(partial(points, ingestion, "relay.stream.heals", relay__route="resume"), 10)
    assert first.text + rest.text == answer
    asked, resumed_there = sorted(of_type(items, "RequestData"), key=lambda item: item.item["time"])
    assert (asked.name, resumed_there.name) == ("POST /api/chat", "GET /api/chat/{response_id}")
    assert asked.properties["relay.outcome"] == "client_disconnected"
    assert resumed_there.properties["relay.outcome"] == "completed"
    calls = model_calls(items)
    assert {call.properties["gen_ai.response.id"] for call in calls} == {response_id}
    assert {call.parent for call in calls} == {asked.data["id"], resumed_there.data["id"]}
    assert {record.properties["stream_trace_id"] for record in records(items)} == {trace_id}
    # The caller leaving and the heal, as events of the request each happened in.
    [left] = of_type(items, "MessageData", "relay.disconnect")
    [healed] = of_type(items, "MessageData", "relay.heal")
    assert (left.parent, healed.parent) == (asked.data["id"], resumed_there.data["id"])
    assert healed.properties["relay.heal.cause"] == "upstream_connection_lost"
    # The caller appears only as its keyed hash (the user id), never as its key.
    owner = hmac.new(OWNER_SECRET.encode(), f"key:{KEY}".encode(), hashlib.sha256).hexdigest()
    assert {request.tags["ai.user.id"] for request in (asked, resumed_there)} == {owner}
    assert KEY not in orjson.dumps(ingestion.received).decode()


MALFORMED = [
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper-case hex
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the invalid version
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # no trace
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # no parent
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # version 00 has four fields
    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # a digit short
    "4bf92f3577b34da6a3ce929d0e0e4736",
]


async def test_a_malformed_traceparent_starts_a_new_trace(
    ingestion: Ingestion, upstream: FaultyUpstream, back_end: str
) -> None:
    upstream.set_scenario(Scenario(text="はい。", delta_seconds=0.001))
    async with relay_host(ingestion, upstream, back_end) as client:
        for value in MALFORMED:
            received = await chat(client, {"input": "滋賀"}, headers={"traceparent": value})
            response_id = received.payloads("response.created")[0]["response_id"]

            await ingestion.wait_until(partial(with_response, ingestion, response_id), 20)
            [call] = with_response(ingestion, response_id)
            assert call.operation is not None
            assert re.fullmatch(r"[0-9a-f]{32}", call.operation)
            assert call.operation not in ("4bf92f3577b34da6a3ce929d0e0e4736", "0" * 32)
            await operation(ingestion, call.operation, lambda items: bool(of_type(items, "RequestData")))
            [request] = of_type(ingestion.envelopes("RequestData", call.operation), "RequestData")
            assert request.parent is None  # a root: no caller's span
