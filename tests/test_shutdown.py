"""SIGTERM: the local host lets streams finish within the grace period, ends the rest
with an `error` event (in background mode: hands them off), and exits cleanly. The local host
runs as a real process."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import orjson
import pytest

from responses_relay.sse import Decoder

from .azurite import Azurite
from .conftest import FAKE_KEY, RESUMABLE
from .faulty_upstream import FaultyUpstream, Scenario
from .host_process import HostProcess

QUESTION = orjson.dumps({"input": "滋賀県について教えてください。"})


@pytest.fixture
async def local_host(upstream: FaultyUpstream) -> AsyncIterator[HostProcess]:
    environ = {"OPENAI_ENDPOINT": upstream.base_url, "OPENAI_API_KEY": FAKE_KEY, "SHUTDOWN_GRACE_SECONDS": "1"}
    host = HostProcess(environ=environ)
    await asyncio.to_thread(host.start)
    yield host
    await asyncio.to_thread(host.stop)


async def read_stream(url: str, started: asyncio.Event) -> list[tuple[str | None, dict[str, object]]]:
    decoder, events = Decoder(), []
    async with (
        httpx2.AsyncClient(base_url=url, timeout=30) as client,
        client.stream("POST", "/api/chat", content=QUESTION, headers={"content-type": "application/json"}) as reply,
    ):
        async for chunk in reply.aiter_raw():
            for event in decoder.feed(chunk):
                events.append((event.event, orjson.loads(event.data)))
                if event.event == "response.output_text.delta":
                    started.set()
    return events


async def test_streams_still_running_after_the_grace_period_end_with_an_error(
    local_host: HostProcess, upstream: FaultyUpstream
) -> None:
    url = local_host.url
    upstream.set_scenario(Scenario(ending="stall", after_deltas=2, delta_seconds=0.001))
    started = [asyncio.Event(), asyncio.Event()]
    readers = [asyncio.create_task(read_stream(url, event)) for event in started]
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in started)), 10)
    local_host.process.send_signal(signal.SIGTERM)
    results = await asyncio.wait_for(asyncio.gather(*readers), 15)
    for events in results:
        assert events[-1] == (
            "error",
            {"type": "error", "code": "server_shutting_down", "message": "The server is restarting; please ask again"},
        )
        assert [kind for kind, _ in events].count("error") == 1
    # uvicorn re-raises the signal once shut down, as supervisors expect: death by SIGTERM, after cleanup.
    assert await asyncio.to_thread(local_host.wait_exit, 15) == -signal.SIGTERM
    assert "Traceback" not in local_host.output
    assert "Finished server process" in local_host.output


async def test_a_stream_that_ends_within_the_grace_period_completes(
    local_host: HostProcess, upstream: FaultyUpstream
) -> None:
    url = local_host.url
    upstream.set_scenario(Scenario(text="琵琶湖" * 20, delta_seconds=0.01))
    started = asyncio.Event()
    reader = asyncio.create_task(read_stream(url, started))
    await asyncio.wait_for(started.wait(), 10)
    local_host.process.send_signal(signal.SIGTERM)
    events = await asyncio.wait_for(reader, 15)
    assert events[-1][0] == "response.completed"
    assert events[-1][1]["status"] == "completed"
    # uvicorn re-raises the signal once shut down, as supervisors expect: death by SIGTERM, after cleanup.
    assert await asyncio.to_thread(local_host.wait_exit, 15) == -signal.SIGTERM
    assert "Traceback" not in local_host.output
    assert "Finished server process" in local_host.output


@pytest.fixture
async def worker_host(upstream: FaultyUpstream) -> AsyncIterator[HostProcess]:
    environ = {"OPENAI_ENDPOINT": upstream.base_url, "OPENAI_API_KEY": FAKE_KEY, "SHUTDOWN_GRACE_SECONDS": "1"}
    host = HostProcess("--worker", environ=environ)
    await asyncio.to_thread(host.start)
    yield host
    await asyncio.to_thread(host.stop)


def worker_stopped(host: HostProcess) -> bool:
    """The host's worker process has ended and was reaped."""
    return not Path(f"/proc/{host.worker_pid()}").exists()


async def test_with_the_worker_a_stream_within_the_grace_period_completes_and_the_worker_stops(
    worker_host: HostProcess, upstream: FaultyUpstream
) -> None:
    upstream.set_scenario(Scenario(text="琵琶湖" * 20, delta_seconds=0.01))
    started = asyncio.Event()
    reader = asyncio.create_task(read_stream(worker_host.url, started))
    await asyncio.wait_for(started.wait(), 10)
    worker_host.process.send_signal(signal.SIGTERM)
    events = await asyncio.wait_for(reader, 15)
    assert events[-1][0] == "response.completed"
    assert await asyncio.to_thread(worker_host.wait_exit) == -signal.SIGTERM
    assert worker_stopped(worker_host)
    assert "Traceback" not in worker_host.output


async def test_with_the_worker_streams_past_the_grace_period_are_cut(
    worker_host: HostProcess, upstream: FaultyUpstream
) -> None:
    # The Functions host cannot end a stream with an event of the relay's: as when Azure recycles an
    # instance, the connection closes without a terminal event (the page then says it was cut).
    upstream.set_scenario(Scenario(ending="stall", after_deltas=2, delta_seconds=0.001))
    started = asyncio.Event()
    reader = asyncio.create_task(read_stream(worker_host.url, started))
    await asyncio.wait_for(started.wait(), 10)
    worker_host.process.send_signal(signal.SIGTERM)
    with pytest.raises(httpx2.RemoteProtocolError):
        await asyncio.wait_for(reader, 15)
    assert await asyncio.to_thread(worker_host.wait_exit) == -signal.SIGTERM
    assert worker_stopped(worker_host)


async def test_in_background_mode_a_stream_still_running_is_handed_off_and_its_response_read_elsewhere(
    upstream: FaultyUpstream, azurite: Azurite
) -> None:
    environ = {"OPENAI_ENDPOINT": upstream.base_url, "OPENAI_API_KEY": FAKE_KEY, "SHUTDOWN_GRACE_SECONDS": "1",
               **RESUMABLE, "AzureWebJobsStorage": azurite.connection_string}  # fmt: skip
    host = HostProcess(environ=environ)
    await asyncio.to_thread(host.start)
    try:
        upstream.set_scenario(Scenario(text="琵琶湖" * 600, delta_seconds=0.01, chunk_chars=3))
        started = asyncio.Event()
        reader = asyncio.create_task(read_stream(host.url, started))
        await asyncio.wait_for(started.wait(), 10)
        host.process.send_signal(signal.SIGTERM)
        events = await asyncio.wait_for(reader, 15)
        assert await asyncio.to_thread(host.wait_exit, 15) == -signal.SIGTERM
    finally:
        await asyncio.to_thread(host.stop)
    kind, handed_off = events[-1]
    assert kind == "stream.resume"
    assert "error" not in [kind for kind, _ in events]
    stored = upstream.stored(str(handed_off["response_id"]))
    assert stored is not None
    assert stored.status == "in_progress", "the response goes on upstream, for the page to read on another instance"
