"""The app on the real worker Azure runs it on for this interpreter (Python 3.11 and 3.12:
the Azure Functions Python worker, vendored; 3.13: azure-functions-runtime behind the
project's proxy worker), driven over gRPC by the local host's worker back end, as Azure
drives it: indexing, the relay's contract through the worker's own web server, disconnects,
logs and telemetry, and a worker that breaks. `scripts/test` runs them on 3.11, 3.12 and 3.13.

The local host runs as a process (`python -m responses_relay.local_host --worker`) on this
interpreter; the upstream is the demo upstream in this process, as in the other tests.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path

import httpx2
import orjson
import pytest

from responses_relay.service import ChatService
from responses_relay.settings import Settings

from .attachment_files import asking, image_part, png_claiming
from .azurite import Azurite
from .conftest import DEFAULT_LIMITS, FAKE_KEY, RESUMABLE, serve
from .faulty_upstream import FaultyUpstream, Scenario
from .host_process import ROOT, HostProcess
from .ingestion import Envelope, Ingestion
from .sse_client import chat, read_sse
from .test_telemetry import EXPORT_AT_ONCE, model_calls, of_type, operation, records, traceparent

KEY = "worker-test-key"
TEXT = "琵琶湖は日本最大の湖です。湖東の城下町や比叡山、近江牛もお楽しみください！"
KEYED = {"x-functions-key": KEY}
# What runs the app here: the back end as the host names it, and the worker as health names it.
if sys.version_info >= (3, 13):
    BACK_END = "azure-functions-runtime 1.3.0 behind the project's proxy worker"
    WORKER = "azure-functions-runtime 1.3.0"
else:
    BACK_END = "Azure Functions Python worker 4.34.0"
    WORKER = "azure-functions-worker 4.34.0"


def worker_environ(upstream: FaultyUpstream, **extra: str) -> dict[str, str]:
    return {
        "OPENAI_ENDPOINT": upstream.base_url,
        "OPENAI_API_KEY": FAKE_KEY,
        "LOCAL_FUNCTION_KEY": KEY,
        "SHUTDOWN_GRACE_SECONDS": "1",
        **extra,
    }


@pytest.fixture(scope="module")
def worker_host(upstream_server: FaultyUpstream) -> Iterator[HostProcess]:
    host = HostProcess("--worker", environ=worker_environ(upstream_server))
    host.start()
    yield host
    assert host.stop() == -signal.SIGTERM, host.output


@pytest.fixture
async def client(worker_host: HostProcess, upstream: FaultyUpstream) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=worker_host.url, timeout=30) as client:
        yield client


def test_routes_methods_and_auth_levels_come_from_the_workers_index(worker_host: HostProcess) -> None:
    listed = {
        match[1]: (match[2], match[3], match[4])
        for line in worker_host.lines
        if (match := re.fullmatch(r"\s+(\w+): \[([A-Z,]+)\] http://[\d.:]+(\S+) \(auth: (\w+)\)", line))
    }
    assert listed == {
        "chat": ("POST", "/api/chat", "function"),
        "resume": ("GET", "/api/chat/{response_id}", "function"),
        "cancel": ("POST", "/api/chat/{response_id}/cancel", "function"),
        "conversations": ("GET,POST", "/api/conversations", "function"),
        "conversation": ("DELETE,GET,PATCH", "/api/conversations/{conversation_id}", "function"),
        "ai_sdk_chat": ("POST", "/api/ai-sdk/chat", "function"),
        "ai_sdk_resume": ("GET", "/api/ai-sdk/chat/{chat_id}/stream", "function"),
        "ag_ui_run": ("POST", "/api/ag-ui", "function"),
        "ag_ui_resume": ("GET", "/api/ag-ui/{thread_id}/runs/{run_id}", "function"),
        "feedback": ("POST", "/api/feedback", "function"),
        "health": ("GET", "/api/health", "anonymous"),
    }
    assert f"back end: {BACK_END})" in worker_host.output


async def test_patch_and_delete_reach_the_function(client: httpx2.AsyncClient) -> None:
    # Without an owner secret or storage account conversations are off: the function itself says so.
    answers = [
        await client.request(method, "/api/conversations/conv_abc", headers=KEYED, json={"title": "x"})
        for method in ("PATCH", "DELETE")
    ]
    assert [(answer.status_code, answer.json()["error"]["code"]) for answer in answers] == [
        (404, "conversations_disabled")
    ] * 2


async def test_health_and_the_function_key(client: httpx2.AsyncClient) -> None:
    health = await client.get("/api/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "upstream": "openai-compatible",
        "model": "gpt-4o-mini",
        "resumable": False,
        "auth": "key",
        "python": platform.python_version(),
        "worker": WORKER,
        "stores_responses": False,
        "budget": None,
        "conversations": False,
        "feedback": False,
        "limits": DEFAULT_LIMITS,
    }
    unkeyed = await client.post("/api/chat", json={"input": "hi"})
    assert (unkeyed.status_code, unkeyed.json()["error"]["code"]) == (401, "unauthorized")
    wrong_method = await client.get("/api/chat", headers=KEYED)
    assert wrong_method.status_code == 405


async def test_the_answer_streams_through_the_worker_as_it_is_generated(
    client: httpx2.AsyncClient, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(text=TEXT, delta_seconds=0.02))
    received = await chat(client, {"input": "滋賀県について教えてください。"}, headers=KEYED)
    assert received.status == 200
    assert received.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert received.headers["cache-control"] == "no-cache, no-transform"
    assert received.raw.startswith(b": stream open\n\n")
    assert received.text == TEXT
    assert [event.event for event in received.terminals] == ["response.completed"]
    deltas = [at for at, event in received.arrivals if event.event == "response.output_text.delta"]
    # Paced 20 ms apart upstream: buffered anywhere on the way, they would arrive together.
    assert len(deltas) > 10
    assert deltas[-1] - deltas[0] > 0.15


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "invalid_json"),
        (b'{"input": [{"role": "system", "content": "x"}]}', {}, 400, "invalid_request"),
        (b'{"input": "hi"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (orjson.dumps(asking(*[{"type": "input_image", "image_url": "data:,"}] * 5)), {}, 413, "attachment_too_large"),
        (orjson.dumps(asking(image_part(png_claiming(16_000, 16_000)))), {}, 400, "bad_attachment"),
    ],
)
async def test_bad_requests_get_the_same_errors_as_in_process(
    client: httpx2.AsyncClient, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    reply = await client.post(
        "/api/chat", content=body, headers={"content-type": "application/json", **KEYED, **headers}
    )
    assert (reply.status_code, reply.json()["error"]["code"]) == (status, code)


async def test_a_caller_who_leaves_closes_the_upstream_within_a_second(
    client: httpx2.AsyncClient, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(ending="stall", after_deltas=3, delta_seconds=0.001))
    received = await chat(client, {"input": "hi"}, headers=KEYED, stop_after=1)  # deltas of one read merge
    left_at = time.monotonic()
    assert received.text
    record = upstream.records[-1]
    assert await asyncio.to_thread(record.ended.wait, 1.0), "the upstream connection is still open"
    assert record.client_left
    assert record.ended_at is not None
    assert record.ended_at - left_at < 1.0


async def test_concurrent_streams_each_get_their_own_answer(
    client: httpx2.AsyncClient, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.005))
    questions = ["京都", "奈良", "滋賀", "Kyoto", "Nara", "Shiga", "京都", "Nara"]
    answers = await asyncio.gather(*(chat(client, {"input": q}, headers=KEYED) for q in questions))
    alone = [await chat(client, {"input": q}, headers=KEYED) for q in questions[:6]]
    assert [answer.status for answer in answers] == [200] * len(questions)
    assert [answer.text for answer in answers[:6]] == [answer.text for answer in alone]
    assert len({answer.text for answer in answers}) == 6
    assert all(len(answer.terminals) == 1 for answer in answers)


async def test_each_stream_record_names_its_invocation(
    client: httpx2.AsyncClient, worker_host: HostProcess, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    await chat(client, {"input": "京都"}, headers=KEYED)
    await chat(client, {"input": "奈良"}, headers=KEYED)
    executed = [line for line in worker_host.lines if "Executed 'Functions.chat' (Succeeded" in line]
    invocation = executed[-1].split("Id=")[1].split(",")[0]
    ended = f"stream ended: invocation_id={invocation} trace_id=None outcome=completed"  # no traceparent sent
    record = await asyncio.to_thread(worker_host.wait_for, lambda line: ended in line)
    assert "deltas=" in record
    assert "usage={" in record


def whole_stream(items: list[Envelope]) -> bool:
    """The request, its model call and its stream record have all arrived."""
    return bool(of_type(items, "RequestData") and model_calls(items) and records(items))


async def test_traces_metrics_and_stream_records_reach_application_insights_from_inside_the_worker(
    upstream: FaultyUpstream, ingestion: Ingestion
) -> None:
    """tests/test_telemetry.py has the rest, on this worker and in process; this runs on every worker."""
    upstream.set_scenario(Scenario(delta_seconds=0.001))
    host = HostProcess("--worker", environ=worker_environ(upstream, **EXPORT_AT_ONCE, **ingestion.environ))
    trace_id = secrets.token_hex(16)
    await asyncio.to_thread(host.start)
    try:
        async with httpx2.AsyncClient(base_url=host.url, timeout=30) as client:
            received = await chat(client, {"input": "京都"}, headers={**KEYED, "traceparent": traceparent(trace_id)})
        assert received.text
        line = await asyncio.to_thread(host.wait_for, lambda line: "Executed 'Functions.chat'" in line)
        invocation = line.split("Id=")[1].split(",")[0]
        items = await operation(ingestion, trace_id, whole_stream)
        await ingestion.wait_until(partial(ingestion.metric_points, "gen_ai.client.token.usage"), 20)
    finally:
        assert await asyncio.to_thread(host.stop) == -signal.SIGTERM, host.output
    [request] = of_type(items, "RequestData")  # FastAPI's own span, named by the relay's route
    [model_call] = model_calls(items)
    [record] = records(items)
    assert (request.name, request.properties["relay.outcome"]) == ("POST /api/chat", "completed")
    assert model_call.parent == record.parent == request.data["id"]
    assert model_call.properties["gen_ai.response.id"] == received.payloads("response.created")[0]["response_id"]
    assert record.properties["stream_invocation_id"] == invocation
    assert record.name.startswith(f"stream ended: invocation_id={invocation} trace_id={trace_id} outcome=completed")


def broken_app(tmp_path: Path, replace: str, by: str) -> Path:
    """A copy of the app with one line of function_app.py changed."""
    shutil.copy(ROOT / "host.json", tmp_path)
    shutil.copytree(ROOT / "responses_relay", tmp_path / "responses_relay")
    source = (ROOT / "function_app.py").read_text()
    assert replace in source
    (tmp_path / "function_app.py").write_text(source.replace(replace, by))
    return tmp_path


def test_an_app_the_worker_cannot_index_stops_the_host_with_one_line(tmp_path: Path) -> None:
    # A parameter typed as the classic HttpRequest: the worker refuses it next to the streaming types.
    app_dir = broken_app(tmp_path, "async def chat(req: Request)", "async def chat(req: func.HttpRequest)")
    host = HostProcess("--worker", environ={}, app_dir=app_dir)
    with pytest.raises(AssertionError, match="never printed"):
        host.start()
    assert host.wait_exit() == 1
    errors = [line for line in host.lines if line.startswith("error: ")]
    assert len(errors) == 1, host.output
    assert "could not index function_app.py" in errors[0]
    assert "'req'" in errors[0]
    assert "HttpRequest" in errors[0]


def test_a_worker_that_crashes_is_reported_in_one_line(upstream_server: FaultyUpstream) -> None:
    host = HostProcess("--worker", environ=worker_environ(upstream_server))
    host.start()
    worker = host.worker_pid()
    os.kill(worker, signal.SIGKILL)
    assert host.wait_exit() == 1
    errors = [line for line in host.lines if line.startswith("error: ")]
    assert errors == ["error: the Functions worker exited unexpectedly (exit code -9); its log is above"]


def test_the_worker_does_not_outlive_a_killed_host(upstream_server: FaultyUpstream) -> None:
    host = HostProcess("--worker", environ=worker_environ(upstream_server))
    host.start()
    worker = host.worker_pid()
    host.process.kill()
    host.wait_exit()
    deadline = time.monotonic() + 10
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling another process's state: nothing to wait on
    assert not _running(worker)


def _running(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead and waiting to be reaped, does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@pytest.fixture(scope="module")
def resumable_worker_host(upstream_server: FaultyUpstream, azurite: Azurite) -> Iterator[HostProcess]:
    storage = {"AzureWebJobsStorage": azurite.connection_string}
    host = HostProcess("--worker", environ=worker_environ(upstream_server, **RESUMABLE, **storage))
    host.start()
    yield host
    assert host.stop() == -signal.SIGTERM, host.output


async def test_resume_and_cancel_through_the_worker(
    resumable_worker_host: HostProcess, upstream: FaultyUpstream, make_settings: Callable[..., Settings]
) -> None:
    text = "".join(f"湖東の{i}番目の寺です。" for i in range(30))
    upstream.set_scenario(Scenario(text=text, delta_seconds=0.005, chunk_chars=4))
    async with httpx2.AsyncClient(base_url=resumable_worker_host.url, timeout=30, headers=KEYED) as worker:
        async for instance in serve(ChatService(make_settings(**RESUMABLE))):
            instance.client.headers.update(KEYED)  # one caller on both instances: its responses are its own
            # Dropped on an in-process instance, continued on the worker.
            first = await chat(instance.client, {"input": "滋賀"}, stop_after=3)
            created = orjson.loads(next(e.data for e in first.events if e.event == "response.created"))
            last_id = [event.id for event in first.events if event.id is not None][-1]
            rest = await read_sse(
                worker, "GET", f"/api/chat/{created['response_id']}", headers={"last-event-id": str(last_id)}
            )
            assert first.text + rest.text == text
            assert rest.payloads("response.completed")[0]["status"] == "completed"
            # Cancelled through the worker, live on the in-process instance.
            upstream.set_scenario(Scenario(text=text * 3, delta_seconds=0.01))
            response_id: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            live = asyncio.create_task(
                read_sse(instance.client, "POST", "/api/chat", json={"input": "滋賀"}, created=response_id)
            )
            cancelled = await worker.post(f"/api/chat/{await asyncio.wait_for(response_id, 10)}/cancel")
            received = await asyncio.wait_for(live, 5)
            bad = await worker.get("/api/chat/resp_bad!id")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert received.payloads("response.completed")[0]["status"] == "cancelled"
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_response_id")
